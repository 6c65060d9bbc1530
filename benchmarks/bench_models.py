"""Latency and throughput of the embedded models: `answer` and `caption` at batch 1 (median of 50 runs after
warm-up) and batch-64 throughput. Writes benchmarks/results/models.json.

    python benchmarks/bench_models.py [--models shapes-cross shapes-early shapes-late] [--device cpu] [--threads 1]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import median_ms, table, write  # noqa: E402


def main() -> None:
    import mmdemo
    from mmdemo.world.views import random_view

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="*", default=None)
    ap.add_argument("--device", default=None)
    ap.add_argument("--runs", type=int, default=50)
    ap.add_argument("--threads", type=int, default=1,
                    help="torch intra-op threads (small models decode fastest on one; more threads on a busy "
                         "machine oversubscribe the cores)")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    names = args.models or [m.name for m in mmdemo.list_models() if m.name.startswith("shapes-") and m.available()]
    rng = np.random.default_rng(0)
    images = [random_view(rng)[1] for _ in range(64)]
    q = "what color is the circle?"
    results, rows = {}, []
    for name in names:
        model = mmdemo.load(name, device=args.device)
        r = {
            "answer_ms_b1": median_ms(lambda: model.answer(images[:1], [q]), args.runs),
            "caption_ms_b1": median_ms(lambda: model.caption(images[:1]), args.runs),
        }
        for task, fn in (("answer", lambda: model.answer(images, [q] * 64)), ("caption", lambda: model.caption(images))):
            fn()
            t = time.perf_counter()
            for _ in range(3):
                fn()
            r[f"{task}_per_s_b64"] = 3 * 64 / (time.perf_counter() - t)
        results[name] = r | {"device": model.info.device}
        rows += [(f"{name} answer, batch 1", f"{r['answer_ms_b1']:.1f} ms"),
                 (f"{name} caption, batch 1", f"{r['caption_ms_b1']:.1f} ms"),
                 (f"{name} answer, batch 64", f"{r['answer_per_s_b64']:.0f} images/s"),
                 (f"{name} caption, batch 64", f"{r['caption_per_s_b64']:.0f} images/s")]
    path = write("models", {"runs": args.runs, "threads": args.threads, "results": results})
    table(rows)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
