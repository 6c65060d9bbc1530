"""Where a class's evidence lies and what colour it is, read off its Grad-CAM map: shares over the 3×3 positions of
the shapes world and over eleven basic colour names. Both come with probabilities (shares of the map's mass)."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ...world.vocab import POSITIONS

COLOURS = ("red", "orange", "yellow", "green", "blue", "purple", "pink", "brown", "black", "white", "grey")
KEEP = 0.5                  # the map's region: where it reaches at least this share of its maximum
SPREAD = 0.2                # a caption says "across the picture" when no third × third cell holds more of the map
POSITION_PHRASE = {
    "top left": "in the top left", "top": "at the top", "top right": "in the top right", "left": "on the left",
    "center": "in the center", "right": "on the right", "bottom left": "in the bottom left", "bottom": "at the bottom",
    "bottom right": "in the bottom right", "across": "across the picture"}


def region(cam: torch.Tensor, size: int) -> torch.Tensor:
    """(B, h, w) signed map -> (B, size, size) weights in [0, 1]: the positive map, upsampled, below KEEP × its max
    set to zero. A map with nothing positive gives equal weight everywhere (no evidence of place)."""
    up = F.interpolate(cam.clamp_min(0)[:, None].float(), size=(size, size), mode="bilinear",
                       align_corners=False)[:, 0]                              # (B, S, S)
    top = up.flatten(1).amax(1)[:, None, None]
    flat = top <= 0
    w = torch.where(up >= KEEP * top, up / top.clamp_min(1e-12), torch.zeros_like(up))
    return torch.where(flat, torch.ones_like(up), w)


def position_shares(weights: torch.Tensor) -> torch.Tensor:
    """(B, S, S) weights -> (B, 9) share of the mass in each third × third cell, POSITIONS order."""
    mass = F.adaptive_avg_pool2d(weights[:, None], (3, 3)).flatten(1)            # (B, 9)
    return mass / mass.sum(1, keepdim=True).clamp_min(1e-12)


def colour_names(rgb: np.ndarray) -> np.ndarray:
    """(..., 3) uint8 -> (...) index into COLOURS, by hue, saturation and value.

    Dark pixels are black; unsaturated ones white or grey; dull or dark reds, oranges and yellows are brown (a tabby's
    fur, wood); light desaturated reds are pink; the rest go by hue."""
    x = rgb.astype(np.float32) / 255
    mx, mn = x.max(-1), x.min(-1)
    v, chroma = mx, mx - mn
    s = np.where(mx > 0, chroma / np.maximum(mx, 1e-6), 0)
    r, g, b = x[..., 0], x[..., 1], x[..., 2]
    safe = np.maximum(chroma, 1e-6)
    hue = np.where(mx == r, ((g - b) / safe) % 6, np.where(mx == g, (b - r) / safe + 2, (r - g) / safe + 4)) * 60
    by_hue = np.select(
        [hue < 10, hue < 40, hue < 70, hue < 165, hue < 255, hue < 290, hue < 340],
        [COLOURS.index(c) for c in ("red", "orange", "yellow", "green", "blue", "purple", "pink")],
        COLOURS.index("red"))
    reddish = (hue < 10) | (hue >= 340)
    warm = (hue < 50) | (hue >= 340)
    brown = warm & (((v < 0.7) & (s < 0.6)) | (v < 0.45))
    pink = reddish & (s < 0.5) & (v > 0.75)
    coloured = (s >= 0.25) & (chroma >= 0.12)
    out = np.where(v > 0.8, COLOURS.index("white"), COLOURS.index("grey"))
    out = np.where(coloured, np.where(brown, COLOURS.index("brown"), np.where(pink, COLOURS.index("pink"), by_hue)),
                   out)
    return np.where(v < 0.2, COLOURS.index("black"), out)


def colour_shares(thumbs: np.ndarray, weights: torch.Tensor) -> np.ndarray:
    """(B, S, S, 3) uint8 pixels and (B, S, S) weights -> (B, 11) share of the weight each colour name holds."""
    names = colour_names(thumbs)                                                 # (B, S, S)
    w = weights.detach().float().cpu().numpy()
    out = np.zeros((len(thumbs), len(COLOURS)))
    for b in range(len(thumbs)):
        out[b] = np.bincount(names[b].ravel(), weights=w[b].ravel(), minlength=len(COLOURS))
    return out / np.maximum(out.sum(1, keepdims=True), 1e-12)


def top(shares, labels: tuple[str, ...], k: int) -> list[tuple[str, float]]:
    """The k largest shares with their labels, largest first."""
    shares = np.asarray(shares, dtype=np.float64)
    order = np.argsort(-shares, kind="stable")[:k]
    return [(labels[i], float(shares[i])) for i in order]


def place(shares) -> tuple[str, float]:
    """The caption's place: the position holding most of the map, or "across" when none holds SPREAD of it."""
    where, share = top(shares, POSITIONS, 1)[0]
    return (where, share) if share >= SPREAD else ("across", 1 - share)


__all__ = ["COLOURS", "POSITIONS", "POSITION_PHRASE", "colour_names", "colour_shares", "place", "position_shares",
           "region", "top"]
