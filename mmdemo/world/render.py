"""Draw a scene to an RGB image, with per-object pixel masks."""
from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw

from .scene import Obj, Scene


def outline(obj: Obj, scale: float = 1.0) -> list[tuple[float, float]] | None:
    """Polygon of the object's shape in pixel coordinates (None for a circle)."""
    x, y = obj.center[0] * scale, obj.center[1] * scale
    r = obj.radius * scale
    if obj.shape == "circle":
        return None
    if obj.shape == "square":
        h = r * 0.88
        pts = [(-h, -h), (h, -h), (h, h), (-h, h)]
    elif obj.shape == "triangle":
        R = r * 1.18
        pts = [(R * math.cos(math.radians(a)), R * math.sin(math.radians(a))) for a in (-90, 30, 150)]
        pts = [(px, py + R * 0.2) for px, py in pts]  # center the triangle's bulk on the object center
    elif obj.shape == "star":
        R, ri = r * 1.2, r * 1.2 * 0.45
        pts = [((R if k % 2 == 0 else ri) * math.cos(math.radians(-90 + 36 * k)),
                (R if k % 2 == 0 else ri) * math.sin(math.radians(-90 + 36 * k))) for k in range(10)]
    else:
        raise ValueError(f"unknown shape {obj.shape!r}")
    c, s = math.cos(math.radians(obj.angle)), math.sin(math.radians(obj.angle))
    return [(x + c * px - s * py, y + s * px + c * py) for px, py in pts]


def _draw(draw: ImageDraw.ImageDraw, obj: Obj, scale: float, fill) -> None:
    poly = outline(obj, scale)
    if poly is None:
        x, y, r = obj.center[0] * scale, obj.center[1] * scale, obj.radius * scale
        draw.ellipse([x - r, y - r, x + r, y + r], fill=fill)
    else:
        draw.polygon(poly, fill=fill)


def render(scene: Scene, *, antialias: bool = True, noise: float = 3.0,
           rng: np.random.Generator | None = None) -> Image.Image:
    """RGB image of the scene; fills `scene.masks` with one (H, W) bool mask per object."""
    ss = 4 if antialias else 1
    canvas = Image.new("RGB", (scene.width * ss, scene.height * ss), scene.background)
    draw = ImageDraw.Draw(canvas)
    for obj in scene.objects:
        _draw(draw, obj, ss, obj.rgb)
    if ss > 1:
        canvas = canvas.resize((scene.width, scene.height), Image.BOX)
    scene.masks = [object_mask(scene, obj) for obj in scene.objects]
    if noise > 0:
        rng = rng or np.random.default_rng(scene.seed)
        pixels = np.asarray(canvas, dtype=np.float32)
        pixels += rng.normal(0.0, noise, size=pixels.shape).astype(np.float32)
        canvas = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    return canvas


def object_mask(scene: Scene, obj: Obj) -> np.ndarray:
    """(H, W) bool: the pixels the object covers."""
    mask = Image.new("L", (scene.width, scene.height), 0)
    _draw(ImageDraw.Draw(mask), obj, 1.0, 255)
    return np.asarray(mask) > 127
