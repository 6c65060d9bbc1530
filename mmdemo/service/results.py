"""What the service hands back: plain dataclasses with the CLI's JSON shapes."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ModelChoice:
    """One entry of the model picker."""
    name: str
    tasks: tuple[str, ...]
    fusion: str
    summary: str
    domain: str = "photos"              # "shapes" (the shapes world) or "photos"

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "tasks": list(self.tasks), "fusion": self.fusion, "summary": self.summary,
                "domain": self.domain}


@dataclass(frozen=True)
class CaptionResult:
    model: str
    caption: str
    tokens: list[tuple[str, float]]     # (token, probability it was given when generated)
    seconds: float
    decoding: dict[str, Any]            # the settings it was generated with (`Decoding.to_dict()`)
    image_hash: str
    alternatives: tuple = ()            # per token, the model's most probable words at that step [(word, prob)]

    def to_dict(self) -> dict[str, Any]:
        """The CLI's caption JSON (each token with its "alternatives" where the model gave them), plus the
        decoding settings and the image's content hash."""
        tokens = [{"token": t, "prob": p} for t, p in self.tokens]
        for row, alts in zip(tokens, self.alternatives):
            row["alternatives"] = [{"token": a, "prob": q} for a, q in alts]
        return {"model": self.model, "caption": self.caption, "tokens": tokens,
                "seconds": self.seconds, "decoding": self.decoding, "image_hash": self.image_hash}


@dataclass(frozen=True)
class AnswerResult:
    model: str
    question: str
    answer: str
    prob: float
    top_k: list[tuple[str, float]]
    seconds: float
    image_hash: str

    def to_dict(self) -> dict[str, Any]:
        """The CLI's ask JSON, plus the image's content hash."""
        return {"model": self.model, "question": self.question, "answer": self.answer, "prob": self.prob,
                "top_k": [{"answer": a, "prob": p} for a, p in self.top_k], "seconds": self.seconds,
                "image_hash": self.image_hash}


@dataclass(frozen=True)
class SavedCorrection:
    id: str
    count: int                          # live corrections in the store after this save
    diff: list[tuple[str, str]]         # word-level diff, (op, words): op is equal | delete | insert

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "count": self.count, "diff": [{"op": o, "text": t} for o, t in self.diff]}
