"""Other ways to draw a scene of the shapes world (shifts of its look, same objects, same captions): shapes drawn as
outlines instead of filled, or on a dark background. The embedded models never saw either while training."""
from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from .render import object_mask, outline
from .scene import Scene

STYLES = ("outline", "dark")
DARK = (28, 30, 36)                     # the dark background's colour


def render_styled(scene: Scene, style: str, *, noise: float = 3.0, rng: np.random.Generator | None = None,
                  line: float = 0.025) -> Image.Image:
    """RGB image of the scene drawn in `style`, anti-aliased; fills `scene.masks` as `render` does.

    outline: each shape's border only, `line` × the shorter side wide, on the usual light background;
    dark: filled shapes on a dark background."""
    if style not in STYLES:
        raise ValueError(f"style must be one of {', '.join(STYLES)}, not {style!r}")
    ss = 4
    background = DARK if style == "dark" else scene.background
    canvas = Image.new("RGB", (scene.width * ss, scene.height * ss), background)
    draw = ImageDraw.Draw(canvas)
    width = max(1, round(line * min(scene.width, scene.height) * ss))
    for obj in scene.objects:
        poly = outline(obj, ss)
        fill = obj.rgb if style == "dark" else None
        border = None if style == "dark" else obj.rgb
        if poly is None:
            x, y, r = obj.center[0] * ss, obj.center[1] * ss, obj.radius * ss
            draw.ellipse([x - r, y - r, x + r, y + r], fill=fill, outline=border, width=width)
        else:
            draw.polygon(poly, fill=fill, outline=border, width=width)
    canvas = canvas.resize((scene.width, scene.height), Image.BOX)
    scene.masks = [object_mask(scene, obj) for obj in scene.objects]
    if noise > 0:
        rng = rng or np.random.default_rng(scene.seed)
        pixels = np.asarray(canvas, dtype=np.float32) + rng.normal(0.0, noise, (scene.height, scene.width, 3))
        canvas = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    return canvas


def styled_view(rng: np.random.Generator, style: str) -> tuple[Scene, Image.Image]:
    """A fresh 128 px scene drawn in `style`."""
    from .scene import sample_scene

    scene = sample_scene(rng, 128)
    return scene, render_styled(scene, style, rng=rng)
