"""Does an image look like a shapes-world scene? (A light plain background with a few flat, saturated shapes.)

The shapes models know nothing else; the app uses this to suggest a photo model for anything that fails it.
"""
from __future__ import annotations

import numpy as np
from PIL import Image

BACKGROUND_SHARE = 0.45      # at least this much of the image is light and nearly grey
SATURATED_SHARE = 0.6        # of the rest, at least this much is strongly coloured


def scene_likeness(image: Image.Image) -> tuple[float, float]:
    """(share of light grey background, share of the other pixels that are saturated colour), on a 64×64 copy."""
    hsv = np.asarray(image.convert("RGB").resize((64, 64), Image.BILINEAR).convert("HSV"), dtype=np.float32) / 255
    s, v = hsv[..., 1], hsv[..., 2]
    background = (v > 0.82) & (s < 0.15)
    rest = ~background
    if not rest.any():
        return float(background.mean()), 0.0
    saturated = (s > 0.4) & (v > 0.3)
    return float(background.mean()), float(saturated[rest].mean())


def looks_like_scene(image: Image.Image) -> bool:
    background, saturated = scene_likeness(image)
    return background >= BACKGROUND_SHARE and saturated >= SATURATED_SHARE
