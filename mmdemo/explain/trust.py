"""Which caption-word maps to believe: the measured pointing rates shipped with a model card.

`python -m mmdemo eval-explain --target caption-words --contrast --save assets/models/NAME/caption-words.json`
writes them; the app reads them here (no torch import) to show, beside a word's map, how often that method's map
of that kind of word pointed at the word's own object on held-out scenes.
"""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

from ..config import ASSETS
from ..world.vocab import COLORS, SHAPES, SIZES

RESULTS_FILE = "caption-words.json"
KINDS = {"colour": COLORS, "shape": SHAPES, "size": SIZES}


def word_kind(word: str | None) -> str | None:
    """colour | shape | size for a word naming an object attribute (plurals too), else None."""
    w = (word or "").strip().lower()
    for kind, vocab in KINDS.items():
        if w in vocab or (w.endswith("s") and w[:-1] in vocab and kind == "shape"):
            return kind
    return None


def results_path(model_name: str) -> Path:
    return ASSETS / "models" / model_name / RESULTS_FILE


@lru_cache(maxsize=32)
def _load(path: str, mtime: float) -> dict[str, Any] | None:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def load_results(model_name: str | None) -> dict[str, Any] | None:
    """The caption-word report shipped with the model's card, or None."""
    if not model_name or "/" in model_name or model_name.startswith("."):
        return None
    path = results_path(model_name)
    try:
        mtime = path.stat().st_mtime
    except OSError:
        return None
    return _load(str(path), mtime)


def measured(model_name: str | None, method: str, word: str | None, contrastive: bool = False) -> dict[str, Any] | None:
    """{"method", "variant", "kind", "pointing", "words", "scenes"}: how often `method`'s map of a word of this kind
    pointed at the word's own object; None when the word names no attribute or nothing was measured."""
    kind = word_kind(word)
    report = load_results(model_name)
    if kind is None or report is None:
        return None
    variant = "contrastive" if contrastive else "plain"
    row = report.get("variants", {}).get(variant, {}).get(method)
    if not row or row.get("pointing_game", {}).get(kind) is None:
        return None
    return {"method": method, "variant": variant, "kind": kind, "pointing": row["pointing_game"][kind],
            "words": report.get("words_by_kind", {}).get(kind), "scenes": report.get("scenes")}


def recommended(model_name: str | None) -> dict[str, Any] | None:
    """{"method", "variant"}: the map the report found most reliable on colour and shape words together."""
    report = load_results(model_name)
    return None if report is None else report.get("recommended")


def describe(m: dict[str, Any] | None) -> str:
    """One line for the app."""
    if m is None:
        return "Not measured for this word: only colour, shape and size words of the shapes models are scored."
    how = "contrastive " if m["variant"] == "contrastive" else ""
    return (f"Measured: the {how}{m['method']} map of a {m['kind']} word points at that word's own object "
            f"{m['pointing']:.0%} of the time ({m['words']} words, {m['scenes']} held-out scenes).")
