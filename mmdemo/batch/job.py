"""`run(job, input, out)`: one batch job on an engine (local or Ray), then a summary and, optionally, a campaign."""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from ..errors import InputError
from .spec import Job  # noqa: F401  (the public name, as `batch.job.Job`)

SUMMARY_COLUMNS = ["task", "model", "model_revision", "hash", "question", "method", "error"]
ENGINES = ("local", "ray")


@dataclass
class Summary:
    rows: int                           # rows in the output folder now
    done: int                           # rows this run wrote with an output
    skipped: int                        # inputs already done (same task, model, image content, question, method)
    errors: int                         # rows this run wrote with `error` set
    seconds: float                      # wall time of the job, start-up included
    out: str
    model: str | None = None
    model_revision: str | None = None

    @property
    def images_per_s(self) -> float:
        return round((self.done + self.errors) / self.seconds, 3) if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"rows": self.rows, "done": self.done, "skipped": self.skipped, "errors": self.errors,
                "seconds": round(self.seconds, 3), "images_per_s": self.images_per_s, "out": self.out}

    def line(self) -> str:
        return (f"done {self.done}, skipped {self.skipped}, errors {self.errors} in {self.seconds:.1f} s "
                f"({self.images_per_s:.1f} images/s); {self.rows} rows in {self.out}")


def run(job: Job, source: str | os.PathLike | Sequence[dict], out: str | os.PathLike, *,
        questions: Sequence[str] | None = None, engine: str = "local", address: str | None = None,
        batch_size: int = 32, actors: int = 1, num_cpus: int | None = None, shard_rows: int = 1000,
        campaign: str | None = None, progress: bool = False, limit: int | None = None) -> Summary:
    """Run `job` over `source` (a folder, .parquet, COCO .json, .txt list, or items `{"image_path", "question"}`)
    into the Parquet folder `out`; what `out` already holds is skipped.

    engine: "local" (this process) or "ray" (Ray Data; `address` joins a running cluster, else Ray starts here
    with `num_cpus`). batch_size: inputs per model call. actors: Ray model actors. shard_rows: rows per local shard.
    limit: stop (like a killed job, without writing the unfinished shard) once this many rows are made."""
    from . import shards
    from .inputs import list_inputs

    if engine not in ENGINES:
        raise InputError(f"--engine must be one of {', '.join(ENGINES)}, not {engine!r}")
    for name, value in (("--batch-size", batch_size), ("--actors", actors), ("--shard-rows", shard_rows)):
        if int(value) < 1:
            raise InputError(f"{name} must be 1 or more, not {value}")
    if campaign is not None and job.task == "explain":
        raise InputError("--campaign takes the rows of batch caption or batch ask, not explain")
    items = list(source) if isinstance(source, (list, tuple)) else list_inputs(source, questions)
    if job.task == "ask" and any(item.get("question") is None for item in items):
        raise InputError("batch ask needs questions: --question Q, --questions FILE, or a question column in the input")
    folder = shards.prepare(out)
    before = shards.read(folder, columns=SUMMARY_COLUMNS)
    done = shards.done_keys(before)
    started = time.perf_counter()
    if engine == "local":
        from .local import run_local

        skipped = run_local(job, items, folder, done, batch_size=batch_size, shard_rows=shard_rows,
                            progress=progress, limit=limit)
    else:
        from .on_ray import run_ray

        skipped = run_ray(job, items, folder, done, batch_size=batch_size, actors=actors, address=address,
                          num_cpus=num_cpus, progress=progress)
    seconds = time.perf_counter() - started
    after = shards.read(folder, columns=SUMMARY_COLUMNS)
    new = {p: t for p, t in after.items() if p not in before}
    rows, _ = shards.count(after)
    new_rows, new_errors = shards.count(new)
    if skipped is None:  # Ray does not report it: every input that gave no new row was done before
        skipped = len(items) - new_rows
    model, revision = _model_of(new or after, job.task)
    summary = Summary(rows, new_rows - new_errors, skipped, new_errors, seconds, str(folder), model, revision)
    if campaign is not None:
        from .campaign import CAMPAIGN_COLUMNS, add_to_campaign, campaign_items

        tables = shards.read(folder, columns=CAMPAIGN_COLUMNS).values()
        add_to_campaign(campaign, job.task, model, revision, campaign_items(tables, job.task, model))
    return summary


def _model_of(tables: dict[Path, Any], task: str) -> tuple[str | None, str | None]:
    """The model (and revision) of the newest shard's rows of this task."""
    for path in sorted(tables, key=lambda p: p.stat().st_mtime, reverse=True):
        rows = [r for r in tables[path].select(["task", "model", "model_revision"]).to_pylist() if r["task"] == task]
        if rows:
            return rows[0]["model"], rows[0]["model_revision"]
    return None, None
