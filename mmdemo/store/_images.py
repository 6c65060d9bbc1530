"""Where the store keeps image bytes: files beside a SQLite database, or a column of the images table."""
from __future__ import annotations

import os
import re
import uuid
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.engine import Connection

from ..errors import InputError
from ._schema import images

_HASH = re.compile(r"[0-9a-f]{64}")


def check_hash(image_hash: object) -> str:
    """A SHA-256 hex digest, lower case; anything else is refused (it becomes a file path)."""
    if not isinstance(image_hash, str) or not _HASH.fullmatch(image_hash):
        raise InputError(f"not an image hash (64 lower-case hex digits): {str(image_hash)[:80]!r}")
    return image_hash


class ImageFiles:
    """PNG files under `root/ab/<hash>.png`, written whole (temp file, fsync, rename) before the
    row that names them commits, so a row never points at a half-written image."""

    in_database = False

    def __init__(self, root: Path):
        self.root = root

    def path(self, image_hash: str) -> Path:
        return self.root / image_hash[:2] / f"{image_hash}.png"

    def has(self, conn: Connection, image_hash: str) -> bool:
        return self.path(image_hash).is_file()

    def size(self, image_hash: str) -> int:
        return self.path(image_hash).stat().st_size

    def write(self, image_hash: str, png: bytes) -> None:
        final = self.path(image_hash)
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = final.parent / f".tmp-{uuid.uuid4().hex}"
        try:
            with open(tmp, "wb") as f:
                f.write(png)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, final)       # atomic: readers see no file or the whole file
        finally:
            tmp.unlink(missing_ok=True)

    def read(self, conn: Connection, image_hash: str) -> bytes | None:
        try:
            return self.path(image_hash).read_bytes()
        except FileNotFoundError:
            return None


class ImageTable:
    """PNG bytes in images.data (PostgreSQL, or SQLite in memory): every replica sees them."""

    in_database = True

    def has(self, conn: Connection, image_hash: str) -> bool:
        return conn.execute(select(images.c.hash).where(images.c.hash == image_hash)).first() is not None

    def read(self, conn: Connection, image_hash: str) -> bytes | None:
        row = conn.execute(select(images.c.data).where(images.c.hash == image_hash)).first()
        return None if row is None or row[0] is None else bytes(row[0])
