"""Maps of caption words on held-out world scenes: does the map of "red" or "circle" point at that word's object?

For every word of a correct caption that names an attribute of an object (its colour, size or shape), explained as
a caption token (teacher-forced prefix): the pointing game on the word's own object's mask, the mass inside it,
per word kind and per number of objects in the scene, and deletion/insertion AUC of the word's probability against
random orders. The contrastive variant explains log p(word) - log p(the most probable other word of its kind)
(another shape for a shape word) under the same prefix.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Sequence

import numpy as np
import torch

from ..errors import InputError
from ..models.base import Target, VLModel
from ..train.evaluate import held_out
from ..world.language import caption as true_caption
from ..world.vocab import COLORS, SHAPES, SIZES
from ._forward import ScoreFunction, prepare, word_features
from .engine import _check_options, gradients
from .evaluate import DI_STEPS, _progress, default_methods, score_batch
from .faithfulness import chance
from ._registry import method_for

KINDS = {"colour": COLORS, "shape": SHAPES, "size": SIZES}
VARIANTS = ("plain", "contrastive")


@dataclass
class Word:
    image: object               # PIL image
    caption: str                # the (correct) caption the word is part of
    token: int                  # its index among the caption's tokens
    word: str
    kind: str                   # colour | shape | size
    mask: np.ndarray            # (H, W) bool: the object the word describes
    objects: int                # objects in the scene
    contrast: str | None = None  # the most probable other word of its kind at that step

    def target(self, contrastive: bool = False) -> Target:
        return Target("token", self.caption, token=self.token, contrast=self.contrast if contrastive else None)


def caption_words(model: VLModel, n: int, seed: int = 0, *, batch: int = 32) -> tuple[list[Word], dict]:
    """The attribute words of the model's correct greedy captions of the first n held-out scenes, each with its
    object's mask and its contrast word; and {"scenes", "captions_correct"}."""
    if "caption" not in model.info.tasks:
        raise InputError(f"{model.info.name!r} does not caption images")
    scenes = list(held_out(n, seed))
    words: list[Word] = []
    correct = 0
    for lo in range(0, len(scenes), batch):
        chunk = scenes[lo:lo + batch]
        with torch.inference_mode():
            caps = model.caption([image for _, image, _ in chunk])
        for (scene, image, _), cap in zip(chunk, caps):
            if cap.text != true_caption(scene):
                continue
            correct += 1
            words += _attribute_words(model, scene, image, cap.text)
    _choose_contrasts(model, words)
    return words, {"scenes": len(scenes), "captions_correct": correct / max(1, len(scenes))}


def _attribute_words(model: VLModel, scene, image, text: str) -> list[Word]:
    """Each colour, size and shape word of a true caption, with the object it names (objects run left to right,
    each opened by 'a')."""
    tokens = [t for _, t in word_features(model.prepare([image], [Target("caption", text)]))[0]]
    order = sorted(range(len(scene.objects)), key=lambda i: scene.objects[i].center[0])
    out, current = [], -1
    for k, tok in enumerate(tokens):
        if tok in ("a", "an"):
            current += 1
            continue
        kind = next((name for name, vocab in KINDS.items() if tok in vocab), None)
        if kind is None or not 0 <= current < len(order):
            continue
        i = order[current]
        obj = scene.objects[i]
        if tok != {"colour": obj.color, "shape": obj.shape, "size": obj.size}[kind]:
            raise InputError(f"caption token {k} ({tok!r}) of {text!r} does not name object {current}")
        out.append(Word(image, text, k, tok, kind, scene.masks[i], len(scene.objects)))
    return out


def _choose_contrasts(model: VLModel, words: list[Word], rows: int = 256) -> None:
    """word.contrast = the other word of its kind the model finds most probable in the word's place."""
    pairs = [(w, other) for w in words for other in KINDS[w.kind] if other != w.word]
    gaps = []
    with torch.no_grad():
        for lo in range(0, len(pairs), rows):
            chunk = pairs[lo:lo + rows]
            targets = [replace(w.target(), contrast=other) for w, other in chunk]
            inputs = prepare(model, [w.image for w, _ in chunk], targets)
            gaps += ScoreFunction(model, inputs)(inputs.pixels).tolist()     # log p(word) - log p(other)
    best: dict[int, tuple[float, str]] = {}
    for (w, other), gap in zip(pairs, gaps):
        if id(w) not in best or gap < best[id(w)][0]:
            best[id(w)] = (gap, other)
    for w in words:
        w.contrast = best[id(w)][1]


def evaluate_caption_words(model: VLModel, methods: Sequence[str] | None = None, n: int = 500, seed: int = 0, *,
                           variants: Sequence[str] = ("plain",), batch: int = 16, di_steps: int = DI_STEPS,
                           progress: bool = False, options: dict | None = None) -> dict:
    """Score maps of caption words (see the module's doc) for each method and variant ("plain", "contrastive").

    Methods that do not follow the score (attention, rollout) have no contrastive variant. Deletion and insertion
    curves follow the word's probability, for the plain maps only. `options` per method go to its `attribute`
    (e.g. {"ig": {"steps": 16}})."""
    unknown = sorted(set(variants) - set(VARIANTS))
    if unknown:
        raise InputError(f"unknown variant {', '.join(unknown)}; known: {', '.join(VARIANTS)}")
    methods = list(methods or default_methods(model))
    units = {m: method_for(m, model) for m in methods}
    for m, u in units.items():
        if u.output != "image":
            raise InputError(f"{m!r} explains words, not the image; eval-explain scores image maps")
    options = options or {}
    for m, opts in options.items():
        if m not in units:
            raise InputError(f"options for {m!r}, which is not among the methods scored ({', '.join(units)})")
        _check_options(units[m], opts)
    words, stats = caption_words(model, n, seed)
    grid = tuple(model.info.patch_grid)
    rng = np.random.default_rng(seed)
    per: dict[str, dict[str, dict[str, list]]] = {v: {} for v in variants}
    rand = {"deletion": [], "insertion": []}
    bar = _progress(len(words) * len(variants), progress)
    for variant in variants:
        contrastive = variant == "contrastive"
        chosen = {m: u for m, u in units.items() if u.contrastive or not contrastive}
        bound = {m: _Bound(u, options.get(m, {})) for m, u in chosen.items()}
        rows = {m: {"pointing": [], "mass": [], "deletion": [], "insertion": [], "seconds": 0.0} for m in chosen}
        for lo in range(0, len(words), batch):
            chunk = words[lo:lo + batch]
            images = [w.image for w in chunk]
            with gradients(model):
                plain = model.prepare(images, [w.target() for w in chunk])
                inputs = prepare(model, images, [w.target(True) for w in chunk]) if contrastive else plain
                scored = score_batch(model, bound, inputs, [w.mask for w in chunk], rng, di_steps,
                                     curve_inputs=plain, curves_of=() if contrastive else None)
            if not contrastive:
                for key in rand:
                    rand[key] += scored["random"][key]
            for m in chosen:
                for key in ("pointing", "mass", "deletion", "insertion"):
                    rows[m][key] += scored[m][key]
                rows[m]["seconds"] += scored[m]["seconds"]
            bar(len(chunk))
        per[variant] = rows
    return _report(model, words, stats, per, rand, grid, seed, di_steps)


class _Bound:
    """A method with fixed options, as `score_batch` calls it."""

    def __init__(self, unit, options: dict):
        self.unit, self.options = unit, options
        self.contrastive = unit.contrastive

    def attribute(self, inputs):
        return self.unit.attribute(inputs, **self.options)


def _report(model, words: list[Word], stats: dict, per: dict, rand: dict, grid, seed: int, di_steps: int) -> dict:
    kinds = np.array([w.kind for w in words])
    objects = np.array([w.objects for w in words])
    counts = sorted(set(objects.tolist()))

    def split(values: list) -> dict:
        v = np.asarray(values, dtype=np.float64)
        out = {k: _mean(v[kinds == k]) for k in KINDS}
        out["all"] = _mean(v)
        return out

    report = {"model": model.info.name, "target": "caption-words", "seed": seed, "di_steps": di_steps,
              **stats, "words": len(words), "words_by_kind": {k: int((kinds == k).sum()) for k in KINDS},
              "words_by_objects": {str(c): int((objects == c).sum()) for c in counts},
              "pointing_chance": split([chance(w.mask, grid) for w in words]),
              "random": {"deletion_auc": _mean(np.array(rand["deletion"])),
                         "insertion_auc": _mean(np.array(rand["insertion"]))},
              "variants": {}}
    for variant, rows in per.items():
        report["variants"][variant] = {}
        for m, r in rows.items():
            hits = np.asarray(r["pointing"], dtype=np.float64)
            report["variants"][variant][m] = {
                "pointing_game": split(r["pointing"]), "mass_inside": split(r["mass"]),
                "pointing_by_objects": {str(c): {k: _mean(hits[(objects == c) & (kinds == k)]) for k in KINDS}
                                        for c in counts},
                "deletion_auc": _mean(np.array(r["deletion"])), "insertion_auc": _mean(np.array(r["insertion"])),
                "seconds_per_map": r["seconds"] / max(1, len(words))}
    report["recommended"] = best_map(report)
    return report


def best_map(report: dict) -> dict | None:
    """{"method", "variant", "colour", "shape"}: the map whose worse pointing rate on colour and shape words is
    highest (what the app shows caption words with by default)."""
    best = None
    for variant, rows in report["variants"].items():
        for m, r in rows.items():
            c, s = r["pointing_game"]["colour"], r["pointing_game"]["shape"]
            if c is None or s is None:
                continue
            rank = lambda b: (min(b["colour"], b["shape"]), b["colour"] + b["shape"])  # noqa: E731
            here = {"method": m, "variant": variant, "colour": c, "shape": s}
            if best is None or rank(here) > rank(best):
                best = here
    return best


def _mean(a: np.ndarray) -> float | None:
    return float(np.mean(a)) if np.size(a) else None


def format_caption_words(report: dict) -> str:
    """The report as text tables: pointing per method × word kind × variant, then per number of objects."""
    kinds = list(KINDS)
    counted = ", ".join(f"{v} {k}" for k, v in report["words_by_kind"].items())
    lines = [f"{report['model']}: {report['words']} attribute words ({counted}) "
             f"in {report['captions_correct']:.0%} correct captions of {report['scenes']} held-out scenes; "
             f"pointing chance " + ", ".join(f"{k} {report['pointing_chance'][k]:.1%}" for k in kinds
                                             if report['pointing_chance'][k] is not None),
             f"{'method':<12} {'variant':<12} " + " ".join(f"{k:>7}" for k in kinds) + f" {'mass in':>8} "
             f"{'deletion':>9} {'(random)':>9} {'s/map':>7}"]
    for variant, rows in report["variants"].items():
        for m, r in rows.items():
            cells = " ".join(_pct(r["pointing_game"][k]) for k in kinds)
            lines.append(f"{m:<12} {variant:<12} {cells} {_pct(r['mass_inside']['all'], 8)} "
                         f"{_num(r['deletion_auc'])} {_num(report['random']['deletion_auc'])} "
                         f"{r['seconds_per_map']:>7.4f}")
    lines.append("pointing per number of objects in the scene (colour / shape / size):")
    counts = list(report["words_by_objects"])
    lines.append(f"{'method':<12} {'variant':<12} " + " ".join(f"{c + ' obj':>20}" for c in counts))
    for variant, rows in report["variants"].items():
        for m, r in rows.items():
            cells = " ".join(f"{' / '.join(_short(r['pointing_by_objects'][c][k]) for k in kinds):>20}" for c in counts)
            lines.append(f"{m:<12} {variant:<12} {cells}")
    return "\n".join(lines)


def _pct(v: float | None, width: int = 7) -> str:
    return f"{'—':>{width}}" if v is None else f"{v:>{width}.1%}"


def _num(v: float | None) -> str:
    return f"{'—':>9}" if v is None else f"{v:>9.3f}"


def _short(v: float | None) -> str:
    return "—" if v is None else f"{100 * v:.0f}"


def markdown_tables(report: dict) -> str:
    """The report as Markdown (for model cards): pointing per method × variant × word kind, then per object count."""
    kinds = list(KINDS)
    pct = lambda v: "—" if v is None else f"{100 * v:.1f} %"  # noqa: E731
    lines = ["| method | target | " + " | ".join(f"{k} words" for k in kinds) + " | mass inside | deletion AUC |",
             "|---|---|" + "---|" * (len(kinds) + 2)]
    for variant, rows in report["variants"].items():
        for m, r in rows.items():
            dele = "—" if r["deletion_auc"] is None else f"{r['deletion_auc']:.3f}"
            lines.append(f"| {m} | {variant} | " + " | ".join(pct(r["pointing_game"][k]) for k in kinds)
                         + f" | {pct(r['mass_inside']['all'])} | {dele} |")
    counts = list(report["words_by_objects"])
    lines += ["", "Pointing per number of objects in the scene (colour / shape / size words):", "",
              "| method | target | " + " | ".join(f"{c} object{'s' if c != '1' else ''}" for c in counts) + " |",
              "|---|---|" + "---|" * len(counts)]
    short = lambda v: "—" if v is None else f"{100 * v:.0f}"  # noqa: E731
    for variant, rows in report["variants"].items():
        for m, r in rows.items():
            lines.append(f"| {m} | {variant} | " + " | ".join(
                " / ".join(short(r["pointing_by_objects"][c][k]) for k in kinds) for c in counts) + " |")
    return "\n".join(lines)
