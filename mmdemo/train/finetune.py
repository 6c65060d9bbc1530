"""Fine-tune any trainable model on the store's corrections, written once against the protocol.

The loss is the protocol's teacher-forced log-probability of the corrected text, `-model.score(model.prepare(images,
[Target("caption", corrected)]))` (and of the corrected answer, where the model scores answers), so one loop serves
every family that offers `trainable_parameters()`. A seeded share of the images is kept for evaluation; models of
the shapes world also see original world scenes in every batch (a replay share) and are measured on the world's
held-out scenes before and after, so what they knew is kept and the change is reported.

    from mmdemo.train.finetune import FinetuneSettings, corrections_from_store, finetune
    data = corrections_from_store(store, campaign="spring", approved_only=True)
    report = finetune("shapes-cross", data, "runs/shapes-cross-spring", FinetuneSettings(steps=200))
"""
from __future__ import annotations

import io
import json
import shutil
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from ..errors import InputError
from ..models.base import Target
from .loop import adamw, clip_and_step, cosine_lr, load_checkpoint, save_checkpoint, seed_everything, set_lr

CHECKPOINT = "finetune-checkpoint.pt"   # inside the out folder while a run is unfinished; removed at the end
REPLAY_SEED = 3                         # world scenes replayed during fine-tuning: seeds (REPLAY_SEED, i)


@dataclass(frozen=True)
class Example:
    """One corrected text with its image: a caption, or the answer to `question`."""
    image: Any                          # PIL image, RGB
    text: str
    question: str | None = None
    group: str = ""                     # image hash: the split keeps an image's corrections together
    id: str = ""                        # correction id ("" for world scenes)
    created_at: str | None = None

    @property
    def target(self) -> Target:
        return (Target("answer", self.text, question=self.question) if self.question
                else Target("caption", self.text, end=True))


@dataclass
class Corrections:
    """What a fine-tuning run learns from, and where it came from (for the card)."""
    examples: list[Example]
    campaign: str | None = None
    approved_only: bool = False
    skipped: dict[str, int] = field(default_factory=dict)   # reason -> corrections left out

    def dates(self) -> tuple[str | None, str | None]:
        times = sorted(e.created_at for e in self.examples if e.created_at)
        return (times[0], times[-1]) if times else (None, None)


@dataclass(frozen=True)
class FinetuneSettings:
    steps: int = 200                    # optimiser steps
    batch: int = 16                     # corrections per step (drawn with replacement)
    lr: float = 3e-4
    warmup: int = 20
    weight_decay: float = 0.01
    eval_share: float = 0.2             # share of the images kept for evaluation (seeded)
    replay: float = 1.0                 # shapes-world models: original scenes (caption and a question) per
                                        # correction in each batch
    original_scenes: int = 200          # shapes-world models: held-out world scenes measured before and after
    seed: int = 0
    checkpoint_every: int = 100         # steps between checkpoints (a rerun into the same folder resumes)

    def __post_init__(self) -> None:
        if not 0 <= self.eval_share < 1:
            raise InputError(f"the evaluation share must lie in [0, 1), not {self.eval_share}")
        if self.steps < 1 or self.batch < 1:
            raise InputError("steps and batch must be 1 or more")
        if not self.lr > 0:
            raise InputError(f"the learning rate must be above 0, not {self.lr}")
        if self.replay < 0:
            raise InputError(f"the replay share must be 0 or more, not {self.replay}")


# --- the data ---------------------------------------------------------------------------------------------------
def _image(store: Any, image_hash: str) -> Any | None:
    from PIL import Image

    from ..store import NotFoundError

    try:
        return Image.open(io.BytesIO(store.image_bytes(image_hash))).convert("RGB")
    except NotFoundError:
        return None


def corrections_from_store(store: Any, *, campaign: str | None = None, approved_only: bool = False,
                           tasks: Sequence[str] = ("caption", "vqa")) -> Corrections:
    """The live corrections to learn from: every caption (and answer) correction in the store, or a campaign's
    submissions that were not rejected; `approved_only`: only submissions a reviewer approved (of `campaign`, or of
    every campaign). Corrections whose image the store does not hold are counted in `skipped`."""
    if campaign is not None or approved_only:
        names = [campaign] if campaign is not None else [c.name for c in store.list_campaigns()]
        ids = []
        for name in names:
            for row in store.campaign_submissions(name):    # NotFoundError for an unknown campaign
                if row["status"] == "approved" or (not approved_only and row["status"] != "rejected"):
                    ids.append(row["correction_id"])
        rows = [store.get(i) for i in dict.fromkeys(ids)]
    else:
        rows = [c for task in tasks for c in store.scan(task=task)]
    out = Corrections([], campaign, approved_only)
    images: dict[str, Any] = {}
    for c in rows:
        if c.deleted or c.task not in tasks:
            out.skipped[f"deleted or task {c.task}"] = out.skipped.get(f"deleted or task {c.task}", 0) + 1
            continue
        if c.image_hash not in images:
            images[c.image_hash] = _image(store, c.image_hash)
        if images[c.image_hash] is None:
            out.skipped["image not in the store"] = out.skipped.get("image not in the store", 0) + 1
            continue
        created = c.created_at.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")
        out.examples.append(Example(images[c.image_hash], c.corrected, c.question if c.task == "vqa" else None,
                                    c.image_hash, c.id, created))
    return out


def split(examples: Sequence[Example], share: float, seed: int) -> tuple[list[Example], list[Example]]:
    """(train, eval): a seeded `share` of the images (all their corrections) for evaluation; at least one image
    when the share is above 0 and there are two images or more."""
    groups = sorted({e.group for e in examples})
    order = np.random.default_rng(seed).permutation(len(groups))
    n_eval = 0 if share <= 0 or len(groups) < 2 else min(len(groups) - 1, max(1, round(share * len(groups))))
    held = {groups[i] for i in order[:n_eval]}
    return [e for e in examples if e.group not in held], [e for e in examples if e.group in held]


@lru_cache(maxsize=2)
def world_examples(n: int, *, questions: bool, seed: int = REPLAY_SEED) -> list[tuple[Example, ...]]:
    """n scenes of the original shapes world, each as its true caption (and one question about it, for models that
    answer), drawn from seeds no evaluation uses."""
    from ..world.language import caption, sample_question
    from ..world.views import random_view

    out = []
    for i in range(n):
        rng = np.random.default_rng([seed, i])
        scene, image = random_view(rng)
        scene_examples = [Example(image, caption(scene), group=f"world-{i}")]
        if questions:
            q = sample_question(scene, rng)
            scene_examples.append(Example(image, q.answer, q.text, group=f"world-{i}"))
        out.append(tuple(scene_examples))
    return out


# --- the loss, written once ---------------------------------------------------------------------------------------
def loss(model: Any, examples: Sequence[Example]) -> torch.Tensor:
    """Mean over the examples of -log p(corrected text | image), teacher-forced through the protocol; captions and
    answers are prepared in separate batches (a family may not mix them)."""
    terms = []
    for kind in ("caption", "answer"):
        part = [e for e in examples if e.target.kind == kind]
        if part:
            inputs = model.prepare([e.image for e in part], [e.target for e in part])
            terms.append(-model.score(inputs))
    return torch.cat(terms).mean()


def usable(model: Any, examples: Sequence[Example]) -> tuple[list[Example], int]:
    """The examples the model can score (an answer it has no label for, or a question to a captioner, cannot be)."""
    keep, dropped = [], 0
    for e in examples:
        if e.question and "vqa" not in model.info.tasks or not e.question and "caption" not in model.info.tasks:
            dropped += 1
            continue
        try:
            model.prepare([e.image], [e.target])
        except InputError:
            dropped += 1
            continue
        keep.append(e)
    return keep, dropped


@torch.no_grad()
def mean_loss(model: Any, examples: Sequence[Example], batch: int = 32) -> float | None:
    if not examples:
        return None
    total = sum(float(loss(model, examples[s:s + batch])) * len(examples[s:s + batch])
                for s in range(0, len(examples), batch))
    return total / len(examples)


# --- measuring --------------------------------------------------------------------------------------------------
def measure(model: Any, examples: Sequence[Example], train: Sequence[Example], *, original_scenes: int) -> dict:
    """Greedy captions of the held-out corrections scored against them (caption_metrics), answer accuracy, the
    training loss, and for shapes-world models the world's own held-out scenes (`evaluate`)."""
    from .caption_metrics import caption_metrics
    from .evaluate import evaluate

    world = model.info.domain == "shapes"
    out: dict[str, Any] = {"train_loss": mean_loss(model, list(train)[:64])}
    caps = [e for e in examples if not e.question]
    if caps:
        texts = [c.text for s in range(0, len(caps), 32) for c in model.caption([e.image for e in caps[s:s + 32]])]
        out |= caption_metrics(texts, [e.text for e in caps], mentions=world)
    answers = [e for e in examples if e.question]
    if answers:
        got = model.answer([e.image for e in answers], [e.question for e in answers], top_k=1)
        out["answer_accuracy"] = float(np.mean([a.answer == e.text for a, e in zip(got, answers)]))
    if world and original_scenes:
        r = evaluate(model, original_scenes, seed=0, progress=False)
        out["original"] = {"scenes": original_scenes, "caption_exact": r["caption_exact"],
                           "mention_f1": r["mention_f1"], "vqa_accuracy": r["vqa_accuracy"]}
    return out


# --- the run ------------------------------------------------------------------------------------------------------
def _prepare_out(out: Path) -> None:
    """The folder must be new, empty, or hold only an unfinished run's checkpoint (which is resumed)."""
    if out.exists() and (not out.is_dir() or any(p.name != CHECKPOINT for p in out.iterdir())):
        raise InputError(f"{out} already exists and is not an unfinished fine-tuning run; choose another --out")
    out.mkdir(parents=True, exist_ok=True)


def finetune(model_name: str, data: Corrections, out: str | Path, settings: FinetuneSettings | None = None, *,
             device: str | None = None, progress: bool = True, command: str = "",
             on_step: Callable[[str, int, int], None] | None = None) -> dict:
    """Fine-tune `model_name` on `data`; write the new model folder `out` with its card; return the report
    {"model", "out", "n_train", "n_eval", "steps", "seconds", "before", "after"}. `on_step(stage, step, steps)` hears
    of the progress (stages: "measuring", "training", "saving")."""
    from tqdm import tqdm

    from ..models.registry import load

    s = settings or FinetuneSettings()
    out = Path(out)
    started = time.time()
    model = load(model_name, device=device)
    named = model.trainable_parameters()
    if not named:
        raise InputError(f"{model.info.name!r} cannot be fine-tuned here (its family offers no trainable parameters)")
    model.train_mode(False)
    examples, dropped = usable(model, data.examples)
    if dropped:
        data.skipped["not scorable by this model"] = dropped
    if not examples:
        raise InputError("no corrections to learn from" + (f" in campaign {data.campaign!r}" if data.campaign else "")
                         + (" (approved ones only)" if data.approved_only else ""))
    _prepare_out(out)
    seed_everything(s.seed)
    train, held = split(examples, s.eval_share, s.seed)
    world = model.info.domain == "shapes"
    n_replay = round(s.batch * s.replay) if world else 0
    replay = world_examples(max(64, min(2000, n_replay * s.steps // 4)), questions="vqa" in model.info.tasks) \
        if n_replay else []
    tell = on_step or (lambda stage, step, steps: None)
    tell("measuring", 0, s.steps)
    before = measure(model, held, train, original_scenes=s.original_scenes)

    rng = np.random.default_rng(s.seed)
    opt = adamw(named, lr=s.lr, weight_decay=s.weight_decay)
    step, ckpt = 0, out / CHECKPOINT
    state = load_checkpoint(ckpt)
    if state is not None and state.get("settings") == asdict(s) and state.get("model") == model_name:
        params = dict(named)
        with torch.no_grad():
            for name, value in state["params"].items():
                params[name].copy_(value)
        opt.load_state_dict(state["opt"])
        rng.bit_generator.state = state["rng"]
        torch.set_rng_state(state["torch_rng"])
        step = state["step"]
    model.train_mode(True)
    bar = tqdm(total=s.steps, initial=step, desc=f"fine-tune {model.info.name}", disable=not progress)
    losses = []
    warmup = max(1, min(s.warmup, s.steps // 5))
    while step < s.steps:
        set_lr(opt, cosine_lr(step, lr=s.lr, warmup=warmup, steps=s.steps))
        batch = [train[i] for i in rng.integers(0, len(train), s.batch)]
        batch += [e for i in rng.integers(0, len(replay), n_replay) for e in replay[i]] if n_replay else []
        value = loss(model, batch)
        clip_and_step(opt, value)
        losses.append(float(value.detach()))
        step += 1
        bar.update(1)
        tell("training", step, s.steps)
        if step % 10 == 0:
            bar.set_postfix(loss=f"{np.mean(losses[-10:]):.3f}")
        if s.checkpoint_every and step % s.checkpoint_every == 0 and step < s.steps:
            save_checkpoint(ckpt, {"settings": asdict(s), "model": model_name, "step": step,
                                   "params": {n: p.detach().cpu() for n, p in named}, "opt": opt.state_dict(),
                                   "rng": rng.bit_generator.state, "torch_rng": torch.get_rng_state()})
    bar.close()
    model.train_mode(False)
    tell("saving", step, s.steps)
    first, last = data.dates()
    training = {"finetune": {
        "base_model": model_name, "base_revision": model.info.revision, "campaign": data.campaign,
        "approved_only": data.approved_only, "corrections": len(examples), "n_train": len(train),
        "n_eval": len(held), "first_correction": first, "last_correction": last, "skipped": data.skipped,
        "settings": asdict(s) | {"warmup": warmup}, "replay_per_step": n_replay, "command": command,
        "finished": datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")}}
    model.save(out, training)
    ckpt.unlink(missing_ok=True)
    tuned = load(str(out), device=device)            # what every other tool will open
    after = measure(tuned, held, train, original_scenes=s.original_scenes)
    report = {"model": model_name, "out": str(out), "n_train": len(train), "n_eval": len(held), "steps": s.steps,
              "seconds": round(time.time() - started, 1), "before": before, "after": after}
    (out / "finetune.json").write_text(json.dumps(report | training | {"revision": tuned.info.revision}, indent=2))
    (out / "README.md").write_text(card(report, training["finetune"], tuned.info.revision))
    return report


def _fmt(v: Any, scale: float = 1.0, unit: str = "") -> str:
    return "—" if v is None else f"{v * scale:.1f}{unit}" if scale != 1 else f"{v:.2f}{unit}"


def card(report: dict, meta: dict, revision: str) -> str:
    """The model card of a fine-tuned folder: the data used, the recipe, before/after metrics."""
    b, a = report["before"], report["after"]
    rows = [("loss on training corrections (−log p per text)", "train_loss", 1.0, ""),
            ("caption exact match", "exact", 100, " %"), ("object-mention F1", "mention_f1", 100, " %"),
            ("BLEU-4", "bleu", 1.0, ""), ("chrF", "chrf", 1.0, ""), ("CIDEr-D", "cider_d", 1.0, ""),
            ("word edit distance to the correction", "edit_distance", 1.0, ""),
            ("answer accuracy", "answer_accuracy", 100, " %")]
    lines = [f"# {Path(report['out']).name}", "",
             f"Fine-tuned from `{meta['base_model']}` (revision {meta['base_revision'] or '?'}) on corrections people "
             f"made in mmdemo; revision {revision}. Open it with `--model {report['out']}` or "
             f"`MMDEMO_MODELS={report['out']}`.", "",
             "## Data", "",
             f"- {meta['corrections']} corrections" + (f" of campaign `{meta['campaign']}`" if meta["campaign"] else
                                                       " from the whole store")
             + (" (approved by a reviewer)" if meta["approved_only"] else "")
             + f", made {meta['first_correction'] or '?'} to {meta['last_correction'] or '?'}.",
             f"- {report['n_train']} for training, {report['n_eval']} held out for evaluation (a seeded share of the "
             f"images: {meta['settings']['eval_share']:g}).",
             ]
    if meta["skipped"]:
        lines.append("- Left out: " + ", ".join(f"{n} ({why})" for why, n in meta["skipped"].items()) + ".")
    st = meta["settings"]
    lines += ["", "## Recipe", "",
              f"Loss: −log p(corrected text | image), teacher-forced (`-model.score(model.prepare(...))`). "
              f"{st['steps']} AdamW steps of {st['batch']} corrections"
              + (f" plus {meta['replay_per_step']} original shapes-world scenes (replay: a caption and a question each)"
                 if meta["replay_per_step"] else "")
              + f", lr {st['lr']:g} (warm-up {st['warmup']}, cosine), weight decay {st['weight_decay']:g}, seed "
              f"{st['seed']}; {report['seconds']:.0f} s in all.",
              *(["", f"Command: `{meta['command']}`"] if meta["command"] else []),
              "", "## Before and after", "",
              (f"On the {report['n_eval']} held-out corrections (greedy captions against the corrected text):"
               if report["n_eval"] else "No corrections were held out; the loss on the training corrections:"), "",
              "| metric | before | after |", "|---|---|---|"]
    for label, key, scale, unit in rows:
        if b.get(key) is not None or a.get(key) is not None:
            lines.append(f"| {label} | {_fmt(b.get(key), scale, unit)} | {_fmt(a.get(key), scale, unit)} |")
    if "original" in a:
        ob, oa = b["original"], a["original"]
        lines += ["", f"On {oa['scenes']} held-out scenes of the original shapes world (what the model knew):", "",
                  "| metric | before | after |", "|---|---|---|"]
        for label, key in (("caption exact match", "caption_exact"), ("object-mention F1", "mention_f1"),
                           ("VQA accuracy", "vqa_accuracy")):
            lines.append(f"| {label} | {_fmt(ob[key], 100, ' %')} | {_fmt(oa[key], 100, ' %')} |")
    return "\n".join(lines) + "\n"


def discard(out: str | Path) -> None:
    """Remove a fine-tuned folder (tests, the study)."""
    shutil.rmtree(out, ignore_errors=True)
