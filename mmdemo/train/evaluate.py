"""Evaluation on freshly generated held-out scenes: VQA accuracy per question type, caption metrics."""
from __future__ import annotations

import re
import time
from collections import Counter, defaultdict

import numpy as np

from ..world.language import all_questions, caption
from ..world.views import random_view
from ..world.vocab import COLORS, QUESTION_TYPES, SHAPES, SIZES

EVAL_SEED = 1_000_003           # held-out views are seeded (EVAL_SEED + seed, i); training uses (1, i)
MENTION = re.compile(rf"\b({'|'.join(SIZES)}) ({'|'.join(COLORS)}) ({'|'.join(SHAPES)})\b")


def mentions(text: str) -> Counter:
    """Multiset of 'size color shape' phrases in a caption."""
    return Counter(m.group(0) for m in MENTION.finditer(text.lower()))


def mention_f1(pred: str, truth: str) -> float:
    p, t = mentions(pred), mentions(truth)
    hit = sum((p & t).values())
    if not p and not t:
        return 1.0
    prec, rec = hit / max(1, sum(p.values())), hit / max(1, sum(t.values()))
    return 0.0 if hit == 0 else 2 * prec * rec / (prec + rec)


def held_out(n: int, seed: int = 0, *, variations: bool = True):
    """n (scene, image, one question per supported type) triples, never seen in training."""
    for i in range(n):
        rng = np.random.default_rng([EVAL_SEED + seed, i])
        scene, image = random_view(rng, variations=variations)
        by_type: dict[str, list] = defaultdict(list)
        for q in all_questions(scene):
            by_type[q.type].append(q)
        qs = [v[rng.integers(len(v))] for t, v in by_type.items()]
        yield scene, image, qs


def evaluate(model, n: int = 1000, seed: int = 0, *, variations: bool = True, batch: int = 64,
             progress: bool = True) -> dict:
    """Run a model (the common protocol) over n held-out scenes."""
    from tqdm import tqdm

    started = time.time()
    correct, total = Counter(), Counter()
    exact, f1s = [], []
    items = list(held_out(n, seed, variations=variations))
    tasks = getattr(getattr(model, "info", None), "tasks", ("caption", "vqa"))
    for s in tqdm(range(0, n, batch), desc="eval", disable=not progress):
        chunk = items[s:s + batch]
        if "vqa" in tasks:
            imgs = [im for _, im, qs in chunk for _ in qs]
            qs = [q for _, _, qq in chunk for q in qq]
            for q, a in zip(qs, model.answer(imgs, [q.text for q in qs], top_k=1)):
                total[q.type] += 1
                correct[q.type] += a.answer == q.answer
        if "caption" in tasks:
            for (scene, _, _), c in zip(chunk, model.caption([im for _, im, _ in chunk])):
                truth = caption(scene)
                exact.append(c.text == truth)
                f1s.append(mention_f1(c.text, truth))
    by_type = {t: correct[t] / total[t] for t in QUESTION_TYPES if total[t]}
    return {
        "model": getattr(getattr(model, "info", None), "name", "?"), "scenes": n, "seed": seed,
        "variations": variations,
        "vqa_accuracy": sum(correct.values()) / max(1, sum(total.values())), "questions": sum(total.values()),
        "vqa_by_type": by_type, "questions_by_type": dict(total),
        "caption_exact": float(np.mean(exact)) if exact else None,
        "mention_f1": float(np.mean(f1s)) if f1s else None,
        "seconds": round(time.time() - started, 2),
    }


def evaluate_net(net, n: int = 200, seed: int = 0, **kw) -> dict:
    """The same, for a bare ShapesNet during training."""
    from ..models.shapes.model import ShapesModel

    return evaluate(ShapesModel(net, name=f"shapes-{net.cfg.fusion}"), n, seed, **kw)
