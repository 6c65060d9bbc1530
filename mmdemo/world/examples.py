"""The app's example scenes: shapes-world images with fixed seeds, each with a question, its answer and its caption.

    python -m mmdemo.world.examples            # (re)writes assets/examples/scene-*.png and examples.json

The same seeds always give the same PNG bytes, so rerunning this leaves the tree unchanged.
"""
from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

from ..config import ASSETS
from .language import all_questions, caption
from .render import render
from .scene import sample_scene

FOLDER = ASSETS / "examples"
INDEX = "examples.json"


@dataclass(frozen=True)
class ExampleSpec:
    seed: int
    width: int
    height: int
    n_objects: int
    question_type: str             # which kind of question the example shows off (one of vocab.QUESTION_TYPES)


SPECS: tuple[ExampleSpec, ...] = (
    ExampleSpec(seed=11, width=256, height=256, n_objects=1, question_type="color"),
    ExampleSpec(seed=22, width=256, height=256, n_objects=2, question_type="relation"),
    ExampleSpec(seed=33, width=256, height=256, n_objects=3, question_type="count_all"),
    ExampleSpec(seed=44, width=256, height=256, n_objects=4, question_type="shape"),
    ExampleSpec(seed=52, width=256, height=256, n_objects=2, question_type="where"),
    ExampleSpec(seed=66, width=320, height=224, n_objects=3, question_type="exists"),
)


def _pick_question(questions, qtype: str):
    """The first question of the wanted type; for yes/no types prefer a 'yes' (it is more telling on screen)."""
    typed = [q for q in questions if q.type == qtype] or list(questions)
    yes = [q for q in typed if q.answer == "yes"]
    return (yes or typed)[0]


def write_examples(folder: str | Path = FOLDER) -> list[dict]:
    """Render every spec to `folder/scene-N.png` and write `folder/examples.json`; return the index rows."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for n, spec in enumerate(SPECS, start=1):
        scene = sample_scene(spec.seed, spec.width, spec.height, n_objects=spec.n_objects)
        image = render(scene)
        name = f"scene-{n}.png"
        image.save(folder / name, format="PNG", optimize=True)
        q = _pick_question(all_questions(scene), spec.question_type)
        rows.append({"file": name, "width": spec.width, "height": spec.height, "seed": spec.seed,
                     "caption": caption(scene), "question": q.text, "answer": q.answer,
                     "question_type": q.type, "objects": scene.to_dict()["objects"]})
    (folder / INDEX).write_text(json.dumps(rows, indent=2) + "\n")
    return rows


def read_examples(folder: str | Path = FOLDER) -> list[dict]:
    """The index rows with `path` (absolute) added; [] when the examples were never written."""
    folder = Path(folder)
    index = folder / INDEX
    if not index.is_file():
        return []
    rows = json.loads(index.read_text())
    return [{**r, "path": str((folder / r["file"]).resolve())} for r in rows if (folder / r["file"]).is_file()]


def example_scene(row: dict):
    """The example's scene (objects and pixel masks) and its image, re-rendered from the row's seed."""
    spec = next(sp for sp in SPECS if sp.seed == row["seed"])
    scene = sample_scene(spec.seed, spec.width, spec.height, n_objects=spec.n_objects)
    return scene, render(scene)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    folder = Path(argv[0]) if argv else FOLDER
    for row in write_examples(folder):
        print(f"{row['file']:<12} {row['width']}×{row['height']}  {row['caption']!r}  "
              f"Q: {row['question']!r} → {row['answer']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
