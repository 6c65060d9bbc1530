"""Corrections store benchmark: sequential saves/s (SQLite, image dedup), a page of 50 out of 100,000 rows,
and the start time of `python -m mmdemo export`. Writes benchmarks/results/store.json and prints a table.

    OMP_NUM_THREADS=1 python benchmarks/bench_store.py [--saves 1000] [--rows 100000] [--cli-runs 5]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mmdemo.store import open_store  # noqa: E402

TARGETS = {"saves_per_s": 300.0, "list_page_ms": 50.0}


def _images(n: int, size: int = 64) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, (size, size, 3), dtype=np.uint8) for _ in range(n)]


def bench_saves(folder: Path, n: int, synchronous: str = "NORMAL") -> dict[str, float]:
    """n sequential add() calls cycling over 10 images (each stored once), and n/5 with a new image each."""
    with open_store(f"sqlite:///{folder / synchronous / 'saves.db'}", synchronous=synchronous) as store:
        pool = _images(10)
        store.add(pool[0], "warm up", "warm up", model="bench")
        t = time.perf_counter()
        for i in range(n):
            store.add(pool[i % 10], f"a red circle {i}", f"a large red circle {i}", model="bench",
                      annotator="bench", decoding={"num_beams": 1})
        dedup = n / (time.perf_counter() - t)
        fresh = _images(n // 5)
        t = time.perf_counter()
        for i, image in enumerate(fresh):
            store.add(image, f"output {i}", f"corrected {i}", model="bench")
        distinct = len(fresh) / (time.perf_counter() - t)
    return {"saves_per_s": dedup, "saves_new_image_per_s": distinct}


def bench_list(folder: Path, rows: int, repeats: int = 20) -> dict[str, float]:
    """Bulk-insert `rows` corrections, then time pages of 50 (first page, deep page, filtered, search)."""
    with open_store(f"sqlite:///{folder / 'list.db'}") as store:
        image = _images(1)[0]
        t = time.perf_counter()
        store.add_many({"image": image, "model_output": f"a small blue star {i}", "corrected": f"a large blue star {i}",
                        "model": f"model-{i % 4}", "annotator": f"annotator-{i % 20}"} for i in range(rows))
        setup_s = time.perf_counter() - t

        def median_ms(fn) -> float:
            fn()
            times = []
            for _ in range(repeats):
                t0 = time.perf_counter()
                fn()
                times.append((time.perf_counter() - t0) * 1000)
            return statistics.median(times)

        assert len(store.list(limit=50)) == 50 and store.count() == rows
        return {
            "rows": rows, "bulk_insert_s": setup_s,
            "list_page_ms": median_ms(lambda: store.list(limit=50)),
            "list_deep_page_ms": median_ms(lambda: store.list(limit=50, offset=rows // 2)),
            "list_by_model_ms": median_ms(lambda: store.list(model="model-1", limit=50)),
            "list_search_ms": median_ms(lambda: store.list(search="star 4242", limit=50)),
            "count_ms": median_ms(lambda: store.count()),
            "stats_ms": median_ms(store.stats),
        }


def bench_cli(folder: Path, runs: int) -> dict[str, float | list[str]]:
    """Wall time of `python -m mmdemo export --format jsonl` on a 10-row store, median of `runs`."""
    env = {**os.environ, "MMDEMO_DATA_DIR": str(folder / "cli"), "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    env.pop("MMDEMO_DATABASE_URL", None)
    with open_store(str(folder / "cli" / "corrections.db")) as store:
        for i, image in enumerate(_images(10)):
            store.add(image, f"o {i}", f"c {i}", model="bench")
    times = []
    for i in range(runs):
        t = time.perf_counter()
        subprocess.run([sys.executable, "-m", "mmdemo", "export", "--format", "jsonl",
                        "--out", str(folder / f"o{i}.jsonl")], check=True, env=env, cwd=ROOT, capture_output=True)
        times.append(time.perf_counter() - t)
    probe = ("import runpy, sys\nsys.argv = ['mmdemo', 'export', '--format', 'jsonl', '--out', sys.argv[1]]\n"
             "try:\n    runpy.run_module('mmdemo', run_name='__main__', alter_sys=True)\nexcept SystemExit:\n    pass\n"
             "print('HEAVY=' + ','.join(m for m in ('torch', 'gradio', 'transformers', 'pandas') if m in sys.modules))")
    loaded = subprocess.run([sys.executable, "-c", probe, str(folder / "probe.jsonl")], env=env, cwd=ROOT,
                            capture_output=True, text=True, check=True).stdout.splitlines()[-1].removeprefix("HEAVY=")
    bare = []
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        bare.append(time.perf_counter() - t)
    return {"cli_export_s": statistics.median(times), "python_start_s": statistics.median(bare),
            "cli_export_imports": [m for m in loaded.split(",") if m]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--saves", type=int, default=1000)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--cli-runs", type=int, default=5)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "store.json"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench_store_") as tmp:
        folder = Path(tmp)
        full = bench_saves(folder, args.saves, "FULL")
        results = {**bench_saves(folder, args.saves), "saves_sync_full_per_s": full["saves_per_s"],
                   **bench_list(folder, args.rows), **bench_cli(folder, args.cli_runs)}
    report = {
        "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": {"python": platform.python_version(), "sqlite": sqlite3.sqlite_version, "cpus": os.cpu_count(),
                    "load_avg_1m": os.getloadavg()[0], "platform": platform.platform()},
        "settings": {"saves": args.saves, "rows": args.rows, "cli_runs": args.cli_runs,
                     "synchronous": "NORMAL (default)"},
        "targets": TARGETS, "results": results,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")

    def row(name: str, value: float, unit: str, target: str = "") -> None:
        print(f"{name:<40} {value:>10.2f} {unit:<6} {target}")

    print(f"{'measure':<40} {'value':>10} {'unit':<6} target")
    row("sequential saves, 10 images (dedup)", results["saves_per_s"], "/s", f">= {TARGETS['saves_per_s']:.0f}")
    row("sequential saves, new image each", results["saves_new_image_per_s"], "/s")
    row("sequential saves, dedup, synchronous=FULL", results["saves_sync_full_per_s"], "/s")
    row(f"bulk insert of {args.rows:,} rows", results["bulk_insert_s"], "s")
    row(f"list: first page of 50 of {args.rows:,}", results["list_page_ms"], "ms", f"<= {TARGETS['list_page_ms']:.0f}")
    row("list: page at offset rows/2", results["list_deep_page_ms"], "ms")
    row("list: filtered by model", results["list_by_model_ms"], "ms")
    row("list: substring search", results["list_search_ms"], "ms")
    row("count()", results["count_ms"], "ms")
    row("stats()", results["stats_ms"], "ms")
    row("python -m mmdemo export (10 rows)", results["cli_export_s"], "s")
    row("python -c pass (interpreter start)", results["python_start_s"], "s")
    print(f"heavy modules imported by export: {results['cli_export_imports'] or 'none'}")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
