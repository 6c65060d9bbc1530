"""Captions and questions of the shapes world, each question with its answer and evidence objects."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .scene import Obj, Scene
from .vocab import COLORS, NUMBERS, QUESTION_TYPES, RELATIONS, SHAPES

REL_MIN_GAP = 0.08   # relational questions only where the two centers are this far apart on the axis


@dataclass(frozen=True)
class Question:
    text: str
    answer: str
    type: str                      # one of QUESTION_TYPES
    evidence: tuple[int, ...]      # indices into scene.objects that the answer rests on


def caption(scene: Scene) -> str:
    """One sentence naming every object left to right, e.g. 'a large red circle to the left of a small blue star'."""
    names = [f"a {o.name}" for o in scene.left_to_right()]
    if len(names) == 1:
        return names[0]
    if len(names) == 2:
        return f"{names[0]} to the left of {names[1]}"
    return ", ".join(names[:-1]) + f" and {names[-1]}"


def _plural(shape: str) -> str:
    return shape + "s"


def _unique(scene: Scene, **attrs: str) -> list[int]:
    """Indices of objects that are the only ones matching all attrs (e.g. color='red', shape='star')."""
    matches = [i for i, o in enumerate(scene.objects) if all(getattr(o, k) == v for k, v in attrs.items())]
    return matches if len(matches) == 1 else []


def _relation_holds(a: Obj, b: Obj, rel: str) -> bool:
    return {"left of": a.center[0] < b.center[0], "right of": a.center[0] > b.center[0],
            "above": a.center[1] < b.center[1], "below": a.center[1] > b.center[1]}[rel]


def _clear(scene: Scene, a: Obj, b: Obj, rel: str) -> bool:
    if rel in ("left of", "right of"):
        return abs(a.center[0] - b.center[0]) >= REL_MIN_GAP * scene.width
    return abs(a.center[1] - b.center[1]) >= REL_MIN_GAP * scene.height


def all_questions(scene: Scene) -> list[Question]:
    """Every question of every type that has a clear answer for this scene."""
    objs, out = scene.objects, []
    for i, o in enumerate(objs):
        if _unique(scene, shape=o.shape):
            out.append(Question(f"what color is the {o.shape}?", o.color, "color", (i,)))
        if _unique(scene, color=o.color):
            out.append(Question(f"what shape is the {o.color} object?", o.shape, "shape", (i,)))
        if _unique(scene, color=o.color, shape=o.shape):
            out.append(Question(f"what size is the {o.color} {o.shape}?", o.size, "size", (i,)))
            if not scene.near_grid_line(o):
                out.append(Question(f"where is the {o.color} {o.shape}?", scene.position(o), "where", (i,)))
    for s in SHAPES:
        ev = tuple(i for i, o in enumerate(objs) if o.shape == s)
        out.append(Question(f"how many {_plural(s)} are there?", NUMBERS[len(ev)], "count_shape", ev))
    for c in COLORS:
        ev = tuple(i for i, o in enumerate(objs) if o.color == c)
        out.append(Question(f"how many {c} objects are there?", NUMBERS[len(ev)], "count_color", ev))
    out.append(Question("how many objects are there?", NUMBERS[len(objs)], "count_all", tuple(range(len(objs)))))
    for c in COLORS:
        for s in SHAPES:
            ev = tuple(i for i, o in enumerate(objs) if o.color == c and o.shape == s)
            out.append(Question(f"is there a {c} {s}?", "yes" if ev else "no", "exists", ev))
    for i, a in enumerate(objs):
        for j, b in enumerate(objs):
            if i == j or not (_unique(scene, color=a.color, shape=a.shape) and _unique(scene, color=b.color, shape=b.shape)):
                continue
            for rel in RELATIONS:
                if _clear(scene, a, b, rel):
                    ans = "yes" if _relation_holds(a, b, rel) else "no"
                    out.append(Question(f"is the {a.color} {a.shape} {rel} the {b.color} {b.shape}?",
                                        ans, "relation", (i, j)))
    return out


def sample_question(scene: Scene, rng: np.random.Generator, qtype: str | None = None) -> Question:
    """One question: a type drawn uniformly among those this scene supports, balanced yes/no where it applies."""
    pool = all_questions(scene)
    by_type: dict[str, list[Question]] = {}
    for q in pool:
        by_type.setdefault(q.type, []).append(q)
    if qtype is None:
        types = [t for t in QUESTION_TYPES if t in by_type]
        qtype = types[rng.integers(len(types))]
    candidates = by_type[qtype]
    if qtype in ("exists", "relation"):  # balance yes and no
        want = "yes" if rng.random() < 0.5 else "no"
        balanced = [q for q in candidates if q.answer == want]
        candidates = balanced or candidates
        if qtype == "exists" and want == "no":  # prefer near misses: right color or right shape present
            near = [q for q in candidates if any(w in q.text for o in scene.objects for w in (f" {o.color} ", f" {o.shape}?"))]
            candidates = near or candidates
    return candidates[rng.integers(len(candidates))]
