"""Training settings of the shapes models (no torch here: the CLI reads the defaults)."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass
class TrainConfig:
    fusion: str = "cross"
    stage: str = "finetune"       # pretrain: MLM + ITM on image–caption pairs | finetune: VQA, captions, patch classes
    encoder: str = "patch"        # patch (trained from scratch) | efficientnet_lite0 (frozen, ImageNet)
    image_size: int | None = None  # default: 64 for patch, 224 for efficientnet_lite0 (its 7×7 grid)
    steps: int = 4000             # optimiser steps
    batch: int = 64               # images per step
    lr: float = 1.5e-3
    weight_decay: float = 0.05
    warmup: int = 300
    questions: int = 4            # questions per image per step (the image encoder runs once for all)
    focus: tuple[str, ...] = ("relation", "where", "count_shape", "count_color")   # drawn more often
    focus_share: float = 0.3      # share of questions drawn from the focus types
    init: str | None = None       # start from this model folder's weights instead of random ones
    readout: bool = True          # fusion attention reads out where it looked (ShapesConfig.readout)
    pool: int = 80_000            # rendered training views; questions are fresh every step
    data_fraction: float = 1.0    # fine-tuning uses the labels of only the first share of the pool's views
    tasks: tuple[str, ...] = ("vqa", "lm", "aux")   # fine-tuning losses: answers, captions, per-patch classes
    mask_prob: float = 0.15       # pretraining: share of caption words masked
    seed: int = 0                 # model init and question sampling
    run_dir: str = "runs"         # checkpoints and the rendered pool cache
    out: str | None = None        # model folder to write at the end (default assets/models/shapes-<fusion>)
    checkpoint_every: int = 500
    eval_every: int = 1000
    threads: int | None = None
