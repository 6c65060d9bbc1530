"""How well maps localise and how faithful they are, on held-out world questions with exactly one evidence object.

Per method: pointing-game accuracy (chance rate alongside), mass of relevance inside the evidence mask,
deletion/insertion AUC and their random-order baseline, seconds per map. Targets are the true answers; the
model's accuracy on the same questions is reported too, because localisation follows model quality."""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ..errors import InputError
from ..models.base import ExplainInputs, Target, VLModel
from ..train.evaluate import held_out
from ._forward import ScoreFunction, image_baseline
from ._registry import METHODS, available_methods, method_for
from ._rows import term_count
from .engine import gradients
from .explanation import relevance
from .faithfulness import auc, chance, curves, mass_inside, most_relevant_first, pointing_game

DI_STEPS = 16                   # points on each deletion/insertion curve (one per 4 patches on an 8×8 grid)


@dataclass
class Item:
    image: object               # PIL image
    question: str
    answer: str
    mask: np.ndarray            # (H, W) bool: the evidence object


def items(n: int, seed: int = 0, *, variations: bool = True) -> list[Item]:
    """The first n held-out questions whose answer rests on exactly one object (one question per type per scene)."""
    out: list[Item] = []
    for scene, image, questions in held_out(10 ** 9, seed, variations=variations):   # lazy: stops at n
        for q in questions:
            if len(q.evidence) == 1:
                out.append(Item(image, q.text, q.answer, scene.masks[q.evidence[0]]))
                if len(out) == n:
                    return out
    return out


def default_methods(model: VLModel) -> list[str]:
    return [m for m in available_methods(model) if METHODS[m].output == "image"]


def evaluate_explanations(model: VLModel, methods: Sequence[str] | None = None, n: int = 500, seed: int = 0, *,
                          batch: int = 16, di_steps: int = DI_STEPS, progress: bool = False) -> dict:
    if "vqa" not in model.info.tasks:
        raise InputError(f"eval-explain asks questions; {model.info.name!r} does not answer questions")
    methods = list(methods or default_methods(model))
    units = {m: method_for(m, model) for m in methods}
    for m, u in units.items():
        if u.output != "image":
            raise InputError(f"{m!r} explains words, not the image; eval-explain scores image maps")
    data = list(items(n, seed))
    grid = tuple(model.info.patch_grid)
    answers = model.answer([d.image for d in data], [d.question for d in data], top_k=1)
    correct = np.array([a.answer == d.answer for a, d in zip(answers, data)])
    rows = {m: {"pointing": [], "mass": [], "deletion": [], "insertion": [], "seconds": 0.0} for m in methods}
    rand = {"deletion": [], "insertion": []}
    chances = [chance(d.mask, grid) for d in data]
    rng = np.random.default_rng(seed)
    bar = _progress(len(data), progress)
    for lo in range(0, len(data), batch):
        chunk = data[lo:lo + batch]
        with gradients(model):
            inputs = model.prepare([d.image for d in chunk], [Target("answer", d.answer, question=d.question)
                                                              for d in chunk])
            scored = score_batch(model, units, inputs, [d.mask for d in chunk], rng, di_steps)
        for key in rand:
            rand[key] += scored["random"][key]
        for m in methods:
            for key in ("pointing", "mass", "deletion", "insertion"):
                rows[m][key] += scored[m][key]
            rows[m]["seconds"] += scored[m]["seconds"]
        bar(len(chunk))
    report = {"model": model.info.name, "questions": len(data), "seed": seed, "answer_accuracy": float(correct.mean()),
              "pointing_chance": float(np.mean(chances)), "di_steps": di_steps,
              "random": {"deletion_auc": float(np.mean(rand["deletion"])),
                         "insertion_auc": float(np.mean(rand["insertion"]))},
              "methods": {}}
    for m, r in rows.items():
        hits = np.array(r["pointing"])
        report["methods"][m] = {
            "pointing_game": float(hits.mean()), "pointing_when_correct": _mean(hits[correct]),
            "pointing_when_wrong": _mean(hits[~correct]), "mass_inside": float(np.mean(r["mass"])),
            "deletion_auc": float(np.mean(r["deletion"])), "insertion_auc": float(np.mean(r["insertion"])),
            "random_deletion_auc": report["random"]["deletion_auc"],
            "random_insertion_auc": report["random"]["insertion_auc"],
            "seconds_per_map": r["seconds"] / max(1, len(data))}
    return report


def score_batch(model: VLModel, units: dict, inputs: ExplainInputs, masks: Sequence[np.ndarray],
                rng: np.random.Generator, di_steps: int = DI_STEPS, *, curve_inputs: ExplainInputs | None = None,
                curves_of: Sequence[str] | None = None) -> dict:
    """One batch of prepared items through every method: per item the pointing game and mass inside its mask
    (each (H, W) bool), and deletion/insertion AUC of the map's order and of a random order.

    The maps explain `inputs` (contrastive ones included); the curves follow the probability of
    `curve_inputs` (default: `inputs`), for the methods in `curves_of` (default: all). Returns {method: {"pointing",
    "mass", "deletion", "insertion": per-item lists, "seconds"}, "random": {"deletion", "insertion"}}."""
    grid = tuple(model.info.patch_grid)
    P = grid[0] * grid[1]
    curve_inputs = curve_inputs or inputs
    fn = ScoreFunction(model, curve_inputs)
    base = image_baseline(curve_inputs.pixels, "median", grid)
    terms = term_count(curve_inputs)
    x, d, i = curves(fn, curve_inputs.pixels, base, np.stack([rng.permutation(P) for _ in masks]), grid, di_steps,
                     terms)
    out: dict = {"random": {"deletion": auc(x, d).tolist(), "insertion": auc(x, i).tolist()}}
    for m, unit in units.items():
        started = time.perf_counter()
        raw = unit.attribute(inputs).detach().float().cpu().numpy()                          # (B, h, w)
        seconds = time.perf_counter() - started
        maps = [relevance(r) for r in raw]
        row = {"pointing": [pointing_game(mp, mask) for mp, mask in zip(maps, masks)],
               "mass": [mass_inside(mp, mask) for mp, mask in zip(maps, masks)], "seconds": seconds}
        if curves_of is None or m in curves_of:
            orders = np.stack([most_relevant_first(mp, rng) for mp in maps])
            x, d, i = curves(fn, curve_inputs.pixels, base, orders, grid, di_steps, terms)
            row |= {"deletion": auc(x, d).tolist(), "insertion": auc(x, i).tolist()}
        else:
            row |= {"deletion": [], "insertion": []}
        out[m] = row
    return out


def _mean(a: np.ndarray) -> float | None:
    return float(a.mean()) if a.size else None


def _progress(total: int, on: bool):
    if not on:
        return lambda k: None
    from tqdm import tqdm

    bar = tqdm(total=total, desc="eval-explain")
    return bar.update
