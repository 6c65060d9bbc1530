"""Inputs of the shapes models: any RGB image resized to the square input; token ids padded into a batch."""
from __future__ import annotations

import numpy as np
import torch
from PIL import Image


def to_pixels(image: Image.Image, size: int) -> np.ndarray:
    """RGB PIL image of any size -> (3, size, size) uint8. Aspect ratio is not kept: the 3×3 grid stays the 3×3 grid."""
    if image.mode != "RGB":
        image = image.convert("RGB")
    return np.asarray(image.resize((size, size), Image.BILINEAR)).transpose(2, 0, 1).copy()


def pad_ids(rows: list[list[int]], device: torch.device | str | None = None) -> torch.Tensor:
    """Token id lists -> (B, T) long tensor, right-padded with 0 ([PAD]) to the longest row."""
    out = torch.zeros(len(rows), max(map(len, rows)), dtype=torch.long)
    for i, r in enumerate(rows):
        out[i, : len(r)] = torch.tensor(r)
    return out.to(device) if device is not None else out
