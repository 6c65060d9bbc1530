"""Agreement between annotators on free text: word similarity (word-level Levenshtein) and chrF (sacrebleu).

    word_similarity("a red circle", "a blue circle")      # 1 - 1/3
    agreement({"img1": {"ana": "a red circle", "ben": "a blue circle"}})

Both are computed per item over every pair of annotators who wrote it, then averaged over items with
at least two texts. word similarity is in [0, 1]; chrF on sacrebleu's 0–100 scale, averaged over both
directions of a pair (chrF weighs recall over precision, so chrF(a, b) ≠ chrF(b, a)).
"""
from __future__ import annotations

from functools import lru_cache
from itertools import combinations
from threading import Lock
from statistics import fmean
from typing import Any, Hashable, Mapping

from ._text import word_distance

_LOCK = Lock()


def word_similarity(a: str, b: str) -> float:
    """1 − word-level Levenshtein distance / the longer text's word count (two empty texts: 1.0)."""
    wa, wb = a.split(), b.split()
    longest = max(len(wa), len(wb))
    return 1.0 if longest == 0 else 1.0 - word_distance(wa, wb) / longest


def chrf(a: str, b: str) -> float:
    """chrF of a against b and of b against a, averaged (sacrebleu, 0–100). Remembered per pair of texts,
    so a campaign's status recomputes only what changed."""
    return _chrf(a, b) if a <= b else _chrf(b, a)


@lru_cache(maxsize=100_000)
def _chrf(a: str, b: str) -> float:
    metric = _metric()
    with _LOCK:                 # one sacrebleu metric object, shared by the app's threads
        return (metric.sentence_score(a, [b]).score + metric.sentence_score(b, [a]).score) / 2


@lru_cache(maxsize=1)
def _metric() -> Any:
    from sacrebleu.metrics import CHRF

    return CHRF()


def agreement(texts: Mapping[Hashable, Mapping[str, str]],
              known_chrf: Mapping[Hashable, float] | None = None) -> dict[str, Any]:
    """`texts`: item → {annotator: text}. Returns the campaign's figures, each item's, and each annotator's.
    `known_chrf`: item → its chrF already computed for these same texts (chrF is the slow part).

    {"word_similarity": mean over items (None when no item has two texts), "chrf": likewise,
     "items": {item: {"word_similarity", "chrf", "pairs"}},
     "annotators": {annotator: mean word similarity of the pairs they are in}}
    """
    items: dict[Hashable, dict[str, Any]] = {}
    mine: dict[str, list[float]] = {}
    for item, by_annotator in texts.items():
        pairs = list(combinations(sorted(by_annotator), 2))
        if not pairs:
            continue
        sims = []
        for x, y in pairs:
            sim = word_similarity(by_annotator[x], by_annotator[y])
            sims.append(sim)
            mine.setdefault(x, []).append(sim)
            mine.setdefault(y, []).append(sim)
        if known_chrf is not None and item in known_chrf:
            item_chrf = known_chrf[item]
        else:
            item_chrf = fmean(chrf(by_annotator[x], by_annotator[y]) for x, y in pairs)
        items[item] = {"word_similarity": fmean(sims), "chrf": item_chrf, "pairs": len(pairs)}
    return {
        "word_similarity": fmean(i["word_similarity"] for i in items.values()) if items else None,
        "chrf": fmean(i["chrf"] for i in items.values()) if items else None,
        "items": items,
        "annotators": {a: fmean(v) for a, v in mine.items()},
    }


def texts_key(by_annotator: Mapping[str, str]) -> str:
    """A digest of one item's texts by annotator: its remembered chrF is valid while this is unchanged."""
    import hashlib
    import json

    return hashlib.sha256(json.dumps(sorted(by_annotator.items()), ensure_ascii=False).encode()).hexdigest()
