"""The output folder: Parquet shards written atomically, read back to know what is done.

A shard is written under a hidden temporary name and renamed into place, so readers (pandas, `datasets`, the next
run) only ever see whole files. A file that still cannot be read (a Ray write cut short) is moved aside as
`.broken-NAME`, and the rows it held are computed again."""
from __future__ import annotations

import os
import sys
import time
import uuid
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import InputError
from .rows import KEY_COLUMNS, key, to_table

TEMP_PREFIX = ".tmp-"


def prepare(out_dir: str | os.PathLike) -> Path:
    """Create the folder (and its parents); refuse a path that is a file."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise InputError(f"--out must be a folder, and {str(out)!r} is a file")
    out.mkdir(parents=True, exist_ok=True)
    for stale in out.glob(f"{TEMP_PREFIX}*"):  # a shard whose writer was killed before the rename
        stale.unlink(missing_ok=True)
    return out


def shard_files(out: Path) -> list[Path]:
    return sorted(p for p in out.glob("*.parquet") if not p.name.startswith((".", "_")))


def read(out: Path, columns: list[str] | None = None) -> dict[Path, pa.Table]:
    """Each readable shard's table (all columns, or `columns`); unreadable ones are moved aside."""
    tables: dict[Path, pa.Table] = {}
    for path in shard_files(out):
        try:
            tables[path] = pq.read_table(path, columns=columns)
        except Exception as e:  # a truncated or foreign file: pyarrow raises several types
            aside = path.with_name(f".broken-{path.name}")
            os.replace(path, aside)
            print(f"warning: moved unreadable shard {path.name} aside to {aside.name} ({type(e).__name__})",
                  file=sys.stderr)
    return tables


def done_keys(tables: dict[Path, pa.Table]) -> set[tuple]:
    keys: set[tuple] = set()
    for table in tables.values():
        keys.update(key(row) for row in table.select(list(KEY_COLUMNS)).to_pylist())
    return keys


def count(tables: dict[Path, pa.Table]) -> tuple[int, int]:
    """(rows, rows with an error) over the tables."""
    rows = sum(t.num_rows for t in tables.values())
    errors = sum(t.num_rows - t.column("error").null_count for t in tables.values())
    return rows, errors


class ShardWriter:
    """Writes rows as `part-RUN-SEQ.parquet`, each file whole or not at all."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.run = f"{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}-{uuid.uuid4().hex[:6]}"
        self.seq = 0
        self.paths: list[Path] = []

    def write(self, rows: list[dict]) -> Path:
        path = self.out / f"part-{self.run}-{self.seq:05d}.parquet"
        temp = self.out / f"{TEMP_PREFIX}{path.name}"
        pq.write_table(to_table(rows), temp)
        os.replace(temp, path)
        self.seq += 1
        self.paths.append(path)
        return path

