"""The one function that turns a batch of inputs into rows (`process`), and the rows' Parquet schema.

Both engines call `process`: the local loop in this process, the Ray actor in each of its workers."""
from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

import pyarrow as pa


if TYPE_CHECKING:
    from PIL import Image

    from ..models.base import VLModel
    from .spec import Job

SCHEMA = pa.schema([
    ("image_path", pa.string()),
    ("hash", pa.string()),              # content_hash of the decoded image; SHA-256 of the file bytes if unreadable
    ("task", pa.string()),              # caption | ask | explain
    ("model", pa.string()),
    ("model_revision", pa.string()),
    ("decoding", pa.string()),          # JSON of Decoding.to_dict() (caption and explain); null for ask
    ("question", pa.string()),          # ask, and explain of an answer
    ("caption", pa.string()),           # caption, and explain of a caption (its target)
    ("answer", pa.string()),            # ask, and explain of an answer (its target)
    ("prob", pa.float64()),             # the answer's probability
    ("tokens", pa.list_(pa.string())),  # caption tokens (ask: the answer)
    ("token_probs", pa.list_(pa.float64())),
    ("top_k", pa.list_(pa.struct([("answer", pa.string()), ("prob", pa.float64())]))),
    ("method", pa.string()),            # explain: the method
    ("target", pa.string()),            # explain: the caption or answer explained
    ("map", pa.list_(pa.float64())),    # explain: the patch-grid map, row-major, values in [0, 1]
    ("grid", pa.list_(pa.int32())),     # explain: [h, w] of the map
    ("seconds", pa.float64()),          # model time of this row (a batch's time shared out)
    ("error", pa.string()),             # why this input gave no output; null when it did
])
KEY_COLUMNS = ("task", "model", "hash", "question", "method")   # a row is done once per these


def key(row: dict) -> tuple:
    """What makes a row done: the same task, model, image content, question and method."""
    return tuple(row.get(c) or "" for c in KEY_COLUMNS)


def to_table(rows: Sequence[dict]) -> pa.Table:
    return pa.Table.from_pylist(list(rows), schema=SCHEMA)


def process(model: "VLModel", job: "Job", items: Sequence[dict], done: set[tuple]) -> tuple[list[dict], int]:
    """Rows for the items not in `done` (which grows by them), and how many items were skipped.

    items: `{"image_path", "question"}`. An input that cannot be read becomes a row with `error` set; so does one
    the model fails on (the rest of the batch still runs)."""
    info = model.info
    base = {"task": job.task, "model": info.name, "model_revision": info.revision or None,
            "decoding": None if job.task == "ask" else json.dumps(job.decoding, sort_keys=True),
            "method": job.method if job.task == "explain" else None}
    rows: list[dict] = []
    todo: list[tuple[dict, "Image.Image"]] = []
    skipped = 0
    for item in items:
        image, digest, error = read(str(item["image_path"]))
        row = dict.fromkeys(SCHEMA.names) | base | {"image_path": str(item["image_path"]), "hash": digest,
                                                     "question": item.get("question"), "error": error}
        k = key(row)
        if k in done:
            skipped += 1
            continue
        done.add(k)
        rows.append(row)
        if error is None:
            todo.append((row, image))
    if todo:
        _seed(job.seed)
        RUNNERS[job.task](model, job, todo)
    return rows, skipped


def read(path: str) -> tuple["Image.Image | None", str, str | None]:
    """(image, content hash, None), or (None, SHA-256 of the file's bytes, the reason) when it cannot be used."""
    from ..images import content_hash, load_image

    try:
        image = load_image(path)
        return image, content_hash(image), None
    except Exception as e:  # ImageError for every bad image; anything else is still one bad input, not a dead job
        try:
            data = Path(path).read_bytes()
        except OSError:
            data = f"unreadable:{path}".encode()
        return None, hashlib.sha256(data).hexdigest(), _one_line(e)


# --- one runner per task: fill the rows of the readable items in place ----------------------------------------
def _caption(model: "VLModel", job: "Job", todo: list) -> None:
    def fill(row: dict, cap: Any) -> None:
        row |= {"caption": cap.text, "tokens": [t for t, _ in cap.tokens], "token_probs": [p for _, p in cap.tokens]}

    _guarded(todo, lambda images, rows: captions(model, images, job.decoding), fill)


def _ask(model: "VLModel", job: "Job", todo: list) -> None:
    def fill(row: dict, ans: Any) -> None:
        row |= {"answer": ans.answer, "prob": ans.prob, "tokens": [ans.answer], "token_probs": [ans.prob],
                "top_k": [{"answer": a, "prob": p} for a, p in ans.top_k]}

    _guarded(todo, lambda images, rows: model.answer(images, [r["question"] for r in rows], top_k=job.top_k), fill)


def _explain(model: "VLModel", job: "Job", todo: list) -> None:
    """One item at a time, each target picked as `python -m mmdemo explain` picks it (so the maps are equal)."""
    def one(images: list, rows: list) -> list:
        return [explain_one(model, images[0], rows[0], job)]

    for pair in todo:
        _guarded([pair], one, lambda row, out: row.update(out))


RUNNERS: dict[str, Callable[["VLModel", "Job", list], None]] = {"caption": _caption, "ask": _ask, "explain": _explain}


def captions(model: "VLModel", images: list, decoding: dict) -> list:
    """The model's captions under `decoding` (a `Decoding.to_dict()`)."""
    from ..models.base import Decoding

    return model.caption(images, Decoding.from_dict(decoding))


def explain_one(model: "VLModel", image: "Image.Image", row: dict, job: "Job") -> dict:
    """The explain CLI's target (the answer the model gives to the question, else its own caption), then its map."""
    from ..explain import explain, own_target

    target, said = own_target(model, image, row["question"])
    if target.kind == "answer":
        out = {"answer": said.answer, "prob": said.prob, "tokens": [said.answer], "token_probs": [said.prob]}
    else:
        out = {"caption": said.text, "tokens": [t for t, _ in said.tokens], "token_probs": [p for _, p in said.tokens]}
    e = explain(model, image, target, job.method, cache=False, **dict(job.options))
    h, w = e.grid.shape
    return out | {"target": target.text, "map": [float(v) for v in e.grid.ravel()], "grid": [h, w]}


def _guarded(todo: list, call: Callable[[list, list], list], fill: Callable[[dict, Any], None]) -> None:
    """Run `call` on the whole batch; if it raises, run each item alone so one bad item spoils only its own row."""
    rows, images = [r for r, _ in todo], [im for _, im in todo]
    started = time.perf_counter()
    try:
        outs = call(images, rows)
    except Exception as e:
        if len(todo) == 1:
            rows[0] |= {"error": _one_line(e), "seconds": time.perf_counter() - started}
            return
        for pair in todo:
            _guarded([pair], call, fill)
        return
    each = (time.perf_counter() - started) / len(rows)
    for row, out in zip(rows, outs):
        fill(row, out)
        row["seconds"] = each


def _seed(seed: int | None) -> None:
    if seed is not None:
        import torch

        torch.manual_seed(seed)


def _one_line(e: BaseException) -> str:
    text = " ".join(str(e).split()) or type(e).__name__
    ours = type(e).__module__.startswith("mmdemo")   # our errors are written for users; others keep their type
    return text if ours else f"{type(e).__name__}: {text}"
