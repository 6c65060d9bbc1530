"""Training settings of the shapes models (no torch here: the CLI reads the defaults)."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass
class TrainConfig:
    fusion: str = "cross"
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
    seed: int = 0                 # model init and question sampling
    run_dir: str = "runs"         # checkpoints and the rendered pool cache
    out: str | None = None        # model folder to write at the end (default assets/models/shapes-<fusion>)
    checkpoint_every: int = 500
    eval_every: int = 1000
    threads: int | None = None
