"""The local engine: this process loads the model once and feeds it batches; a shard every `shard_rows` rows."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Sequence

if TYPE_CHECKING:
    from .spec import Job


def load_model(job: "Job"):
    """The job's model, and (for explain) a check that it can run the method, before any input is read."""
    from ..models.registry import load

    model = load(job.model, device=job.device)
    if job.task == "explain":
        from ..explain import method_for

        method_for(job.method, model)
    return model


def run_local(job: "Job", items: Sequence[dict], out: Path, done: set[tuple], *, batch_size: int, shard_rows: int,
              progress: bool, limit: int | None = None) -> int:
    """Process `items` not in `done`; returns how many were skipped. A killed run loses at most one shard."""
    from tqdm import tqdm

    from .rows import process
    from .shards import ShardWriter

    model = load_model(job)
    writer = ShardWriter(out)
    pending: list[dict] = []
    made = skipped = 0
    with tqdm(total=len(items), desc=f"batch {job.task}", unit="img", disable=not progress) as bar:
        for start in range(0, len(items), batch_size):
            batch = items[start:start + batch_size]
            rows, n_skipped = process(model, job, batch, done)
            pending += rows
            made += len(rows)
            skipped += n_skipped
            while len(pending) >= shard_rows:
                writer.write(pending[:shard_rows])
                pending = pending[shard_rows:]
            bar.update(len(batch))
            if limit is not None and made >= limit:
                return skipped  # as if killed here: the unfinished shard is not written
    if pending:
        writer.write(pending)
    return skipped
