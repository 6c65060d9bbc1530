"""The batch contract at full size: 300 world scenes + 3 broken files through `batch caption` on each engine (303
rows, 3 errors, the same captions), a job stopped at about half and rerun (303 rows, no duplicate hash), and
`batch explain --method ig` over 100 scenes against `python -m mmdemo explain --json` (run in-process, same code).
Writes benchmarks/results/batch-check.json.

    python benchmarks/check_batch.py [--scenes 300] [--explain 100] [--no-ray]
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write  # noqa: E402
from bench_batch import render_scenes  # noqa: E402


def cli(*args) -> dict:
    from mmdemo.cli import main

    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        code = main([str(a) for a in args] + ["--json"])
    assert code == 0, args
    return json.loads(buffer.getvalue())


def frame(out: Path) -> pd.DataFrame:
    return pd.read_parquet(out).sort_values("image_path").reset_index(drop=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", type=int, default=300)
    parser.add_argument("--explain", type=int, default=100)
    parser.add_argument("--no-ray", action="store_true")
    args = parser.parse_args()
    import torch

    from mmdemo.batch import Job, run

    torch.set_num_threads(1)
    work = Path(tempfile.mkdtemp(prefix="check-batch-"))
    folder = work / "in"
    folder.mkdir()
    paths = render_scenes(folder, args.scenes)
    good = paths[0].read_bytes()
    (folder / "truncated.png").write_bytes(good[:len(good) // 3])
    (folder / "text.jpg").write_text("not a picture")
    (folder / "empty.jpg").write_bytes(b"")
    common = ["--input", folder, "--model", "shapes-cross", "--batch-size", "64", "--shard-rows", "50"]
    report: dict = {"scenes": args.scenes}

    local = cli("batch", "caption", *common, "--out", work / "local")
    report["local"] = local
    df = frame(work / "local")
    report["local_rows_errors"] = [len(df), int(df.error.notna().sum())]

    half = len(paths) // 2
    run(Job("caption", model="shapes-cross"), folder, work / "resumed", batch_size=64, shard_rows=50, limit=half)
    report["stopped_rows"] = len(pd.read_parquet(work / "resumed"))
    report["rerun"] = cli("batch", "caption", *common, "--out", work / "resumed")
    resumed = frame(work / "resumed")
    report["resumed_rows_unique_hashes"] = [len(resumed), int(resumed.hash.nunique())]
    report["resumed_captions_equal_local"] = resumed.caption.fillna("").tolist() == df.caption.fillna("").tolist()

    if not args.no_ray:
        report["ray"] = cli("batch", "caption", *common, "--out", work / "ray", "--engine", "ray", "--actors", "2",
                            "--num-cpus", "2")
        ray_df = frame(work / "ray")
        report["ray_rows_errors"] = [len(ray_df), int(ray_df.error.notna().sum())]
        report["ray_captions_equal_local"] = ray_df.caption.fillna("").tolist() == df.caption.fillna("").tolist()
        report["ray_hashes_equal_local"] = ray_df.hash.tolist() == df.hash.tolist()

    few = work / "few"
    few.mkdir()
    for p in paths[:args.explain]:
        shutil.copy(p, few / p.name)
    report["explain"] = cli("batch", "explain", "--input", few, "--model", "shapes-cross", "--method", "ig",
                            "--out", work / "maps")
    maps = frame(work / "maps")
    worst, same_target = 0.0, 0
    for _, row in maps.iterrows():
        one = cli("explain", row.image_path, "--model", "shapes-cross", "--method", "ig", "--out", work / "o.png")
        same_target += one["target"] == row.target
        worst = max(worst, float(np.abs(np.array(row["map"]).reshape(tuple(row.grid)) - np.array(one["map"])).max()))
    report["explain_maps"] = {"n": len(maps), "same_target": same_target,
                              "max_abs_difference": worst, "cli_rounds_to": 1e-4}
    shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(report, indent=2))
    print(f"wrote {write('batch-check', report)}")


if __name__ == "__main__":
    main()
