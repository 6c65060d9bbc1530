"""The result of one explanation, and the two ways a signed map becomes one to draw: relevance and upsampling."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..models.base import Target


@dataclass
class Explanation:
    method: str
    target: Target
    grid: np.ndarray                                # (h, w) relevance >= 0, max 1 (all zeros only if raw is zero)
    upsampled: np.ndarray                           # (H, W) the same, at the image's own size
    seconds: float
    text: list[tuple[str, float]] | None = None     # per question/caption word, signed, where the method gives one
    raw: np.ndarray | None = None                   # (h, w) the method's signed map

    def to_dict(self) -> dict:
        return {"method": self.method, "target": self.target.text, "grid": list(self.grid.shape),
                "map": np.round(self.grid, 4).tolist(), "seconds": round(self.seconds, 4),
                "text": [[t, round(s, 6)] for t, s in self.text] if self.text is not None else None}


def relevance(raw: np.ndarray, sign: str = "positive") -> np.ndarray:
    """Signed map -> non-negative map with max 1.

    "positive": what supports the target; a map with nothing positive falls back to its absolute value, so a
    non-zero map never comes out blank. "absolute": |raw|."""
    raw = np.nan_to_num(np.asarray(raw, dtype=np.float64))
    if sign not in ("positive", "absolute"):
        raise ValueError(f"sign must be positive or absolute, not {sign!r}")
    rel = np.clip(raw, 0, None) if sign == "positive" else np.abs(raw)
    if rel.max(initial=0) <= 0:
        rel = np.abs(raw)
    top = rel.max(initial=0)
    return (rel / top if top > 0 else rel).astype(np.float32)


def upsample(grid: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(h, w) -> (H, W) bilinear, for an image of PIL size (W, H); stays within [0, max]."""
    W, H = size
    t = torch.from_numpy(np.ascontiguousarray(grid, dtype=np.float32))[None, None]
    up = F.interpolate(t, size=(H, W), mode="bilinear", align_corners=False)[0, 0]
    return up.clamp_(0, float(grid.max(initial=0))).numpy()
