"""Choose photo-lite's thresholds on its validation data and write them to assets/models/photo-lite/config.json.

    python -m mmdemo.models.photo.calibrate [--dry-run]

- match threshold and margin: on matching.json (hand-written phrases and the classes they mean, or none), the pair
  with the best mean agreement (Jaccard of named classes; 1 for a correct "none"); ties go to the higher threshold;
- presence: on the "is there a X" questions of the validation photos in questions.json, the even-odds point of
  P(yes) fitted by maximum likelihood (see choose_presence).
The test photos are not looked at here.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import numpy as np
import torch

from .evaluate import PHOTOS_DIR, items
from .model import CONFIG_FILE, PhotoModel, PhotoSettings, load
from .text import MatchSettings, pick
from .vocabulary import CARD_DIR, Vocabulary

MATCHING_FILE = CARD_DIR / "matching.json"
THRESHOLDS = np.round(np.arange(0.40, 0.901, 0.025), 3)
MARGINS = (0.0, 0.02, 0.05, 0.08, 0.1, 0.15, 0.2)
PRESENCE_GRID = np.exp(np.linspace(np.log(0.005), np.log(0.95), 400))


def expected_classes(vocab: Vocabulary, names: list[str]) -> set[int]:
    out: set[int] = set()
    for n in names:
        e = vocab.lookup(n)
        if e is None or not e.classes:
            raise ValueError(f"matching.json: {n!r} is not an ImageNet lemma or group word")
        out.update(e.classes)
    return out


def agreement(named: set[int], expected: set[int]) -> float:
    if not named or not expected:
        return float(named == expected)
    return len(named & expected) / len(named | expected)


def choose_match(model: PhotoModel, path: Path = MATCHING_FILE) -> tuple[MatchSettings, dict]:
    """The (threshold, margin) with the best mean agreement on the validation phrases; exact words are skipped."""
    vocab, matcher = model.vocab, model.matcher
    rows = [(r["phrase"], expected_classes(vocab, r["names"])) for r in json.loads(path.read_text())["phrases"]]
    rows = [(p, e) for p, e in rows if matcher.exact(p) is None]
    sims = (matcher.encoder.encode([p for p, _ in rows]) @ matcher.embeddings.T).cpu()           # (N, E)
    table = []
    for t in THRESHOLDS:
        for m in MARGINS:
            s = MatchSettings(float(t), float(m), model.settings.match.temperature)
            scores = [agreement({c for k in pick(p, row, vocab, s).entries for c in vocab.entries[k].classes}, e)
                      for (p, e), row in zip(rows, sims)]
            table.append((float(np.mean(scores)), float(t), float(m)))
    score, t, m = max(table, key=lambda r: (round(r[0], 6), r[1], -r[2]))
    chosen = MatchSettings(t, m, model.settings.match.temperature)
    misses = []
    for (p, e), row in zip(rows, sims):
        named = {c for k in pick(p, row, vocab, chosen).entries for c in vocab.entries[k].classes}
        if agreement(named, e) < 1:
            misses.append({"phrase": p, "named": sorted(vocab.names[c] for c in named)[:6],
                           "expected": sorted(vocab.names[c] for c in e)[:6]})
    return chosen, {"phrases": len(rows), "agreement": round(score, 4), "misses": misses}


@torch.inference_mode()
def presence_scores(model: PhotoModel, split: str = "val") -> list[tuple[float, bool, str]]:
    """(presence score, truly there, question) for the split's answerable "is there a X" questions."""
    from ...images import load_image
    from .questions import parse

    out = []
    for it in items(split):
        p = parse(it.question)
        if it.form != "is-there" or p.form != "is-there" or not p.subject:
            continue
        m = model.matcher.match([p.subject])[0]
        if not m.ok:
            continue
        features, _ = model.forward(model.pixels([load_image(PHOTOS_DIR / it.photo)]))
        score = float(model.presence(features, model.matcher.class_weights(m)[None]))
        out.append((score, it.answers == ("yes",), f"{it.photo}: {it.question}"))
    return out


def choose_presence(scores: list[tuple[float, bool, str]]) -> tuple[float, dict]:
    """The even-odds point θ of P(yes) = σ(logit(score) − logit(θ)) that maximises the likelihood of the answers:
    a prior shift fitted by maximum likelihood (slope fixed at 1), so the model's odds stay its own."""
    s = np.clip(np.array([x for x, _, _ in scores]), 1e-6, 1 - 1e-6)
    yes = np.array([y for _, y, _ in scores])
    z = np.log(s / (1 - s))                                                     # (N,)
    shift = np.log(PRESENCE_GRID / (1 - PRESENCE_GRID))                          # (G,)
    margin = (z[None] - shift[:, None]) * np.where(yes, 1, -1)[None]             # (G, N)
    loglik = -np.logaddexp(0, -margin).sum(1)                                    # Σ log σ(±(z − shift))
    best = int(loglik.argmax())
    theta = float(PRESENCE_GRID[best])
    accuracy = float(np.mean((s >= theta) == yes))
    return round(theta, 4), {"questions": len(scores), "accuracy": round(accuracy, 4),
                             "mean_log_likelihood": round(float(loglik[best]) / len(s), 4)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dry-run", action="store_true", help="print the choice, do not write config.json")
    args = ap.parse_args(argv)
    model = load()
    match, match_report = choose_match(model)
    model.settings = dataclasses.replace(model.settings, match=match)
    model.matcher.settings = match
    presence, presence_report = choose_presence(presence_scores(model))
    settings = PhotoSettings(match, presence, model.settings.hedges)
    report = {"match": dataclasses.asdict(match), "matching": match_report, "presence": presence,
              "presence_choice": presence_report}
    print(json.dumps(report, indent=2))
    if not args.dry_run:
        doc = {"match": dataclasses.asdict(settings.match), "presence": settings.presence,
               "hedges": dataclasses.asdict(settings.hedges),
               "chosen_on": {"matching": match_report["phrases"], "matching_agreement": match_report["agreement"],
                             "presence_questions": presence_report["questions"],
                             "presence_accuracy": presence_report["accuracy"]}}
        CONFIG_FILE.write_text(json.dumps(doc, indent=2) + "\n")
        print(f"wrote {CONFIG_FILE}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
