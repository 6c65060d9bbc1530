"""The model-randomisation check (Adebayo et al. 2018) over held-out world questions, per method.

    python benchmarks/bench_randomisation.py [--model shapes-cross] [--n 20]   # -> results/randomisation.json

For each question: the map of the trained model and of a copy with randomised weights; their Spearman rank
correlation. A method whose maps track the model changes (correlation below 0.5); one that keeps its map
whatever the weights shows the image, not the model."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parent.parent)]
from _common import write  # noqa: E402

METHODS = ("attention", "ig", "saliency", "inputxgrad", "gradcam", "occlusion")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="shapes-cross")
    p.add_argument("--n", type=int, default=20)
    p.add_argument("--methods", nargs="*", default=list(METHODS))
    args = p.parse_args()

    import torch

    import mmdemo
    from mmdemo.explain.evaluate import items
    from mmdemo.explain.faithfulness import randomization_check
    from mmdemo.models.base import Target

    torch.set_num_threads(1)
    model = mmdemo.load(args.model, device="cpu")
    questions = items(args.n, seed=3)
    out = {}
    for method in args.methods:
        rhos = [randomization_check(model, q.image, Target("answer", q.answer, question=q.question), method)["spearman"]
                for q in questions]
        out[method] = {"median_spearman": float(np.median(rhos)), "changed": int(sum(r < 0.5 for r in rhos)),
                       "questions": len(rhos)}
        print(f"{method:<12} median rank correlation {out[method]['median_spearman']:+.3f}   "
              f"changed {out[method]['changed']}/{len(rhos)}")
    path = write("randomisation" if args.model == "shapes-cross" else f"randomisation-{args.model}",
                 {"model": args.model, "methods": out})
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
