"""Pixels for the shapes models: resize any RGB image to the model's square input."""
from __future__ import annotations

import numpy as np
from PIL import Image


def to_pixels(image: Image.Image, size: int) -> np.ndarray:
    """RGB PIL image of any size -> (3, size, size) uint8. Aspect ratio is not kept: the 3×3 grid stays the 3×3 grid."""
    if image.mode != "RGB":
        image = image.convert("RGB")
    return np.asarray(image.resize((size, size), Image.BILINEAR)).transpose(2, 0, 1).copy()
