"""Scenes of the shapes world: objects with shape, color, size, position; the seeded sampler."""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .vocab import COLORS, POSITIONS, SHAPES, SIZES

SIZE_RADIUS = {"small": 0.085, "large": 0.14}   # radius as a fraction of min(width, height)
MARGIN = 0.02                                   # free space around each object, same unit
MIN_X_GAP = 0.08                                # centers differ at least this much in x (fraction of width)


@dataclass
class Obj:
    shape: str
    color: str
    size: str
    center: tuple[float, float]          # (x, y) in pixels
    radius: float                        # pixels
    angle: float = 0.0                   # degrees, small rotation as people draw
    rgb: tuple[int, int, int] = (0, 0, 0)

    @property
    def name(self) -> str:
        return f"{self.size} {self.color} {self.shape}"

    @property
    def bbox(self) -> tuple[int, int, int, int]:
        """(x0, y0, x1, y1) in pixels, enclosing the drawn shape."""
        x, y = self.center
        r = self.radius * 1.2
        return (int(math.floor(x - r)), int(math.floor(y - r)), int(math.ceil(x + r)), int(math.ceil(y + r)))


@dataclass
class Scene:
    width: int
    height: int
    objects: list[Obj]
    background: tuple[int, int, int] = (245, 245, 240)
    seed: int | None = None
    masks: list[np.ndarray] | None = field(default=None, repr=False)  # (H, W) bool per object, after render

    def position(self, obj: Obj) -> str:
        """Which cell of the 3x3 grid holds the object's center."""
        col = min(int(3 * obj.center[0] / self.width), 2)
        row = min(int(3 * obj.center[1] / self.height), 2)
        return POSITIONS[3 * row + col]

    def near_grid_line(self, obj: Obj, tol: float = 0.03) -> bool:
        """Is the center too close to a line of the 3x3 grid for 'where' to be clear?"""
        fx, fy = obj.center[0] / self.width, obj.center[1] / self.height
        return any(abs(f - t) < tol for f in (fx, fy) for t in (1 / 3, 2 / 3))

    def left_to_right(self) -> list[Obj]:
        return sorted(self.objects, key=lambda o: o.center[0])

    def to_dict(self) -> dict:
        return {"width": self.width, "height": self.height, "seed": self.seed,
                "objects": [{"shape": o.shape, "color": o.color, "size": o.size,
                             "center": [round(o.center[0], 2), round(o.center[1], 2)],
                             "bbox": list(o.bbox)} for o in self.objects]}


def sample_scene(rng: np.random.Generator | int, width: int = 128, height: int | None = None, *,
                 n_objects: int | None = None, jitter: bool = True) -> Scene:
    """A random scene: 1-4 non-overlapping objects, distinct centers in x, light noisy background."""
    if not isinstance(rng, np.random.Generator):
        seed = int(rng)
        rng = np.random.default_rng(seed)
    else:
        seed = None
    height = height or width
    unit = min(width, height)
    n = int(n_objects or rng.integers(1, 5))
    for _ in range(100):  # rejection sampling; a few tries always suffice at these densities
        objects: list[Obj] = []
        for _ in range(n):
            obj = _place(rng, width, height, unit, objects, jitter)
            if obj is None:
                break
            objects.append(obj)
        if len(objects) == n:
            break
    else:
        raise RuntimeError("could not place the objects; the canvas is too small")
    tint = rng.integers(-8, 9, size=3) if jitter else np.zeros(3, int)
    background = tuple(int(v) for v in np.clip(np.array([245, 245, 240]) + tint, 225, 255))
    return Scene(width, height, objects, background, seed)


def _place(rng, width, height, unit, placed, jitter) -> Obj | None:
    for _ in range(60):
        size = SIZES[rng.integers(len(SIZES))]
        r = SIZE_RADIUS[size] * unit * (rng.uniform(0.9, 1.1) if jitter else 1.0)
        pad = r * 1.2 + MARGIN * unit
        if 2 * pad >= min(width, height):
            continue
        x, y = rng.uniform(pad, width - pad), rng.uniform(pad, height - pad)
        if all(math.hypot(x - o.center[0], y - o.center[1]) > 1.2 * (r + o.radius) + MARGIN * unit
               and abs(x - o.center[0]) > MIN_X_GAP * width for o in placed):
            color = COLORS[rng.integers(len(COLORS))]
            shape = SHAPES[rng.integers(len(SHAPES))]
            angle = float(rng.uniform(-15, 15)) if jitter and shape != "circle" else 0.0
            from .vocab import RGB
            rgb = np.array(RGB[color]) + (rng.integers(-18, 19, size=3) if jitter else 0)
            return Obj(shape, color, size, (float(x), float(y)), float(r), angle,
                       tuple(int(v) for v in np.clip(rgb, 0, 255)))
    return None
