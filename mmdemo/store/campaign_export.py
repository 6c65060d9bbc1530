"""A campaign's submissions out as CSV, JSON Lines, COCO-captions JSON or Parquet.

One row per submission: the correction's export columns (exports.COLUMNS) plus CAMPAIGN_COLUMNS:
campaign, task_id, image_path, status ("submitted" | "approved" | "rejected"), reviewer, reviewed_at,
submitted_at, and versions (every version of the text: [{"version", "corrected", "annotator", "created_at"}];
a JSON list in JSONL and COCO, JSON text in CSV and Parquet).
"""
from __future__ import annotations

import json
import os
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..errors import InputError, StoreError
from .exports import COLUMNS, FORMATS, FREE_TEXT, ExportResult, record, spreadsheet_safe
from .store import Store, _iso

CAMPAIGN_COLUMNS = ("campaign", "task_id", "image_path", "status", "reviewer", "reviewed_at", "submitted_at",
                    "versions")


def campaign_records(store: Store, name: str) -> list[dict[str, Any]]:
    """Every submission of campaign `name` as an export row, oldest first."""
    out = []
    for sub in store.campaign_submissions(name):
        c = store.get(sub["correction_id"])
        out.append({**record(c), "campaign": name, "task_id": sub["task_id"], "image_path": sub["image_path"],
                    "status": sub["status"], "reviewer": sub["reviewer"], "reviewed_at": _iso(sub["reviewed_at"]),
                    "submitted_at": _iso(sub["submitted_at"]),
                    "versions": [{"version": v.version, "corrected": v.corrected, "annotator": v.annotator,
                                  "created_at": _iso(v.created_at)} for v in c.history]})
    return out


def export_campaign(store: Store, name: str, fmt: str, path: str | os.PathLike) -> ExportResult:
    """Write campaign `name`'s submissions to `path` in `fmt`; the file appears whole or not at all."""
    if fmt not in FORMATS:
        raise InputError(f"export format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    out = Path(path)
    if out.is_dir():
        raise InputError(f"{out} is a folder; give a file path")
    rows = campaign_records(store, name)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.parent / f".{out.name}.tmp-{uuid.uuid4().hex[:8]}"
        try:
            {"csv": _csv, "jsonl": _jsonl, "coco": _coco, "parquet": _parquet}[fmt](rows, tmp)
            os.replace(tmp, out)
        finally:
            tmp.unlink(missing_ok=True)
    except OSError as e:
        raise StoreError(f"cannot write {out}: {e.strerror or e}") from None
    return ExportResult(str(out), fmt, len(rows))


def _frame(rows: list[dict[str, Any]]) -> Any:
    import pandas as pd

    flat = [{**r, "decoding": None if r["decoding"] is None else json.dumps(r["decoding"], sort_keys=True),
             "versions": json.dumps(r["versions"], ensure_ascii=False)} for r in rows]
    df = pd.DataFrame.from_records(flat, columns=list(COLUMNS) + list(CAMPAIGN_COLUMNS))
    for col in ("image_width", "image_height", "version", "task_id"):
        df[col] = df[col].astype("Int64")
    df["edit_rate"] = df["edit_rate"].astype("float64")
    df["deleted"] = df["deleted"].astype("bool")
    return df


def _csv(rows: list[dict[str, Any]], path: Path) -> None:
    df = _frame(rows)
    for col in (*FREE_TEXT, "image_path", "reviewer"):
        df[col] = df[col].map(spreadsheet_safe)
    df.to_csv(path, index=False, encoding="utf-8", lineterminator="\n")


def _parquet(rows: list[dict[str, Any]], path: Path) -> None:
    import pandas as pd

    df = _frame(rows)
    for col in ("created_at", "updated_at", "submitted_at", "reviewed_at"):
        df[col] = pd.to_datetime(df[col], utc=True, format="ISO8601").astype("datetime64[us, UTC]")
    for col in df.columns:
        if df[col].dtype == object or str(df[col].dtype).startswith(("str", "string")):
            df[col] = df[col].astype("string")
    df.to_parquet(path, index=False, engine="pyarrow")


def _jsonl(rows: list[dict[str, Any]], path: Path) -> None:
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")


def _coco(rows: list[dict[str, Any]], path: Path) -> None:
    ids: dict[str, int] = {}
    images, annotations = [], []
    for r in rows:
        if r["image_hash"] not in ids:
            ids[r["image_hash"]] = len(ids) + 1
            images.append({"id": ids[r["image_hash"]], "file_name": r["image_file"], "width": r["image_width"],
                           "height": r["image_height"], "sha256": r["image_hash"]})
        meta = {k: v for k, v in r.items() if k not in ("image_hash", "image_file", "image_width", "image_height",
                                                        "corrected")}
        annotations.append({"id": len(annotations) + 1, "image_id": ids[r["image_hash"]], "caption": r["corrected"],
                            "mmdemo": meta})
    doc = {"info": {"description": "campaign corrections exported by mmdemo", "version": "1.0",
                    "date_created": _iso(datetime.now(timezone.utc))},
           "licenses": [], "images": images, "annotations": annotations}
    with open(path, "w", encoding="utf-8") as f:
        json.dump(doc, f, ensure_ascii=False)
