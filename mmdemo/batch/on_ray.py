"""The Ray engine: Ray Data over the input list, a pool of model actors (one model load each), Parquet out.

    from_items(inputs) -> map_batches(ModelActor, ActorPoolStrategy(size=actors), num_gpus=1 when GPUs exist)
                       -> write_parquet(OUT_DIR)

`address` joins a running cluster (`ray start --head` on the head node, then `--address auto`); without it Ray
starts in this process with `num_cpus` CPUs and stops at the end. Every node needs mmdemo installed and the input
paths readable; OUT_DIR must be storage every node writes to (a shared file system), as Ray Data's writers run
on the nodes that hold the rows."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from ..errors import InputError, MmdemoError, WeightsMissingError

if TYPE_CHECKING:
    import pyarrow as pa

    from .spec import Job

MISSING = 'the ray engine needs Ray: pip install "mmdemo[ray]" (or: pip install -r requirements-ray.txt)'


def import_ray():
    """Ray and Ray Data, or an InputError that says how to install them."""
    try:
        import ray
        import ray.data
    except ImportError:
        raise InputError(MISSING) from None
    return ray


def check_here(job: "Job") -> None:
    """What the driver can refuse before Ray starts: an unknown model, weights not here, an unknown method."""
    from ..config import settings
    from ..models.registry import resolve

    entry = resolve(job.model or settings().default_model)
    if not entry.available():
        raise WeightsMissingError(entry.missing() if entry.missing else f"weights for {entry.name!r} are not here")
    if job.task == "explain":
        from ..explain import METHODS

        if job.method not in METHODS:
            raise InputError(f"unknown explanation method {job.method!r}; known: {', '.join(METHODS)}")


class ModelActor:
    """One per Ray actor: loads the model once, then turns each batch of inputs into rows with `rows.process`."""

    def __init__(self, job: "Job", done: set[tuple]) -> None:
        from .local import load_model

        self.job, self.done = job, set(done)
        self.model = load_model(job)

    def __call__(self, batch: "pa.Table") -> "pa.Table":
        from .rows import process, to_table

        rows, _ = process(self.model, self.job, batch.to_pylist(), self.done)
        return to_table(rows)


def run_ray(job: "Job", items: Sequence[dict], out: Path, done: set[tuple], *, batch_size: int, actors: int,
            address: str | None, num_cpus: int | None, progress: bool) -> None:
    """Write the rows of `items` not in `done` as Parquet files in `out`. Returns None: skips are counted by the
    caller from what was written."""
    ray = import_ray()
    check_here(job)
    started_here = not ray.is_initialized()
    if started_here:
        if address:
            ray.init(address=address, log_to_driver=False, logging_level="warning")
        else:
            ray.init(num_cpus=num_cpus or max(actors, 1), include_dashboard=False, log_to_driver=False,
                     logging_level="warning")
    try:
        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = progress
        if not progress:
            logging.getLogger("ray.data").setLevel(logging.WARNING)
        gpus = ray.cluster_resources().get("GPU", 0)
        ds = ray.data.from_items([{"image_path": i["image_path"], "question": i.get("question")} for i in items])
        ds = ds.map_batches(ModelActor, fn_constructor_kwargs={"job": job, "done": done}, batch_size=batch_size,
                            compute=ray.data.ActorPoolStrategy(size=actors), batch_format="pyarrow",
                            **({"num_gpus": 1} if gpus else {}))
        try:
            ds.write_parquet(str(out.resolve()))
        except Exception as e:  # an actor's own error (e.g. the model cannot load there) comes back wrapped
            cause = getattr(e, "cause", None)
            if isinstance(cause, MmdemoError):
                raise cause from None
            raise
    finally:
        if started_here:
            ray.shutdown()
    return None
