"""Put mirrored corrections back into a store: rows with their ids and times, every version, images byte for byte."""
from __future__ import annotations

import io
import logging
from datetime import datetime, timezone
from typing import Any, Callable, Iterable

from . import _schema as S
from ._images import ImageFiles, check_hash

log = logging.getLogger(__name__)
_BATCH = 500


def _time(value: Any) -> datetime | None:
    if value in (None, ""):
        return None
    t = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return t.replace(tzinfo=timezone.utc) if t.tzinfo is None else t.astimezone(timezone.utc)


def _size(png: bytes) -> tuple[int, int]:
    from PIL import Image

    with Image.open(io.BytesIO(png)) as img:
        return img.size


def _rows(record: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(corrections row, correction_versions rows) for one mirrored record."""
    row = {col.name: record.get(col.name) for col in S.corrections.columns}
    for key in ("created_at", "updated_at", "deleted_at"):
        row[key] = _time(record.get(key))
    check_hash(row["image_hash"])
    history = record.get("history") or [{    # an older shard: the latest state is the only version known
        "version": record["version"], "corrected": record["corrected"], "annotator": record.get("annotator"),
        "note": record.get("note"), "edit_rate": record["edit_rate"], "created_at": record["updated_at"]}]
    versions = [{"correction_id": row["id"], "version": v["version"], "corrected": v["corrected"],
                 "annotator": v.get("annotator"), "note": v.get("note"), "edit_rate": v["edit_rate"],
                 "created_at": _time(v["created_at"])} for v in history]
    return row, versions


def restore_records(store: Any, records: Iterable[dict[str, Any]], read_image: Callable[[str], bytes | None]) -> int:
    """Insert `records` (hub_sync's mirror format) into `store`, skipping ids and images it already has."""
    from .store import _insert_ignoring_duplicates

    records = list(records)
    seen: set[str] = set()
    n = 0
    for start in range(0, len(records), _BATCH):
        batch = records[start:start + _BATCH]
        rows, versions, image_rows = [], [], []
        for record in batch:
            try:
                row, vs = _rows(record)
            except (KeyError, TypeError, ValueError) as e:     # InputError is a ValueError
                log.warning("skipping a mirrored correction that cannot be read (%s): %s", record.get("id"), e)
                continue
            rows.append(row)
            versions += vs
            h = row["image_hash"]
            if h in seen:
                continue
            seen.add(h)
            png = read_image(h)
            if png is None:             # the row keeps its hash; the image is reported absent, as after an import
                continue
            width, height = record.get("image_width"), record.get("image_height")
            if not width or not height:
                width, height = _size(png)
            in_files = isinstance(store._images, ImageFiles)
            if in_files:
                with store._guard("restore an image"):
                    store._images.write(h, png)
            image_rows.append({"hash": h, "width": width, "height": height, "size_bytes": len(png),
                               "created_at": row["created_at"], "data": None if in_files else png})
        with store._tx("restore corrections", write=True) as conn:
            _insert_ignoring_duplicates(conn, S.images, image_rows)
            _insert_ignoring_duplicates(conn, S.corrections, rows)
            _insert_ignoring_duplicates(conn, S.correction_versions, versions)
        n += len(rows)
    return n
