"""Tables of the corrections store, and the migrations that build them (one list, applied in order)."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Callable

from sqlalchemy import (JSON, Column, DateTime, Float, ForeignKey, Index, Integer, LargeBinary,
                        MetaData, String, Table, Text, UniqueConstraint, bindparam, func, insert, select, text)
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


# A correction campaign: a team corrects every task (image, or image × question) of a dataset.
campaigns = Table(
    "campaigns", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(100), nullable=False, unique=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("model", String(200), nullable=False),
    Column("model_revision", String(200)),
    Column("task", String(16), nullable=False),               # "caption" | "vqa"
    Column("questions", _JSON),                               # vqa: the questions asked of every image
    Column("overlap", Integer, nullable=False),               # distinct annotators per task
    Column("order", String(16), nullable=False),              # "uncertainty" | "random" | "imported"
    Column("review", Integer, nullable=False),                # 1: submissions wait for a reviewer
    Column("instructions", Text),
    Column("seed", Integer, nullable=False),
)

# One row per image (× question). `position` orders the queue (lowest first); `done` is set when
# `overlap` distinct annotators have submitted; the lease columns say who holds it until when.
campaign_tasks = Table(
    "campaign_tasks", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("campaign_id", Integer, ForeignKey("campaigns.id"), nullable=False),
    Column("key", String(64), nullable=False),                # sha256(image hash, question): one task each
    Column("image_hash", String(64), nullable=False),
    Column("image_path", Text),
    Column("question", Text),
    Column("model_output", Text, nullable=False),
    Column("tokens", _JSON),                                  # the model's tokens, when known
    Column("token_probs", _JSON),                             # their probabilities
    Column("decoding", _JSON),                                # how the model decoded it (None: a given text)
    Column("confidence", Float),                              # mean token probability (None: unknown)
    Column("chrf", Float),                                    # annotators' chrF on this task, remembered …
    Column("chrf_key", String(64)),                           # … for this set of texts (sha256 of them)
    Column("position", Float, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("submissions", Integer, nullable=False),
    Column("done", Integer, nullable=False),
    Column("lease_annotator", String(100)),
    Column("lease_started", UTCDateTime),
    Column("lease_until", UTCDateTime),
    UniqueConstraint("campaign_id", "key", name="uq_campaign_task_key"),
)
Index("ix_campaign_tasks_queue", campaign_tasks.c.campaign_id, campaign_tasks.c.done, campaign_tasks.c.position,
      campaign_tasks.c.id)
Index("ix_campaign_tasks_lease", campaign_tasks.c.lease_annotator, campaign_tasks.c.campaign_id,
      campaign_tasks.c.done, campaign_tasks.c.lease_until)     # one annotator's live lease, not a queue scan
Index("ix_campaign_tasks_leased", campaign_tasks.c.campaign_id, campaign_tasks.c.done, campaign_tasks.c.lease_until)

# One row per (task, annotator) who submitted it; the text lives in the linked correction (and its versions).
campaign_submissions = Table(
    "campaign_submissions", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("task_id", Integer, ForeignKey("campaign_tasks.id"), nullable=False),
    Column("campaign_id", Integer, ForeignKey("campaigns.id"), nullable=False),
    Column("annotator", String(100), nullable=False),
    Column("correction_id", String(36), ForeignKey("corrections.id"), nullable=False),
    Column("started_at", UTCDateTime),                        # when the lease began
    Column("submitted_at", UTCDateTime, nullable=False),
    Column("status", String(16), nullable=False),             # "submitted" | "approved" | "rejected"
    Column("reviewer", String(100)),
    Column("reviewed_at", UTCDateTime),
    UniqueConstraint("task_id", "annotator", name="uq_campaign_submission"),
)
Index("ix_campaign_submissions_campaign", campaign_submissions.c.campaign_id, campaign_submissions.c.annotator)

# Tasks an annotator skipped: not offered to them again (back can reopen one).
campaign_skips = Table(
    "campaign_skips", metadata,
    Column("task_id", Integer, ForeignKey("campaign_tasks.id"), primary_key=True),
    Column("annotator", String(100), primary_key=True),
    Column("campaign_id", Integer, ForeignKey("campaigns.id"), nullable=False),
    Column("skipped_at", UTCDateTime, nullable=False),
)


def _v1_initial(conn: Connection) -> None:
    for table in (images, corrections, correction_versions):
        table.create(conn, checkfirst=True)


def _v2_campaigns(conn: Connection) -> None:
    for table in (campaigns, campaign_tasks, campaign_submissions, campaign_skips):
        table.create(conn, checkfirst=True)


def _v3_levenshtein_edit_rate(conn: Connection) -> None:
    """Recompute every stored edit_rate as the word-level Levenshtein distance (difflib overcounted)."""
    from ._text import edit_rate

    c, v = corrections.c, correction_versions.c
    outputs = dict(conn.execute(select(c.id, c.model_output)).all())
    rows = [{"_id": cid, "_rate": edit_rate(outputs[cid], text)}
            for cid, text in conn.execute(select(c.id, c.corrected)).all()]
    if rows:
        conn.execute(corrections.update().where(c.id == bindparam("_id")).values(edit_rate=bindparam("_rate")), rows)
    rows = [{"_id": vid, "_rate": edit_rate(outputs.get(cid), text)}
            for vid, cid, text in conn.execute(select(v.id, v.correction_id, v.corrected)).all()]
    if rows:
        conn.execute(correction_versions.update().where(v.id == bindparam("_id"))
                     .values(edit_rate=bindparam("_rate")), rows)


# (version, what it does, how). Append only: never edit or reorder a released migration.
MIGRATIONS: list[tuple[int, str, Callable[[Connection], None]]] = [
    (1, "images, corrections, correction_versions", _v1_initial),
    (2, "campaigns, campaign_tasks, campaign_submissions, campaign_skips", _v2_campaigns),
    (3, "edit_rate as word-level Levenshtein distance", _v3_levenshtein_edit_rate),
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


class NotFoundError(StoreError, KeyError):
    """No correction (or image) with that id (or hash)."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


def insert_ignoring_duplicates(conn: Connection, table: Any, rows: list[dict[str, Any]]) -> None:
    """Insert rows; a row whose key is already there is skipped (ON CONFLICT DO NOTHING)."""
    if not rows:
        return
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as dialect_insert
    else:
        from sqlalchemy.dialects.sqlite import insert as dialect_insert
    conn.execute(dialect_insert(table).on_conflict_do_nothing(), rows)
