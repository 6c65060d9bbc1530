"""Tables of the corrections store, and the migrations that build them (one list, applied in order)."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Callable

from sqlalchemy import (JSON, Column, DateTime, Float, ForeignKey, Index, Integer, LargeBinary,
                        MetaData, String, Table, Text, UniqueConstraint, func, insert, select, text)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Connection
from sqlalchemy.types import TypeDecorator

from ..errors import StoreError


class UTCDateTime(TypeDecorator):
    """Aware UTC datetimes in and out. SQLite keeps naive UTC text; PostgreSQL a timestamptz."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; use an aware UTC datetime")
        value = value.astimezone(timezone.utc)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


_JSON = JSON().with_variant(JSONB(), "postgresql")
metadata = MetaData()

schema_version = Table(
    "schema_version", metadata,
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("applied_at", UTCDateTime, nullable=False),
)

# One row per distinct image (SHA-256 of normalised pixels). `data` holds the PNG when the store
# keeps images in the database (PostgreSQL, in-memory SQLite); SQLite on disk keeps files instead.
images = Table(
    "images", metadata,
    Column("hash", String(64), primary_key=True),
    Column("width", Integer, nullable=False),
    Column("height", Integer, nullable=False),
    Column("size_bytes", Integer, nullable=False),          # PNG bytes
    Column("created_at", UTCDateTime, nullable=False),
    Column("data", LargeBinary, nullable=True),
)

# The current state of each correction. Every version (the first one too) is also in
# correction_versions, so nothing an annotator wrote is ever overwritten.
corrections = Table(
    "corrections", metadata,
    Column("id", String(36), primary_key=True),               # UUID4, text
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("image_hash", String(64), nullable=False),        # images.hash; the image may be absent after an import
    Column("model", String(200), nullable=False),
    Column("model_revision", String(200)),
    Column("task", String(16), nullable=False),
    Column("question", Text),
    Column("decoding", _JSON),
    Column("model_output", Text, nullable=False),
    Column("corrected", Text, nullable=False),
    Column("annotator", String(100)),
    Column("note", Text),
    Column("version", Integer, nullable=False),
    Column("edit_rate", Float, nullable=False),              # word edits per model-output word
    Column("deleted_at", UTCDateTime),                       # soft delete: set, never removed
    Column("deleted_by", String(100)),
)
Index("ix_corrections_created", corrections.c.created_at, corrections.c.id)
Index("ix_corrections_model", corrections.c.model, corrections.c.created_at)
Index("ix_corrections_annotator", corrections.c.annotator)
Index("ix_corrections_image", corrections.c.image_hash)

correction_versions = Table(
    "correction_versions", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("correction_id", String(36), ForeignKey("corrections.id"), nullable=False),
    Column("version", Integer, nullable=False),
    Column("corrected", Text, nullable=False),
    Column("annotator", String(100)),
    Column("note", Text),
    Column("edit_rate", Float, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    UniqueConstraint("correction_id", "version", name="uq_correction_version"),
)


def _v1_initial(conn: Connection) -> None:
    for table in (images, corrections, correction_versions):
        table.create(conn, checkfirst=True)


# (version, what it does, how). Append only: never edit or reorder a released migration.
MIGRATIONS: list[tuple[int, str, Callable[[Connection], None]]] = [
    (1, "images, corrections, correction_versions", _v1_initial),
]
LATEST = MIGRATIONS[-1][0]


def migrate(conn: Connection) -> int:
    """Bring the schema to LATEST inside the caller's write transaction; return the version now.

    The caller holds the database's write lock (SQLite: BEGIN IMMEDIATE; PostgreSQL: an advisory
    lock), so replicas starting at once migrate one after the other.
    """
    schema_version.create(conn, checkfirst=True)
    current = conn.execute(select(func.max(schema_version.c.version))).scalar() or 0
    if current > LATEST:
        raise StoreError(f"the corrections database has schema version {current}, newer than this "
                         f"mmdemo understands ({LATEST}); upgrade mmdemo")
    for version, _, apply in MIGRATIONS:
        if version > current:
            apply(conn)
            conn.execute(insert(schema_version).values(version=version, applied_at=utcnow()))
    return LATEST


def lock_for_migration(conn: Connection) -> None:
    """PostgreSQL: serialise migrations across processes and machines (released at commit)."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(7165031)"))
