"""Batch jobs: caption, answer or explain a whole dataset into Parquet shards, in-process or on Ray Data.

    from mmdemo.batch import Job, run
    summary = run(Job("caption", model="shapes-cross"), "images/", "out/")   # engine="ray" for a Ray cluster
    summary.to_dict()   # {"rows", "done", "skipped", "errors", "seconds", "images_per_s", "out"}

One function (`rows.process`) turns a batch of inputs into rows; the local loop and the Ray actor both call it.
Rerunning into the same folder skips every (task, model, image content, question, method) already there.
Nothing here imports torch, Ray or pandas until a job runs.
"""
from __future__ import annotations

import importlib
from typing import Any

_PUBLIC = {"Job": ".job", "Summary": ".job", "run": ".job", "list_inputs": ".inputs", "read_questions": ".inputs",
           "SCHEMA": ".rows", "process": ".rows", "add_to_campaign": ".campaign"}
__all__ = sorted(_PUBLIC)


def __getattr__(name: str) -> Any:
    if name not in _PUBLIC:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_PUBLIC[name], __name__), name)
    globals()[name] = value
    return value
