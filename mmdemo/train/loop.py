"""What every training loop here shares: seeding, AdamW with decay groups, the warm-up + cosine schedule, atomic
checkpoints."""
from __future__ import annotations

import math
import random
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import torch


def seed_everything(seed: int) -> None:
    """torch, numpy's global generator and `random`, all from one seed."""
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)


def adamw(named: Iterable[tuple[str, torch.nn.Parameter]], *, lr: float, weight_decay: float,
          betas: tuple[float, float] = (0.9, 0.98)) -> torch.optim.AdamW:
    """AdamW with weight decay on matrices only (not biases, norms or position embeddings)."""
    named = list(named)
    decays = lambda n, p: p.ndim >= 2 and "pos" not in n  # noqa: E731
    return torch.optim.AdamW([{"params": [p for n, p in named if decays(n, p)], "weight_decay": weight_decay},
                              {"params": [p for n, p in named if not decays(n, p)], "weight_decay": 0.0}],
                             lr=lr, betas=betas)


def cosine_lr(step: int, *, lr: float, warmup: int, steps: int, floor: float = 0.02) -> float:
    """Linear warm-up over `warmup` steps, then a cosine down to `floor` × lr at `steps`."""
    if step < warmup:
        return lr * (step + 1) / warmup
    t = (step - warmup) / max(1, steps - warmup)
    return lr * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * t)))


def set_lr(opt: torch.optim.Optimizer, lr: float) -> None:
    for g in opt.param_groups:
        g["lr"] = lr


def clip_and_step(opt: torch.optim.Optimizer, loss: torch.Tensor, max_norm: float = 1.0) -> None:
    """Backward, clip the gradient norm of every optimised parameter, step."""
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_([p for g in opt.param_groups for p in g["params"]], max_norm)
    opt.step()


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Written to a temporary file, then renamed: an interrupted save never leaves half a checkpoint."""
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    tmp.replace(path)


def load_checkpoint(path: Path) -> dict[str, Any] | None:
    return torch.load(path, weights_only=False) if path.exists() else None
