"""Metrics for any captions against their references (one reference each: the correction, or the true caption).

- exact match (after trimming and lower-casing) and object-mention F1 where the shapes world defines mentions
  ("size colour shape" phrases, `evaluate.mention_f1`);
- BLEU-4 and chrF, corpus level, from sacrebleu (0–100, as sacrebleu reports them);
- CIDEr-D from pycocoevalcap (its `Cider` is the CIDEr-D of the COCO caption evaluation: n-grams 1–4, a length
  penalty, clipped counts, ×10); IDF comes from the references, so it needs a handful of items to mean much;
- word edit distance to the reference (rapidfuzz Levenshtein over words), its mean and per reference word.
"""
from __future__ import annotations

import re
from statistics import fmean
from typing import Sequence

from ..errors import InputError

_PUNCT = re.compile(r"[^\w\s]")


def words(text: str) -> list[str]:
    """Lower-cased words, punctuation dropped (the tokenisation CIDEr and the edit distance see)."""
    return _PUNCT.sub(" ", text.lower()).split()


def _same(a: str, b: str) -> bool:
    return " ".join(a.lower().split()) == " ".join(b.lower().split())


def cider_d(predictions: Sequence[str], references: Sequence[str]) -> float:
    from pycocoevalcap.cider.cider import Cider

    res = {i: [" ".join(words(p))] for i, p in enumerate(predictions)}
    gts = {i: [" ".join(words(r))] for i, r in enumerate(references)}
    score, _ = Cider().compute_score(gts, res)
    return float(score)


def edit_distances(predictions: Sequence[str], references: Sequence[str]) -> list[int]:
    from rapidfuzz.distance import Levenshtein

    return [Levenshtein.distance(words(p), words(r)) for p, r in zip(predictions, references)]


def caption_metrics(predictions: Sequence[str], references: Sequence[str], *, mentions: bool = False) -> dict:
    """{"n", "exact", "mention_f1" (None unless `mentions`), "bleu", "chrf", "cider_d", "edit_distance",
    "edit_rate"}; exact and mention F1 are shares in [0, 1], BLEU and chrF 0–100, CIDEr-D 0–10."""
    import sacrebleu

    from .evaluate import mention_f1

    predictions, references = [str(p) for p in predictions], [str(r) for r in references]
    if len(predictions) != len(references):
        raise InputError(f"{len(predictions)} captions but {len(references)} references")
    if not predictions:
        raise InputError("no captions to score")
    distances = edit_distances(predictions, references)
    return {
        "n": len(predictions),
        "exact": fmean(_same(p, r) for p, r in zip(predictions, references)),
        "mention_f1": fmean(mention_f1(p, r) for p, r in zip(predictions, references)) if mentions else None,
        "bleu": float(sacrebleu.corpus_bleu(predictions, [references]).score),
        "chrf": float(sacrebleu.corpus_chrf(predictions, [references]).score),
        "cider_d": cider_d(predictions, references),
        "edit_distance": fmean(distances),
        "edit_rate": fmean(d / max(1, len(words(r))) for d, r in zip(distances, references)),
    }
