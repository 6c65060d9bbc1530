"""The labelled question set on the bundled photos (assets/models/photo-lite/questions.json) and accuracy per form."""
from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Sequence

from ...config import ASSETS
from .vocabulary import CARD_DIR

QUESTIONS_FILE = CARD_DIR / "questions.json"
PHOTOS_DIR = ASSETS / "photos"
FORMS = ("what", "is-there", "where", "colour", "cant")


@dataclass(frozen=True)
class Item:
    photo: str                          # file name under assets/photos
    question: str
    answers: tuple[str, ...]            # every acceptable answer; CANT_MARK: the can't-answer reply
    form: str                           # one of FORMS ("cant": the right reply is the can't-answer one)
    split: str                          # "val" or "test"


@lru_cache(maxsize=2)
def load_questions(path: Path = QUESTIONS_FILE) -> tuple[tuple[Item, ...], str]:
    """(items, the marker that stands for the can't-answer reply)."""
    doc = json.loads(Path(path).read_text())
    items = tuple(Item(q["photo"], q["question"], tuple(q["answers"]), q["form"], doc["split"][q["photo"]])
                  for q in doc["questions"])
    return items, doc["cant"]


def items(split: str | None = None) -> list[Item]:
    return [it for it in load_questions()[0] if split in (None, it.split)]


def is_correct(answer: str, item: Item) -> bool:
    from .model import CANT

    if item.answers == (load_questions()[1],):
        return answer.startswith(CANT)
    return answer.lower() in {a.lower() for a in item.answers}


def evaluate(model, chosen: Sequence[Item] | None = None, *, batch: int = 16) -> dict:
    """Ask every question; accuracy overall and per form, and each row (question, answer, prob, correct)."""
    from ...images import load_image

    chosen = list(items() if chosen is None else chosen)
    images = {name: load_image(PHOTOS_DIR / name) for name in {it.photo for it in chosen}}
    rows = []
    for i in range(0, len(chosen), batch):
        part = chosen[i:i + batch]
        for it, a in zip(part, model.answer([images[it.photo] for it in part], [it.question for it in part])):
            rows.append({"photo": it.photo, "question": it.question, "form": it.form, "split": it.split,
                         "answer": a.answer, "prob": round(a.prob, 4), "gold": list(it.answers),
                         "correct": is_correct(a.answer, it)})
    per_form = {}
    for form in FORMS:
        hits = [r["correct"] for r in rows if r["form"] == form]
        if hits:
            per_form[form] = {"n": len(hits), "correct": sum(hits), "accuracy": round(sum(hits) / len(hits), 4)}
    n = len(rows)
    return {"n": n, "correct": sum(r["correct"] for r in rows),
            "accuracy": round(sum(r["correct"] for r in rows) / n, 4) if n else 0.0, "per_form": per_form,
            "rows": rows}
