"""Campaign benchmark: next_task and submit_task latency (median, p95) on SQLite with 100,000 tasks in the
campaign, campaign_status on it, and pre-annotation images/s (fill_campaign) for shapes-cross and photo-lite.
Writes benchmarks/results/campaigns.json and prints a table.

    OMP_NUM_THREADS=1 python benchmarks/bench_campaigns.py [--tasks 100000] [--calls 2000] [--preannotate 64]

The 100,000 task rows are bulk-inserted straight into the campaign_tasks table (one stored image; each row a
distinct key) so the run measures the queue, not 100,000 PNG encodes; add_tasks is timed on its own over 2,000.
"""
from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from _common import table, write  # noqa: E402
from mmdemo.store import _schema as S  # noqa: E402
from mmdemo.store import open_store  # noqa: E402
from mmdemo.store._campaigns import _key  # noqa: E402

TARGETS = {"next_task_ms": 20.0, "submit_task_ms": 20.0}


def _ms(times: list[float]) -> dict[str, float]:
    times = sorted(times)
    return {"median": statistics.median(times), "p95": times[int(0.95 * (len(times) - 1))], "max": times[-1]}


def bulk_campaign(store, name: str, n: int) -> None:
    from sqlalchemy import insert

    store.create_campaign(name, model="bench", overlap=2, order="uncertainty")
    camp = store.get_campaign(name)
    image = store.store_image(np.zeros((8, 8, 3), np.uint8))
    store.add_tasks(name, [{"image": np.zeros((8, 8, 3), np.uint8), "model_output": "warm up"}])
    rng = random.Random(0)
    now = S.utcnow()
    rows = []
    for i in range(n - 1):
        probs = [round(rng.uniform(0.2, 1.0), 3) for _ in range(8)]
        rows.append({"campaign_id": camp.id, "key": _key(image["hash"], f"bench {i}"), "image_hash": image["hash"],
                     "image_path": f"img-{i}.png", "question": None,
                     "model_output": f"a small red circle left of a large blue star {i}",
                     "tokens": None, "token_probs": probs, "confidence": sum(probs) / 8,
                     "position": sum(probs) / 8, "created_at": now, "submissions": 0, "done": 0})
    with store._tx("bulk insert", write=True) as conn:
        for start in range(0, len(rows), 10_000):
            conn.execute(insert(S.campaign_tasks), rows[start:start + 10_000])


def bench_queue(folder: Path, tasks: int, calls: int, annotators: int = 10) -> dict:
    with open_store(f"sqlite:///{folder / 'queue.db'}", sync=None) as store:
        t = time.perf_counter()
        bulk_campaign(store, "bench", tasks)
        fill_s = time.perf_counter() - t
        store.create_campaign("adds", model="bench")
        rng = np.random.default_rng(1)
        items = [{"image": rng.integers(0, 256, (16, 16, 3), dtype=np.uint8), "image_path": f"{i}.png",
                  "model_output": f"caption {i}", "token_probs": [0.5, 0.9]} for i in range(2_000)]
        t = time.perf_counter()
        store.add_tasks("adds", items)
        add_per_s = len(items) / (time.perf_counter() - t)
        nexts, submits = [], []
        for i in range(calls):
            who = f"annotator-{i % annotators}"
            t = time.perf_counter()
            task = store.next_task("bench", who)
            nexts.append((time.perf_counter() - t) * 1000)
            t = time.perf_counter()
            store.submit_task(task.id, task.model_output.replace("red", "green"), who)
            submits.append((time.perf_counter() - t) * 1000)
        t = time.perf_counter()
        status = store.campaign_status("bench")
        status_ms = (time.perf_counter() - t) * 1000
        t = time.perf_counter()
        store.campaign_status("bench")
        status_again_ms = (time.perf_counter() - t) * 1000
        t = time.perf_counter()
        store.campaign_counts("bench")
        counts_ms = (time.perf_counter() - t) * 1000
    return {"tasks": tasks, "calls": calls, "annotators": annotators, "bulk_fill_s": fill_s,
            "add_tasks_per_s": add_per_s, "next_task_ms": _ms(nexts), "submit_task_ms": _ms(submits),
            "campaign_status_ms": status_ms, "campaign_status_again_ms": status_again_ms,
            "campaign_counts_ms": counts_ms, "tasks_done_after": status["tasks_done"]}


def bench_preannotate(folder: Path, model: str, n: int) -> dict:
    from mmdemo.campaigns import Source, fill_campaign
    from mmdemo.models.registry import get_entry, load
    from mmdemo.world.render import render
    from mmdemo.world.scene import sample_scene

    if not get_entry(model).available():
        return {"model": model, "skipped": "weights not here"}
    paths = []
    for i in range(n):
        path = folder / f"{model}-{i}.png"
        render(sample_scene(i, 128)).save(path)
        paths.append(path)
    loaded = load(model)
    with open_store(f"sqlite:///{folder / f'pre-{model}.db'}", sync=None) as store:
        store.create_campaign("pre", model=model)
        loaded.caption([render(sample_scene(999, 128))])          # warm up
        t = time.perf_counter()
        result = fill_campaign(store, "pre", [Source(str(p)) for p in paths], progress=False, model=loaded)
        seconds = time.perf_counter() - t
    return {"model": model, "images": n, "added": result.added, "seconds": seconds, "images_per_s": n / seconds,
            "device": loaded.info.device}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", type=int, default=100_000)
    ap.add_argument("--calls", type=int, default=2_000)
    ap.add_argument("--preannotate", type=int, default=64, help="images per model (0: skip)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        queue = bench_queue(folder, args.tasks, args.calls)
        pre = [bench_preannotate(folder, m, args.preannotate) for m in ("shapes-cross", "photo-lite")] \
            if args.preannotate else []
    payload = {"sqlite": queue, "preannotate": pre, "targets": TARGETS,
               "command": "OMP_NUM_THREADS=1 python benchmarks/bench_campaigns.py",
               "threads": os.environ.get("OMP_NUM_THREADS")}
    path = write("campaigns", payload)
    rows = [("tasks in the campaign", f"{queue['tasks']:,}"),
            ("next_task median / p95",
             f"{queue['next_task_ms']['median']:.2f} / {queue['next_task_ms']['p95']:.2f} ms"),
            ("submit_task median / p95",
             f"{queue['submit_task_ms']['median']:.2f} / {queue['submit_task_ms']['p95']:.2f} ms"),
            ("campaign_status, first / again", f"{queue['campaign_status_ms']:.0f} / "
             f"{queue['campaign_status_again_ms']:.0f} ms ({queue['tasks_done_after']} tasks done)"),
            ("campaign_counts (progress bar)", f"{queue['campaign_counts_ms']:.0f} ms"),
            ("add_tasks", f"{queue['add_tasks_per_s']:.0f} tasks/s (16×16 images)")]
    rows += [(f"pre-annotation {p['model']}", f"{p['images_per_s']:.1f} images/s" if "images_per_s" in p
              else p["skipped"]) for p in pre]
    table(rows)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
