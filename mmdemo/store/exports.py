"""Corrections out as CSV, JSON Lines, COCO-captions JSON and Parquet; COCO-captions in.

Every tabular export has the columns in COLUMNS, one row per live correction (deleted ones only with
include_deleted=True), oldest first:

    id              UUID text of the correction
    created_at      first save, UTC (ISO 8601 text "…Z" in CSV/JSONL; timestamp[us, UTC] in Parquet)
    updated_at      latest version, UTC
    image_hash      SHA-256 of the normalised pixels
    image_file      "<image_hash>.png" (the name used with images_dir and in COCO)
    image_width, image_height   pixels (empty when the image is not in the store)
    model, model_revision       what produced the output
    task            "caption" or "vqa";  question  (vqa)
    decoding        decoding settings as JSON text (an object in JSONL)
    model_output    what the model said
    corrected       the latest corrected text
    annotator, note
    version         1 + number of edits
    edit_rate       word edits per model-output word (0 = kept as is)
    deleted         true only for soft-deleted rows (include_deleted=True)

In CSV (the format people open in spreadsheets) a free-text cell that starts with = + - @ or a tab/CR gets a
leading apostrophe, so a spreadsheet shows it as text instead of running it as a formula (OWASP "CSV
injection"); JSONL and Parquet keep every text exactly as saved.

pandas and pyarrow are imported only when an export that needs them runs.
"""
from __future__ import annotations

import json
import os
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator

from ..errors import InputError, StoreError
from ._images import check_hash
from ._text import clean_decoding, clean_task, clean_text, edit_rate
from .store import Correction, NotFoundError, Store, _iso, open_store

FORMATS = ("csv", "jsonl", "coco", "parquet")
COLUMNS = ("id", "created_at", "updated_at", "image_hash", "image_file", "image_width", "image_height",
           "model", "model_revision", "task", "question", "decoding", "model_output", "corrected",
           "annotator", "note", "version", "edit_rate", "deleted")
_PROVENANCE = ("id", "created_at", "updated_at", "model", "model_revision", "task", "question", "decoding",
               "model_output", "annotator", "note", "version", "edit_rate")


@dataclass(frozen=True)
class ExportResult:
    path: str
    format: str
    rows: int
    images: int = 0             # PNG files written to images_dir
    missing_images: int = 0     # images named by rows but not in the store


@dataclass(frozen=True)
class ImportResult:
    path: str
    added: int
    skipped: int                # already in the store (same correction id)
    images: int                 # distinct images the added rows refer to


def record(c: Correction) -> dict[str, Any]:
    """One correction as an export row (the COLUMNS), JSON-ready."""
    return {
        "id": c.id, "created_at": _iso(c.created_at), "updated_at": _iso(c.updated_at),
        "image_hash": c.image_hash, "image_file": f"{c.image_hash}.png",
        "image_width": c.image_width, "image_height": c.image_height,
        "model": c.model, "model_revision": c.model_revision, "task": c.task, "question": c.question,
        "decoding": c.decoding, "model_output": c.model_output, "corrected": c.corrected,
        "annotator": c.annotator, "note": c.note, "version": c.version, "edit_rate": c.edit_rate,
        "deleted": c.deleted,
    }


def export(store: Store, fmt: str, path: str | os.PathLike, *, images_dir: str | os.PathLike | None = None,
           **filters: Any) -> ExportResult:
    """Write the corrections matching `filters` (see Store.list) to `path` in `fmt` (one of FORMATS).

    `images_dir`: also write each image as `<hash>.png` there. The file appears whole or not at all.
    """
    writers: dict[str, Callable[..., int]] = {"csv": _write_csv, "jsonl": _write_jsonl, "coco": _write_coco,
                                              "parquet": _write_parquet}
    if fmt not in writers:
        raise InputError(f"export format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    out = Path(path)
    if out.is_dir():
        raise InputError(f"{out} is a folder; give a file path")
    rows = list(store.scan(**filters))
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.parent / f".{out.name}.tmp-{uuid.uuid4().hex[:8]}"
        try:
            n = writers[fmt](rows, tmp)
            os.replace(tmp, out)
        finally:
            tmp.unlink(missing_ok=True)
    except OSError as e:
        raise StoreError(f"cannot write {out}: {e.strerror or e}") from None
    written = missing = 0
    if images_dir is not None:
        written, missing = _write_images(store, {c.image_hash for c in rows}, Path(images_dir))
    return ExportResult(str(out), fmt, n, written, missing)


def export_csv(store: Store, path: str | os.PathLike, **kw: Any) -> ExportResult:
    return export(store, "csv", path, **kw)


def export_jsonl(store: Store, path: str | os.PathLike, **kw: Any) -> ExportResult:
    return export(store, "jsonl", path, **kw)


def export_coco(store: Store, path: str | os.PathLike, **kw: Any) -> ExportResult:
    return export(store, "coco", path, **kw)


def export_parquet(store: Store, path: str | os.PathLike, **kw: Any) -> ExportResult:
    return export(store, "parquet", path, **kw)


def _frame(rows: list[Correction]) -> Any:
    import pandas as pd

    recs = [record(c) for c in rows]
    for r in recs:
        r["decoding"] = None if r["decoding"] is None else json.dumps(r["decoding"], ensure_ascii=False, sort_keys=True)
    df = pd.DataFrame.from_records(recs, columns=list(COLUMNS))
    for col in ("image_width", "image_height", "version"):
        df[col] = df[col].astype("Int64")
    df["edit_rate"] = df["edit_rate"].astype("float64")
    df["deleted"] = df["deleted"].astype("bool")
    return df


FREE_TEXT = ("question", "model_output", "corrected", "annotator", "note", "model")
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(text: Any) -> Any:
    """'=HYPERLINK(…)' -> "'=HYPERLINK(…)": a cell a spreadsheet would evaluate is shown as text."""
    return "'" + text if isinstance(text, str) and text.startswith(FORMULA_START) else text


def _write_csv(rows: list[Correction], path: Path) -> int:
    df = _frame(rows)
    for col in FREE_TEXT:
        df[col] = df[col].map(spreadsheet_safe)
    df.to_csv(path, index=False, encoding="utf-8", lineterminator="\n")
    return len(df)


def _write_parquet(rows: list[Correction], path: Path) -> int:
    import pandas as pd

    df = _frame(rows)
    for col in ("created_at", "updated_at"):
        df[col] = pd.to_datetime(df[col], utc=True, format="ISO8601").astype("datetime64[us, UTC]")
    for col in COLUMNS:
        if df[col].dtype == object or str(df[col].dtype).startswith(("str", "string")):
            df[col] = df[col].astype("string")
    df.to_parquet(path, index=False, engine="pyarrow")
    return len(df)


def _write_jsonl(rows: list[Correction], path: Path) -> int:
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        for c in rows:
            f.write(json.dumps(record(c), ensure_ascii=False) + "\n")
    return len(rows)


def _write_coco(rows: list[Correction], path: Path) -> int:
    image_ids: dict[str, int] = {}
    images_out: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    for c in rows:
        if c.image_hash not in image_ids:
            image_ids[c.image_hash] = len(image_ids) + 1
            images_out.append({"id": image_ids[c.image_hash], "file_name": f"{c.image_hash}.png",
                               "width": c.image_width, "height": c.image_height, "sha256": c.image_hash})
        provenance = {k: v for k, v in record(c).items() if k in _PROVENANCE}
        annotations.append({"id": len(annotations) + 1, "image_id": image_ids[c.image_hash],
                            "caption": c.corrected, "mmdemo": provenance})
    doc = {
        "info": {"description": "caption corrections exported by mmdemo", "version": "1.0",
                 "date_created": _iso(datetime.now(timezone.utc))},
        "licenses": [], "images": images_out, "annotations": annotations,
    }
    with open(path, "w", encoding="utf-8") as f:
        json.dump(doc, f, ensure_ascii=False)
    return len(annotations)


def _write_images(store: Store, hashes: set[str], folder: Path) -> tuple[int, int]:
    written = missing = 0
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for h in sorted(hashes):
            target = folder / f"{h}.png"
            if target.is_file():
                written += 1
                continue
            try:
                data = store.image_bytes(h)
            except NotFoundError:
                missing += 1
                continue
            tmp = folder / f".{h}.tmp-{uuid.uuid4().hex[:8]}"
            tmp.write_bytes(data)
            os.replace(tmp, target)
            written += 1
    except OSError as e:
        raise StoreError(f"cannot write images to {folder}: {e.strerror or e}") from None
    return written, missing


# --- import -------------------------------------------------------------------------------------
def import_coco(path: str | os.PathLike, store: Store | None = None, *,
                images_dir: str | os.PathLike | None = None, model: str = "coco-import",
                annotator: str | None = None) -> ImportResult:
    """Add the captions of a COCO-captions JSON file as corrections; return what was added.

    Images are looked for as `file_name` under `images_dir`, then beside the JSON file (and its
    `images/` folder), and stored by content hash. An image that is not found is kept by reference
    when its name (or its `sha256` field) is a content hash, as in mmdemo's own exports; otherwise
    the import stops before writing anything. Annotations carrying mmdemo provenance (our exports)
    keep their id, times and provenance, and are skipped when that id is already in the store, so
    importing the same export twice adds nothing. Others get `model` and `annotator` from the
    arguments and an empty model output.
    """
    src = Path(path)
    try:
        doc = json.loads(src.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"no such file: {src}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InputError(f"{src} is not a readable JSON file: {e}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("images"), list) \
            or not isinstance(doc.get("annotations"), list):
        raise InputError(f"{src} is not a COCO-captions file: it needs 'images' and 'annotations' lists")
    own = store is None
    store = store or open_store()
    try:
        roots = [Path(images_dir)] if images_dir is not None else []
        roots += [src.parent, src.parent / "images"]
        by_id = {im.get("id"): im for im in doc["images"] if isinstance(im, dict)}
        resolved: dict[Any, dict[str, Any]] = {}    # COCO image id -> {"hash", "_image" row or None}
        rows: list[dict[str, Any]] = []
        for n, ann in enumerate(doc["annotations"]):
            where = f"{src.name}: annotation {ann.get('id', n) if isinstance(ann, dict) else n}"
            if not isinstance(ann, dict):
                raise InputError(f"{where} is not an object")
            image_id = ann.get("image_id")
            if image_id not in by_id:
                raise InputError(f"{where} names image_id {image_id!r}, which is not in 'images'")
            if image_id not in resolved:
                resolved[image_id] = _resolve_image(store, by_id[image_id], roots, src.name)
            try:
                rows.append(_import_row(ann, resolved[image_id], model, annotator))
            except InputError as e:
                raise InputError(f"{where}: {e}") from None
        added = skipped = 0
        for start in range(0, len(rows), 500):
            batch = rows[start:start + 500]
            fresh = _not_in_store(store, batch)
            skipped += len(batch) - len(fresh)
            if fresh:
                store._insert(fresh)
                added += len(fresh)
        return ImportResult(str(src), added, skipped, len({r["image_hash"] for r in rows}))
    finally:
        if own:
            store.close()


def _resolve_image(store: Store, entry: dict[str, Any], roots: list[Path], doc_name: str) -> dict[str, Any]:
    name = entry.get("file_name")
    if not isinstance(name, str) or not name:
        raise InputError(f"{doc_name}: image {entry.get('id')!r} has no file_name")
    for root in roots:
        candidate = (root / name).resolve()
        if candidate.is_relative_to(root.resolve()) and candidate.is_file():
            row = store.store_image(candidate)
            return {"hash": row["hash"], "_image": row}
    for key in (entry.get("sha256"), Path(name).stem):
        try:
            return {"hash": check_hash(key), "_image": None}
        except InputError:
            continue
    raise InputError(f"{doc_name}: image file {name!r} not found under {', '.join(str(r) for r in roots)}; "
                     f"pass images_dir (nothing was imported)")


def _import_row(ann: dict[str, Any], image: dict[str, Any], model: str, annotator: str | None) -> dict[str, Any]:
    meta = ann.get("mmdemo") if isinstance(ann.get("mmdemo"), dict) else {}
    caption = clean_text(ann.get("caption"), "corrected", required=True)
    output = clean_text(meta.get("model_output"), "model_output") or ""
    cid = meta.get("id")
    try:
        cid = str(uuid.UUID(cid)) if isinstance(cid, str) else str(uuid.uuid4())
    except ValueError:
        cid = str(uuid.uuid4())
    now = datetime.now(timezone.utc)
    created = _parse_time(meta.get("created_at")) or now
    task = clean_task(meta.get("task") or "caption")
    question = clean_text(meta.get("question"), "question")
    if task == "vqa" and question is None:
        raise InputError("a vqa correction needs the question")
    return {
        "id": cid, "created_at": created, "updated_at": _parse_time(meta.get("updated_at")) or created,
        "image_hash": image["hash"], "_image": image["_image"],
        "model": clean_text(meta.get("model") or model, "model", required=True, single_line=True),
        "model_revision": clean_text(meta.get("model_revision"), "model_revision", single_line=True),
        "task": task, "question": question, "decoding": clean_decoding(meta.get("decoding")),
        "model_output": output, "corrected": caption,
        "annotator": clean_text(meta.get("annotator") if meta else annotator, "annotator", single_line=True),
        "note": clean_text(meta.get("note"), "note"), "version": 1, "edit_rate": edit_rate(output, caption),
    }


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        t = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return t.replace(tzinfo=timezone.utc) if t.tzinfo is None else t.astimezone(timezone.utc)


def _not_in_store(store: Store, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    from sqlalchemy import select

    from . import _schema as S

    ids = [r["id"] for r in rows]
    with store._tx("check existing corrections") as conn:
        present = set(conn.execute(select(S.corrections.c.id).where(S.corrections.c.id.in_(ids))).scalars())
    seen: set[str] = set()
    fresh = []
    for r in rows:
        if r["id"] not in present and r["id"] not in seen:
            seen.add(r["id"])
            fresh.append(r)
    return fresh


def iter_records(store: Store, **filters: Any) -> Iterator[dict[str, Any]]:
    """Export rows one at a time (for custom sinks)."""
    for c in store.scan(**filters):
        yield record(c)


__all__ = ["COLUMNS", "FORMATS", "ExportResult", "ImportResult", "export", "export_coco", "export_csv",
           "export_jsonl", "export_parquet", "import_coco", "iter_records", "record"]
