"""The corrections store: one API over SQLite (default) and PostgreSQL, through SQLAlchemy Core."""
from __future__ import annotations

import logging
import uuid
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from sqlalchemy import and_, create_engine, event, exc, func, insert, or_, select, update
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.pool import StaticPool

from ..config import settings
from ..errors import InputError, MmdemoError, StoreError
from . import _schema as S
from ._schema import NotFoundError, insert_ignoring_duplicates
from ._campaigns import CampaignsMixin
from ._gate import WriteGate
from ._images import ImageFiles, ImageTable, check_hash
from ._restore import image_size, mirrored_rows
from ._text import DiffOp, clean_decoding, clean_task, clean_text, edit_rate, word_diff

log = logging.getLogger(__name__)

MAX_PAGE = 1_000          # most rows one list() call returns
_BATCH = 500              # rows per transaction in add_many / imports
_ADD_KEYWORDS = {"model", "model_revision", "task", "question", "annotator", "note", "decoding"}


@dataclass(frozen=True)
class Version:
    """One state of a correction's text; version 1 is what was first saved."""
    version: int
    corrected: str
    annotator: str | None
    note: str | None
    edit_rate: float
    created_at: datetime


@dataclass(frozen=True)
class Correction:
    id: str                             # UUID4 text
    created_at: datetime                # UTC, first save
    updated_at: datetime                # UTC, latest version
    image_hash: str                     # SHA-256 of the normalised pixels; store.image_bytes(hash) gives the PNG
    image_width: int | None             # None when the image is not in the store (imported by reference)
    image_height: int | None
    model: str
    model_revision: str | None
    task: str                           # "caption" | "vqa"
    question: str | None
    decoding: dict[str, Any] | None     # decoding settings the model output was produced with
    model_output: str
    corrected: str                      # the latest version
    annotator: str | None               # who wrote the latest version
    note: str | None
    version: int                        # 1 + number of updates
    edit_rate: float                    # word edits per model-output word (see _text.edit_rate)
    deleted_at: datetime | None = None
    deleted_by: str | None = None
    history: tuple[Version, ...] = ()   # every version, oldest first (get() fills it; list() does not)

    @property
    def deleted(self) -> bool:
        return self.deleted_at is not None

    def diff(self) -> list[DiffOp]:
        """Word-level diff from the model output to the correction."""
        return word_diff(self.model_output, self.corrected)

    def to_dict(self, *, history: bool = False) -> dict[str, Any]:
        """JSON-ready: times as ISO 8601 UTC text."""
        out = asdict(self)
        out.pop("history")
        for k in ("created_at", "updated_at", "deleted_at"):
            out[k] = _iso(out[k])
        out["deleted"] = self.deleted
        if history:
            out["history"] = [{**asdict(v), "created_at": _iso(v.created_at)} for v in self.history]
        return out


def _iso(t: datetime | None) -> str | None:
    return None if t is None else t.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def _utc(t: datetime | None, name: str) -> datetime | None:
    if t is None:
        return None
    if not isinstance(t, datetime):
        raise InputError(f"{name} must be a datetime, not {type(t).__name__}")
    return t.replace(tzinfo=timezone.utc) if t.tzinfo is None else t.astimezone(timezone.utc)


class Store(CampaignsMixin):
    """Corrections with full provenance, every version kept, images stored once by content hash.

    Thread-safe (a connection pool); open one per process. Every method raises StoreError when the
    database cannot be used (corrupt, locked past the timeout, unreachable) and InputError for bad input.
    """

    def __init__(self, engine: Engine, images: ImageFiles | ImageTable, where: str, *,
                 sync: Any | None = None, timeout_s: float = 10.0, gate: WriteGate | None = None):
        self.engine = engine
        self._gate = gate                   # SQLite file: queues this machine's writers (see _gate)
        self.where = where                  # for messages: file path, or URL without password
        self.timeout_s = timeout_s
        self._images = images
        self._sync = sync                   # hub_sync.HubSync or None
        self._migrate()

    # --- writing -----------------------------------------------------------------------------
    def add(self, image: Any, model_output: str | None, corrected: str, *, model: str,
            model_revision: str | None = None, task: str = "caption", question: str | None = None,
            annotator: str | None = None, note: str | None = None,
            decoding: dict[str, Any] | None = None) -> str:
        """Save one correction; return its id once it is committed (readable at once, from any process)."""
        row = self._prepare(image, model_output, corrected, model=model, model_revision=model_revision,
                            task=task, question=question, annotator=annotator, note=note, decoding=decoding)
        self._insert([row])
        self._push(row["id"])
        return row["id"]

    def add_many(self, items: Iterable[dict[str, Any]]) -> list[str]:
        """Save many corrections (each a dict of add()'s arguments), 500 per transaction; return their ids."""
        ids: list[str] = []
        batch: list[dict[str, Any]] = []
        seen: dict[int, tuple[Any, dict[str, Any]]] = {}    # id(image object) -> image row, to hash it once
        for item in items:
            item = dict(item)
            try:
                image, model_output, corrected = item.pop("image"), item.pop("model_output"), item.pop("corrected")
            except KeyError as e:
                raise InputError(f"add_many: an item has no {e.args[0]!r}") from None
            unknown = set(item) - _ADD_KEYWORDS
            if unknown:
                raise InputError(f"add_many: unknown field(s) {', '.join(sorted(unknown))}")
            batch.append(self._prepare(image, model_output, corrected, _seen=seen, **item))
            if len(batch) >= _BATCH:
                ids += self._insert_and_push(batch)
                batch = []
        if batch:
            ids += self._insert_and_push(batch)
        return ids

    def _insert_and_push(self, rows: list[dict[str, Any]]) -> list[str]:
        self._insert(rows)
        for r in rows:
            self._push(r["id"])
        return [r["id"] for r in rows]

    def update(self, id: str, corrected: str, annotator: str | None = None, *,
               note: str | None = None) -> Correction:
        """Replace the corrected text; the earlier versions stay in the history. `note` None keeps the note."""
        text = clean_text(corrected, "corrected", required=True)
        who = clean_text(annotator, "annotator", single_line=True)
        new_note = clean_text(note, "note")
        now = S.utcnow()
        c = S.corrections.c
        with self._tx("update a correction", write=True) as conn:
            row = conn.execute(select(c.model_output, c.note, c.deleted_at).where(c.id == self._id(id))).first()
            if row is None:
                raise NotFoundError(f"no correction with id {id}")
            if row.deleted_at is not None:
                raise InputError(f"correction {id} is deleted; restore it before editing")
            rate = edit_rate(row.model_output, text)
            keep_note = new_note if new_note is not None else row.note
            version = conn.execute(
                update(S.corrections).where(c.id == id)
                .values(corrected=text, annotator=who, note=keep_note, edit_rate=rate, updated_at=now,
                        version=c.version + 1)
                .returning(c.version)).scalar_one()
            conn.execute(insert(S.correction_versions).values(
                correction_id=id, version=version, corrected=text, annotator=who, note=keep_note,
                edit_rate=rate, created_at=now))
        self._push(id)
        return self.get(id)

    def delete(self, id: str, annotator: str | None = None) -> None:
        """Soft delete: hidden from list/count/stats/exports, still returned by get() (flagged)."""
        who = clean_text(annotator, "annotator", single_line=True)
        c = S.corrections.c
        with self._tx("delete a correction", write=True) as conn:
            found = conn.execute(select(c.deleted_at).where(c.id == self._id(id))).first()
            if found is None:
                raise NotFoundError(f"no correction with id {id}")
            if found.deleted_at is None:
                conn.execute(update(S.corrections).where(c.id == id).values(deleted_at=S.utcnow(), deleted_by=who))
        self._push(id)

    def restore(self, id: str) -> None:
        """Undo a soft delete."""
        c = S.corrections.c
        with self._tx("restore a correction", write=True) as conn:
            done = conn.execute(update(S.corrections).where(c.id == self._id(id))
                                .values(deleted_at=None, deleted_by=None)).rowcount
            if not done:
                raise NotFoundError(f"no correction with id {id}")
        self._push(id)

    # --- reading -----------------------------------------------------------------------------
    def get(self, id: str) -> Correction:
        """One correction with its whole version history (deleted ones too, flagged)."""
        v = S.correction_versions.c
        with self._tx("read a correction") as conn:
            row = conn.execute(self._select().where(S.corrections.c.id == self._id(id))).first()
            if row is None:
                raise NotFoundError(f"no correction with id {id}")
            versions = conn.execute(
                select(v.version, v.corrected, v.annotator, v.note, v.edit_rate, v.created_at)
                .where(v.correction_id == id).order_by(v.version)).all()
        return self._correction(row, tuple(Version(*r) for r in versions))

    def list(self, *, model: str | None = None, task: str | None = None, annotator: str | None = None,
             search: str | None = None, since: datetime | None = None, image_hash: str | None = None,
             include_deleted: bool = False, limit: int = 50, offset: int = 0) -> list[Correction]:
        """A page of corrections, newest first. `search`: case-insensitive substring of the corrected
        text, model output, question or note. `since`: created at or after (UTC)."""
        if not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE:
            raise InputError(f"limit must be between 1 and {MAX_PAGE}, not {limit!r}")
        if not isinstance(offset, int) or offset < 0:
            raise InputError(f"offset must be 0 or more, not {offset!r}")
        c = S.corrections.c
        where = self._filters(model, task, annotator, search, since, image_hash, include_deleted)
        q = self._select().where(*where).order_by(c.created_at.desc(), c.id.desc()).limit(limit).offset(offset)
        with self._tx("list corrections") as conn:
            return [self._correction(r) for r in conn.execute(q)]

    def count(self, *, model: str | None = None, task: str | None = None, annotator: str | None = None,
              search: str | None = None, since: datetime | None = None, image_hash: str | None = None,
              include_deleted: bool = False) -> int:
        where = self._filters(model, task, annotator, search, since, image_hash, include_deleted)
        with self._tx("count corrections") as conn:
            return conn.execute(select(func.count()).select_from(S.corrections).where(*where)).scalar_one()

    def scan(self, *, model: str | None = None, task: str | None = None, annotator: str | None = None,
             search: str | None = None, since: datetime | None = None, image_hash: str | None = None,
             include_deleted: bool = False, batch: int = 1_000) -> Iterator[Correction]:
        """Every matching correction, oldest first, read in pages (for exports)."""
        c = S.corrections.c
        where = self._filters(model, task, annotator, search, since, image_hash, include_deleted)
        after: tuple[datetime, str] | None = None
        while True:
            q = self._select().where(*where)
            if after is not None:
                q = q.where(or_(c.created_at > after[0], and_(c.created_at == after[0], c.id > after[1])))
            with self._tx("read corrections") as conn:
                page = [self._correction(r) for r in conn.execute(q.order_by(c.created_at, c.id).limit(batch))]
            yield from page
            if len(page) < batch:
                return
            after = (page[-1].created_at, page[-1].id)

    def stats(self) -> dict[str, Any]:
        """Counts of live corrections by model, task and annotator ("" for none), and the mean edit rate."""
        c = S.corrections.c
        live = c.deleted_at.is_(None)
        with self._tx("compute statistics") as conn:
            total, mean, changed, n_images = conn.execute(
                select(func.count(), func.avg(c.edit_rate), func.count().filter(c.edit_rate > 0),
                       func.count(c.image_hash.distinct())).where(live)).one()
            deleted = conn.execute(select(func.count()).where(c.deleted_at.is_not(None))).scalar_one()
            groups: dict[str, dict[str, int]] = {}
            for name, col in (("by_model", c.model), ("by_task", c.task), ("by_annotator", c.annotator)):
                counts: dict[str, int] = {}
                for key, n in conn.execute(select(col, func.count()).where(live).group_by(col)
                                           .order_by(func.count().desc(), col)):
                    counts[key or ""] = counts.get(key or "", 0) + n
                groups[name] = counts
        return {"corrections": total, "deleted": deleted, "images": n_images, "changed": changed,
                "mean_edit_rate": None if mean is None else float(mean), **groups}

    def image_bytes(self, image_hash: str) -> bytes:
        """The PNG stored under this content hash."""
        check_hash(image_hash)
        with self._tx("read an image") as conn:
            data = self._images.read(conn, image_hash)
        if data is None:
            raise NotFoundError(f"no image {image_hash} in the store")
        return data

    def has_image(self, image_hash: str) -> bool:
        check_hash(image_hash)
        with self._tx("read an image") as conn:
            return self._images.has(conn, image_hash)

    def restore_mirror(self, records: Iterable[dict[str, Any]], read_image: Callable[[str], bytes | None]) -> int:
        """Insert mirrored `records` (hub_sync's format: rows with their ids, times and every version), skipping
        ids and images the store already has; `read_image(hash)` gives an image's PNG bytes (None: not mirrored)."""
        records = list(records)
        n = 0
        for start in range(0, len(records), _BATCH):
            rows, versions = [], []
            for record in records[start:start + _BATCH]:
                try:
                    row, vs = mirrored_rows(record)
                except (KeyError, TypeError, ValueError) as e:     # InputError is a ValueError
                    log.warning("skipping a mirrored correction that cannot be read (%s): %s", record.get("id"), e)
                    continue
                rows.append(row)
                versions += vs
            with self._tx("restore corrections", write=True) as conn:
                self._restore_images(conn, list({r["image_hash"]: r["created_at"] for r in rows}.items()),
                                     read_image)
                insert_ignoring_duplicates(conn, S.corrections, rows)
                insert_ignoring_duplicates(conn, S.correction_versions, versions)
            n += len(rows)
        return n

    def _restore_images(self, conn: Connection, hashes: list[tuple[str, datetime]],
                        read_image: Callable[[str], bytes | None]) -> None:
        """Put in the images (hash, first seen) the store lacks, from `read_image` (None: not mirrored; the rows keep
        the hash and the image is reported absent, as after an import)."""
        in_files = isinstance(self._images, ImageFiles)
        rows = []
        for h, created_at in hashes:
            check_hash(h)
            if conn.execute(select(S.images.c.hash).where(S.images.c.hash == h)).first() is not None:
                continue
            png = read_image(h)
            if png is None:
                continue
            width, height = image_size(png)
            if in_files:
                with self._guard("restore an image"):
                    self._images.write(h, png)
            rows.append({"hash": h, "width": width, "height": height, "size_bytes": len(png),
                         "created_at": created_at, "data": None if in_files else png})
        insert_ignoring_duplicates(conn, S.images, rows)

    def close(self) -> None:
        """Release pooled connections (and stop a hub sync after a last push)."""
        self.engine.dispose()
        if self._gate is not None:
            self._gate.close()
        if self._sync is not None:
            self._sync.close()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Store({self.where!r})"

    # --- internals -----------------------------------------------------------------------------
    def store_image(self, image: Any) -> dict[str, Any]:
        """Decode `image` (path, bytes, file, PIL, numpy) and keep it once; return its images row (no data)."""
        from .. import images as intake

        img = intake.load_image(image)
        h = intake.content_hash(img)
        row: dict[str, Any] = {"hash": h, "width": img.width, "height": img.height, "created_at": S.utcnow()}
        if isinstance(self._images, ImageFiles):
            with self._guard("write an image"):
                if self._images.has(None, h):     # type: ignore[arg-type]
                    row["size_bytes"] = self._images.size(h)
                else:
                    png = intake.encode_png(img)
                    self._images.write(h, png)
                    row["size_bytes"] = len(png)
        else:
            row["_pixels"] = img          # PNG made in _insert, only if the table lacks this hash
        return row

    def _prepare(self, image: Any, model_output: str | None, corrected: str, *, model: str,
                 model_revision: str | None = None, task: str = "caption", question: str | None = None,
                 annotator: str | None = None, note: str | None = None, decoding: dict[str, Any] | None = None,
                 _seen: dict[int, Any] | None = None) -> dict[str, Any]:
        """Validate and clean one correction, keep its image; return the row to insert (not yet written)."""
        text = clean_text(corrected, "corrected", required=True)
        output = clean_text(model_output, "model_output") or ""
        task = clean_task(task)
        q = clean_text(question, "question")
        if task == "vqa" and q is None:
            raise InputError("a vqa correction needs the question")
        row: dict[str, Any] = {
            "id": str(uuid.uuid4()), "model": clean_text(model, "model", required=True, single_line=True),
            "model_revision": clean_text(model_revision, "model_revision", single_line=True),
            "task": task, "question": q, "decoding": clean_decoding(decoding),
            "model_output": output, "corrected": text,
            "annotator": clean_text(annotator, "annotator", single_line=True),
            "note": clean_text(note, "note"), "version": 1, "edit_rate": edit_rate(output, text),
        }
        if image is None:
            raise InputError("no image given")
        if _seen is not None and id(image) in _seen and _seen[id(image)][0] is image:
            image_row = _seen[id(image)][1]
        else:
            image_row = self.store_image(image)    # written before the row that names it commits
            if _seen is not None:
                _seen[id(image)] = (image, image_row)
        now = S.utcnow()
        return {**row, "created_at": now, "updated_at": now, "image_hash": image_row["hash"], "_image": image_row}

    def _insert(self, rows: list[dict[str, Any]]) -> None:
        """Write correction rows (each with its first version and its image row) in one transaction."""
        image_rows = list({r["_image"]["hash"]: r["_image"] for r in rows if r.get("_image")}.values())
        cols = {col.name for col in S.corrections.columns}
        with self._tx("save corrections", write=True) as conn:
            if image_rows:
                insert_ignoring_duplicates(conn, S.images, self._image_rows(conn, image_rows))
            conn.execute(insert(S.corrections), [{k: r.get(k) for k in cols} for r in rows])
            conn.execute(insert(S.correction_versions), [
                {"correction_id": r["id"], "version": r["version"], "corrected": r["corrected"],
                 "annotator": r["annotator"], "note": r["note"], "edit_rate": r["edit_rate"],
                 "created_at": r["updated_at"]} for r in rows])

    def _image_rows(self, conn: Connection, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """images rows to insert: files are already written; table stores get the PNG of each new hash."""
        columns = {col.name for col in S.images.columns}
        if isinstance(self._images, ImageFiles) or not any("_pixels" in r for r in rows):
            return [{"data": None, **{k: v for k, v in r.items() if k in columns}} for r in rows]
        from .. import images as intake

        present = set(conn.execute(select(S.images.c.hash)
                                   .where(S.images.c.hash.in_([r["hash"] for r in rows]))).scalars())
        out = []
        for r in rows:
            if r["hash"] in present:
                continue
            png = intake.encode_png(r["_pixels"])
            out.append({**{k: v for k, v in r.items() if k in columns}, "size_bytes": len(png), "data": png})
        return out

    def _push(self, id: str) -> None:
        """Hand the saved state to the hub sync; a sync failure never fails a save."""
        if self._sync is None:
            return
        try:
            c = self.get(id)
            png = None
            if getattr(self._sync, "needs_image", lambda h: False)(c.image_hash) and self.has_image(c.image_hash):
                png = self.image_bytes(c.image_hash)
            self._sync.append(c.to_dict(history=True), png)
        except Exception as e:  # noqa: BLE001 - the row is committed; the dataset push is best effort
            log.warning("hub sync: could not queue correction %s: %s", id, e)

    @staticmethod
    def _id(id: Any) -> str:
        if not isinstance(id, str) or not 0 < len(id) <= 36:
            raise InputError(f"not a correction id: {str(id)[:80]!r}")
        return id

    @staticmethod
    def _select() -> Any:
        c, i = S.corrections.c, S.images.c
        return (select(S.corrections, i.width, i.height)
                .select_from(S.corrections.outerjoin(S.images, i.hash == c.image_hash)))

    @staticmethod
    def _correction(row: Any, history: tuple[Version, ...] = ()) -> Correction:
        m = row._mapping
        return Correction(
            id=m["id"], created_at=m["created_at"], updated_at=m["updated_at"], image_hash=m["image_hash"],
            image_width=m["width"], image_height=m["height"], model=m["model"],
            model_revision=m["model_revision"], task=m["task"], question=m["question"], decoding=m["decoding"],
            model_output=m["model_output"], corrected=m["corrected"], annotator=m["annotator"], note=m["note"],
            version=m["version"], edit_rate=m["edit_rate"], deleted_at=m["deleted_at"],
            deleted_by=m["deleted_by"], history=history)

    @staticmethod
    def _filters(model: str | None, task: str | None, annotator: str | None, search: str | None,
                 since: datetime | None, image_hash: str | None, include_deleted: bool) -> list[Any]:
        c = S.corrections.c
        where: list[Any] = [] if include_deleted else [c.deleted_at.is_(None)]
        if model is not None:
            where.append(c.model == model)
        if task is not None:
            where.append(c.task == clean_task(task))
        if annotator is not None:
            where.append(c.annotator == annotator)
        if image_hash is not None:
            where.append(c.image_hash == check_hash(image_hash))
        if since is not None:
            where.append(c.created_at >= _utc(since, "since"))
        needle = clean_text(search, "question", single_line=True) if search is not None else None
        if needle:
            pattern = "%" + needle.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            where.append(or_(*(col.ilike(pattern, escape="\\")
                               for col in (c.corrected, c.model_output, c.question, c.note))))
        return where

    def _migrate(self) -> None:
        with self._tx("read the schema version") as conn:
            current = conn.execute(select(func.max(S.schema_version.c.version))).scalar() \
                if self.engine.dialect.has_table(conn, "schema_version") else 0
        if current == S.LATEST:
            return
        with self._tx("create or migrate the schema", write=True) as conn:
            S.lock_for_migration(conn)
            S.migrate(conn)

    @contextmanager
    def _tx(self, action: str, *, write: bool = False) -> Iterator[Connection]:
        """A transaction; on SQLite a writing one takes the write lock up front (BEGIN IMMEDIATE),
        so concurrent writers queue on busy_timeout instead of failing on a lock upgrade."""
        gate = self._gate.hold() if write and self._gate is not None else nullcontext()
        with self._guard(action), gate, self.engine.connect() as conn:
            if write:
                conn.execution_options(mmdemo_write=True)
            with conn.begin():
                yield conn

    @contextmanager
    def _guard(self, action: str) -> Iterator[None]:
        """Turn driver and file errors into one clear StoreError line."""
        try:
            yield
        except MmdemoError:
            raise
        except TimeoutError as e:   # the write gate (an OSError: before the OSError branch)
            raise StoreError(f"could not {action}: the corrections database {self.where} is locked by "
                             f"another process (waited {self.timeout_s:g} s)") from e
        except exc.DBAPIError as e:
            raise StoreError(self._explain(action, e)) from e
        except exc.SQLAlchemyError as e:
            raise StoreError(f"could not {action} in {self.where}: {e}") from e
        except OSError as e:
            raise StoreError(f"could not {action} in {self.where}: {e.strerror or e} "
                             f"({e.filename or ''})") from e

    def _explain(self, action: str, e: exc.DBAPIError) -> str:
        msg = str(e.orig).strip().splitlines()[0] if e.orig is not None else str(e)
        low = msg.lower()
        if "locked" in low or "busy" in low:
            return (f"could not {action}: the corrections database {self.where} is locked by another "
                    f"process (waited {self.timeout_s:g} s)")
        if "not a database" in low or "malformed" in low or "corrupt" in low:
            return (f"could not {action}: the corrections database {self.where} is corrupt or not a "
                    f"database ({msg}); move it aside to start a new one")
        if isinstance(e, exc.OperationalError) and self.engine.dialect.name == "postgresql" \
                and ("connect" in low or "connection" in low):
            return f"could not {action}: cannot reach PostgreSQL at {self.where} ({msg})"
        return f"could not {action} in {self.where}: {msg}"


# --- opening ----------------------------------------------------------------------------------
def _sqlite_engine(path: Path | None, timeout_s: float, synchronous: str) -> Engine:
    if path is None:    # in memory: one connection shared by every thread
        engine = create_engine("sqlite://", poolclass=StaticPool, connect_args={"check_same_thread": False})
    else:
        engine = create_engine(f"sqlite:///{path}", pool_size=8, max_overflow=8,
                               connect_args={"timeout": timeout_s, "check_same_thread": False})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None           # the driver begins nothing; _on_begin does
        cur = dbapi_conn.cursor()
        cur.execute(f"PRAGMA busy_timeout = {int(timeout_s * 1000)}")
        if path is not None:
            cur.execute("PRAGMA journal_mode = WAL")
        cur.execute(f"PRAGMA synchronous = {synchronous}")
        cur.execute("PRAGMA foreign_keys = ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get("mmdemo_write") else "BEGIN")

    return engine


def _postgres_url(url: str) -> str:
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def open_store(url: str | None = None, *, timeout_s: float = 10.0, synchronous: str = "NORMAL",
               sync: Any | None = "env") -> Store:
    """Open (and create or migrate) the corrections store.

    `url`: None → MMDEMO_DATABASE_URL, else SQLite at MMDEMO_DATA_DIR/corrections.db (WAL mode).
    Accepts `sqlite:///path.db`, `sqlite://` (memory), a plain file path, and `postgresql://…`
    (driven by psycopg 3). `timeout_s`: how long to wait for a lock or a connection.
    `synchronous`: SQLite's fsync policy. NORMAL (WAL): every id returned survives a crash or
    SIGKILL of any process, and the file is never corrupted; a power cut may roll back the last
    commits. FULL also keeps those through a power cut, at one fsync per save.
    `sync`: "env" → the dataset mirror MMDEMO_HUB_DATASET asks for (a repo id with HF_TOKEN, or a local folder; see
    hub_sync), which also restores an empty store on opening; None → off.
    """
    if synchronous.upper() not in ("NORMAL", "FULL", "EXTRA"):
        raise InputError(f"synchronous must be NORMAL, FULL or EXTRA, not {synchronous!r}")
    cfg = settings()
    url = url or cfg.database_url
    if not url:
        url = str(cfg.data_dir / "corrections.db")
    if "://" not in url:                       # a plain path
        url = "sqlite:///" + url
    url = _postgres_url(url)
    try:
        parsed = make_url(url)
    except exc.ArgumentError as e:
        raise InputError(f"not a database URL: {e}") from None
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        db = parsed.database
        path = None if db in (None, "", ":memory:") else Path(db)
        if path is not None:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise StoreError(f"cannot create the data folder {path.parent}: {e.strerror or e}") from None
            if path.is_dir():
                raise StoreError(f"the corrections database {path} is a folder")
        engine = _sqlite_engine(path, timeout_s, synchronous.upper())
        images = ImageFiles(path.parent / "images") if path is not None else ImageTable()
        where = str(path) if path is not None else "sqlite (memory)"
        gate = WriteGate(path.with_name(path.name + ".lock"), timeout_s) if path is not None else None
    elif backend == "postgresql":
        try:
            engine = create_engine(parsed, pool_pre_ping=True, pool_size=5, max_overflow=10,
                                   pool_timeout=timeout_s, connect_args={"connect_timeout": max(1, int(timeout_s))})
        except ImportError as e:
            raise StoreError(f"PostgreSQL needs the psycopg driver (pip install 'psycopg[binary]'): {e}") from None
        images = ImageTable()
        where = parsed.render_as_string(hide_password=True)
        gate = None
    else:
        raise InputError(f"unsupported database {backend!r}: use sqlite:///PATH or postgresql://…")
    if sync == "env":
        from .hub_sync import HubSync
        sync = HubSync.from_env(cfg.data_dir)
    try:
        store = Store(engine, images, where, sync=sync, timeout_s=timeout_s, gate=gate)
    except BaseException:
        engine.dispose()
        raise
    if sync is not None and hasattr(sync, "restore"):
        try:
            sync.restore(store)         # only an empty store; rows, versions and images from the dataset's shards
        except StoreError:
            store.close()
            raise
        except Exception as e:  # noqa: BLE001 - a bad mirror must not keep the app from starting
            log.warning("could not restore corrections from the dataset: %s", e)
    return store
