"""Scenes drawn the ways people draw them: other sizes and aspect ratios, aliasing, noise, JPEG."""
from __future__ import annotations

import io

import numpy as np
from PIL import Image

from .render import render
from .scene import Scene, sample_scene


def random_view(rng: np.random.Generator, *, variations: bool = True) -> tuple[Scene, Image.Image]:
    """A fresh scene and its image. Without variations: 128×128, anti-aliased, mild noise."""
    if not variations:
        scene = sample_scene(rng, 128)
        return scene, render(scene, rng=rng)
    width = int(rng.integers(96, 321))
    height = int(np.clip(width * np.exp(rng.uniform(-0.4, 0.4)), 96, 320))   # aspect within ~1.5
    scene = sample_scene(rng, width, height)
    image = render(scene, antialias=bool(rng.random() < 0.7), noise=float(rng.uniform(0, 6)), rng=rng)
    if rng.random() < 0.4:
        image = jpeg(image, int(rng.integers(30, 95)))
    return scene, image


def jpeg(image: Image.Image, quality: int) -> Image.Image:
    buf = io.BytesIO()
    image.save(buf, format="JPEG", quality=quality)
    buf.seek(0)
    return Image.open(buf).convert("RGB")


def patch_labels(scene: Scene, grid: int) -> np.ndarray:
    """(grid*grid, 3) int64: per patch the color, shape and size class (0 = background) of the object covering it."""
    from .vocab import COLORS, SHAPES, SIZES

    assert scene.masks is not None, "render the scene first"
    cover = np.stack([np.asarray(Image.fromarray(m.astype(np.float32)).resize((grid, grid), Image.BOX))
                      for m in scene.masks]) if scene.masks else np.zeros((0, grid, grid))   # (N, g, g)
    labels = np.zeros((grid * grid, 3), dtype=np.int64)
    if len(cover):
        best = cover.reshape(len(cover), -1).argmax(0)
        frac = cover.reshape(len(cover), -1).max(0)
        for p in np.flatnonzero(frac >= 0.25):
            o = scene.objects[best[p]]
            labels[p] = (COLORS.index(o.color) + 1, SHAPES.index(o.shape) + 1, SIZES.index(o.size) + 1)
    return labels
