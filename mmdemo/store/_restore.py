"""Mirrored corrections read back as table rows (`Store.restore` inserts them): ids, times, every version."""
from __future__ import annotations

import io
import logging
from datetime import datetime, timezone
from typing import Any

from . import _schema as S
from ._images import check_hash

log = logging.getLogger(__name__)


def utc_time(value: Any) -> datetime | None:
    if value in (None, ""):
        return None
    t = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return t.replace(tzinfo=timezone.utc) if t.tzinfo is None else t.astimezone(timezone.utc)


def image_size(png: bytes) -> tuple[int, int]:
    from PIL import Image

    with Image.open(io.BytesIO(png)) as img:
        return img.size


def mirrored_rows(record: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(corrections row, correction_versions rows) for one mirrored record."""
    row = {col.name: record.get(col.name) for col in S.corrections.columns}
    for key in ("created_at", "updated_at", "deleted_at"):
        row[key] = utc_time(record.get(key))
    check_hash(row["image_hash"])
    history = record.get("history") or [{    # an older shard: the latest state is the only version known
        "version": record["version"], "corrected": record["corrected"], "annotator": record.get("annotator"),
        "note": record.get("note"), "edit_rate": record["edit_rate"], "created_at": record["updated_at"]}]
    versions = [{"correction_id": row["id"], "version": v["version"], "corrected": v["corrected"],
                 "annotator": v.get("annotator"), "note": v.get("note"), "edit_rate": v["edit_rate"],
                 "created_at": utc_time(v["created_at"])} for v in history]
    return row, versions
