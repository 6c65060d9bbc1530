"""The transfer study: what pretraining and an ImageNet encoder buy when labelled data is scarce.

For each image encoder (a patch stem trained from scratch, a frozen ImageNet EfficientNet-Lite0) and each fusion
(early, cross, late): pretrain once on image–caption pairs (masked words + image–text matching), then fine-tune
for VQA on 1 %, 10 % and 100 % of a labelled pool of views, from the pretrained weights and from scratch, with the
same number of steps; measure VQA accuracy on held-out scenes. Every run is seeded; finished cells are kept in
the results file, so an interrupted study resumes where it stopped.
"""
from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from .config import TrainConfig

LABELS = {"patch": "patch stem (no prior)", "efficientnet_lite0": "EfficientNet-Lite0 (ImageNet, frozen)"}
STARTS = {False: "none", True: "MLM + ITM"}


@dataclass(frozen=True)
class StudySettings:
    fusions: tuple[str, ...] = ("early", "cross", "late")
    encoders: tuple[str, ...] = ("patch", "efficientnet_lite0")
    fractions: tuple[float, ...] = (0.01, 0.1, 1.0)
    pretrain_pool: int = 6000        # image–caption pairs (views seeded apart from the labelled ones)
    finetune_pool: int = 4000        # labelled views: 1 % is 40 images, each with all its questions
    pretrain_steps: int = 400
    finetune_steps: int = 300        # the same budget for every fraction
    batch: int = 32                  # images per step
    questions: int = 4               # questions per image per step
    lr: float = 1.5e-3
    eval_scenes: int = 300           # held-out scenes, one question per supported type
    seed: int = 0


QUICK = StudySettings(pretrain_pool=24, finetune_pool=24, pretrain_steps=2, finetune_steps=2, batch=4,
                      questions=2, eval_scenes=4)


@dataclass
class VQASet:
    """Held-out questions with their images encoded once per image size."""
    images: list                      # PIL images
    image_index: np.ndarray           # (M,) image of each question
    q_ids: torch.Tensor               # (M, T)
    answers: torch.Tensor             # (M,) answer index
    types: list[str]


def vqa_set(n: int, seed: int = 0) -> VQASet:
    from ..models.shapes.preprocess import pad_ids
    from ..models.shapes.tokenizer import build_tokenizer
    from ..world.vocab import ANSWERS
    from .evaluate import held_out

    tok = build_tokenizer()
    images, index, ids, answers, types = [], [], [], [], []
    for i, (_, image, qs) in enumerate(held_out(n, seed)):
        images.append(image)
        for q in qs:
            index.append(i)
            ids.append(tok.encode(q.text).ids)
            answers.append(ANSWERS.index(q.answer))
            types.append(q.type)
    return VQASet(images, np.array(index), pad_ids(ids), torch.tensor(answers), types)


@torch.no_grad()
def _image_tokens(net, images: list, batch: int = 64) -> torch.Tensor:
    """PIL images -> (N, P, D) image tokens of a bare ShapesNet, in chunks."""
    from ..models.shapes.preprocess import to_pixels

    size = net.cfg.image_size
    return torch.cat([net.encode_image(torch.from_numpy(np.stack([to_pixels(im, size) for im in images[s:s + batch]]))
                                       .float().div_(255)) for s in range(0, len(images), batch)])


@torch.no_grad()
def accuracy(net, data: VQASet, batch: int = 64) -> dict:
    """VQA accuracy of a bare ShapesNet on the set, overall and per question type; each image encoded once."""
    net.eval()
    image = _image_tokens(net, data.images, batch)
    predicted = []
    for s in range(0, len(data.answers), 4 * batch):
        rows = torch.from_numpy(data.image_index[s:s + 4 * batch])
        ids = data.q_ids[s:s + 4 * batch]
        ids = ids[:, : int((ids != 0).sum(1).max())]
        predicted.append(net.answer_logits(image[rows], ids).argmax(-1))
    right = (torch.cat(predicted) == data.answers).tolist()
    correct, total = Counter(), Counter()
    for t, r in zip(data.types, right):
        total[t] += 1
        correct[t] += r
    return {"vqa_accuracy": sum(right) / len(right), "questions": len(right),
            "vqa_by_type": {t: correct[t] / total[t] for t in sorted(total)}}


@torch.no_grad()
def grounding(net, n: int = 300, seed: int = 2) -> dict:
    """What pretraining taught, on held-out image–caption pairs: one colour, shape or size word of each caption
    masked and predicted from the rest and the image (chance: 1/6, 1/4, 1/2; the caption's other words rarely
    tell, so above chance means the model reads the image)."""
    from ..models.shapes.preprocess import pad_ids
    from ..models.shapes.tokenizer import MASK, build_tokenizer
    from ..world.language import caption
    from ..world.vocab import COLORS, SHAPES, SIZES
    from .evaluate import held_out

    kinds = {w: k for k, words in (("colour", COLORS), ("shape", SHAPES), ("size", SIZES)) for w in words}
    tok = build_tokenizer()
    rng = np.random.default_rng(seed)
    rows, images, asked = [], [], []
    for scene, image, _ in held_out(n, seed):
        ids = tok.encode(caption(scene)).ids
        slots = [i for i, t in enumerate(ids) if tok.id_to_token(t) in kinds]
        at = slots[rng.integers(len(slots))]
        asked.append((at, ids[at], kinds[tok.id_to_token(ids[at])]))
        rows.append(ids[:at] + [MASK] + ids[at + 1:])
        images.append(image)
    net.eval()
    right, total = Counter(), Counter()
    tokens = _image_tokens(net, images)
    for s in range(0, n, 64):
        logits = net.word_logits(tokens[s:s + 64], pad_ids(rows[s:s + 64]), causal=False)
        for row, (at, truth, kind) in zip(logits, asked[s:s + 64]):
            total[kind] += 1
            right[kind] += int(row[at].argmax()) == truth
    return {"masked_word_accuracy": sum(right.values()) / n, "by_kind": {k: right[k] / total[k] for k in sorted(total)}}


def _train_config(settings: StudySettings, run_dir: Path, *, steps: int, **kw) -> TrainConfig:
    return TrainConfig(steps=steps, warmup=max(1, steps // 10), batch=settings.batch, lr=settings.lr,
                       questions=settings.questions, focus=(), seed=settings.seed, run_dir=str(run_dir),
                       tasks=("vqa",), checkpoint_every=10**9, eval_every=0, threads=None, **kw)


def cell_key(encoder: str, fusion: str, pretrained: bool, fraction: float) -> str:
    return f"{encoder}/{fusion}/{'pretrained' if pretrained else 'scratch'}/{fraction:g}"


def run_study(settings: StudySettings, work: Path, results: Path, *, progress: bool = True) -> dict:
    """Run every cell not yet in `results` (a JSON file, rewritten after each cell); return the results.

    `work` holds the rendered pools, checkpoints and model folders."""
    from contextlib import redirect_stdout
    from io import StringIO

    from ..models.shapes import weights
    from .shapes import train

    work.mkdir(parents=True, exist_ok=True)
    done = json.loads(results.read_text()) if results.exists() else {}
    wanted = json.loads(json.dumps(asdict(settings)))                  # tuples as JSON keeps them: lists
    if done.get("settings") != wanted:
        done = {"settings": wanted, "cells": {}}
    cells = done["cells"]
    data = vqa_set(settings.eval_scenes, seed=1)
    started = time.time()
    for encoder in settings.encoders:
        for fusion in settings.fusions:
            pretrained_dir = work / "pretrained" / f"{fusion}-{encoder}"
            for pretrained in (False, True):
                for fraction in settings.fractions:
                    key = cell_key(encoder, fusion, pretrained, fraction)
                    if key in cells:
                        continue
                    quiet = StringIO()
                    if pretrained and not weights.has_weights(pretrained_dir):
                        t = time.time()
                        with redirect_stdout(quiet):
                            train(_train_config(settings, work, fusion=fusion, encoder=encoder, stage="pretrain",
                                                steps=settings.pretrain_steps, pool=settings.pretrain_pool,
                                                out=str(pretrained_dir)), resume=False)
                        meta = json.loads((pretrained_dir / "config.json").read_text())["training"]
                        meta["study_seconds"] = round(time.time() - t, 1)
                        (pretrained_dir / "study.json").write_text(json.dumps(meta))
                    t = time.time()
                    out = work / "finetuned" / key.replace("/", "-")
                    with redirect_stdout(quiet):
                        train(_train_config(settings, work, fusion=fusion, encoder=encoder, stage="finetune",
                                            steps=settings.finetune_steps, pool=settings.finetune_pool,
                                            data_fraction=fraction, init=str(pretrained_dir) if pretrained else None,
                                            out=str(out)), resume=False)
                    train_seconds = time.time() - t
                    report = accuracy(weights.load_net(out), data)
                    cells[key] = {"encoder": encoder, "fusion": fusion, "pretrained": pretrained,
                                  "fraction": fraction, "images": max(1, round(settings.finetune_pool * fraction)),
                                  "train_seconds": round(train_seconds, 1), **report}
                    done["seconds"] = round(done.get("seconds", 0) + time.time() - t, 1)
                    results.write_text(json.dumps(done, indent=2))
                    if progress:
                        print(f"{key:<45} VQA {report['vqa_accuracy']:.3f}  ({train_seconds:.0f} s; "
                              f"{time.time() - started:.0f} s so far)", flush=True)
    pretraining = done.setdefault("pretraining", {})
    for e in settings.encoders:
        for f in settings.fusions:
            folder = work / "pretrained" / f"{f}-{e}"
            if f"{f}-{e}" not in pretraining and (folder / "study.json").exists():
                pretraining[f"{f}-{e}"] = {
                    "seconds": json.loads((folder / "study.json").read_text())["study_seconds"],
                    **grounding(weights.load_net(folder), settings.eval_scenes)}
    results.write_text(json.dumps(done, indent=2))
    return done


def pretraining_table(done: dict) -> str:
    """Markdown: for each pretrained model, masked colour / shape / size words recovered from the image."""
    lines = ["| image encoder | fusion | masked word right | colour (chance 17 %) | shape (25 %) | size (50 %) |",
             "|---|---|---|---|---|---|"]
    for key, p in done.get("pretraining", {}).items():
        fusion, encoder = key.split("-", 1)
        k = p["by_kind"]
        lines.append(f"| {LABELS[encoder]} | {fusion} | {p['masked_word_accuracy']:.1%} | "
                     f"{k.get('colour', 0):.1%} | {k.get('shape', 0):.1%} | {k.get('size', 0):.1%} |")
    return "\n".join(lines)


def table(done: dict) -> str:
    """Markdown: one row per encoder × fusion × start, one column per fraction of the labelled data."""
    s = done["settings"]
    fractions = s["fractions"]
    head = ["image encoder", "fusion", "pretraining"] + [
        f"{f:.0%} ({max(1, round(s['finetune_pool'] * f))} images)" for f in fractions]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for encoder in s["encoders"]:
        for fusion in s["fusions"]:
            for pretrained in (False, True):
                row = [LABELS[encoder], fusion, STARTS[pretrained]]
                for f in fractions:
                    cell = done["cells"].get(cell_key(encoder, fusion, pretrained, f))
                    row.append(f"{cell['vqa_accuracy']:.1%}" if cell else "—")
                lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def plot(done: dict, path: Path) -> Path:
    """One panel per fusion: VQA accuracy against the share of labelled data, a line per encoder × start."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s = done["settings"]
    fig, axes = plt.subplots(1, len(s["fusions"]), figsize=(4.2 * len(s["fusions"]), 3.6), sharey=True,
                             squeeze=False)
    colours = {"patch": "tab:blue", "efficientnet_lite0": "tab:orange"}
    for ax, fusion in zip(axes[0], s["fusions"]):
        for encoder in s["encoders"]:
            for pretrained in (False, True):
                points = [(f, done["cells"][k]["vqa_accuracy"]) for f in s["fractions"]
                          if (k := cell_key(encoder, fusion, pretrained, f)) in done["cells"]]
                if points:
                    xs, ys = zip(*points)
                    ax.plot([100 * x for x in xs], [100 * y for y in ys], marker="o", color=colours[encoder],
                            linestyle="-" if pretrained else "--",
                            label=f"{LABELS[encoder]}, pretraining: {STARTS[pretrained]}")
        ax.set_xscale("log")
        ax.set_xticks([100 * f for f in s["fractions"]], [f"{f:.0%}" for f in s["fractions"]])
        ax.set_title(f"{fusion} fusion")
        ax.set_xlabel("labelled fine-tuning data")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("VQA accuracy, held-out scenes (%)")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=2, fontsize=8, frameon=False)
    fig.suptitle(f"VQA fine-tuning: {s['finetune_steps']} steps whatever the share; pretraining: "
                 f"{s['pretrain_steps']} steps on {s['pretrain_pool']} image–caption pairs", fontsize=9)
    fig.tight_layout(rect=(0, 0.13, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
