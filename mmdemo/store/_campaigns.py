"""Correction campaigns in the store: tasks, one queue shared by many annotators, submissions, review, status.

A campaign holds one task per image (× question, for vqa). `next_task` leases the first task of the
queue that is not done, not leased, and not already submitted or skipped by this annotator; the lease
lasts MMDEMO_LEASE_SECONDS. A task is done when `overlap` distinct annotators have submitted it. Every
submission is also a correction (corrections table, with its versions), so exports and history keep working.

Concurrency: every queue change is one write transaction. SQLite takes the write lock up front
(BEGIN IMMEDIATE, behind the store's write gate), so leases are handed out one at a time across
processes; PostgreSQL picks the task with `SELECT … FOR UPDATE SKIP LOCKED`, so replicas lease
different tasks without waiting for each other.
"""
from __future__ import annotations

import hashlib
import logging
import math
import os
import random
import uuid
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from statistics import fmean, median
from typing import Any, Callable, Iterable

from sqlalchemy import bindparam, delete, exists, func, insert, or_, select, update
from sqlalchemy.engine import Connection

from ..config import settings
from ..errors import InputError, StoreError
from . import _campaign_mirror as mirror
from . import _schema as S
from ._text import TASKS, clean_decoding, clean_text, edit_rate

log = logging.getLogger(__name__)

ORDERS = ("uncertainty", "random", "imported")
ACTIONS = ("approve", "reject", "edit", "restore")
TASK_FIELDS = {"image", "image_path", "model_output", "question", "token_probs", "tokens", "decoding"}
MAX_TOKENS = 4_096
_BATCH = 500


@dataclass(frozen=True)
class Campaign:
    id: int
    name: str
    created_at: datetime
    model: str
    model_revision: str | None
    task: str                       # "caption" | "vqa"
    questions: tuple[str, ...]      # vqa: asked of every image
    overlap: int                    # distinct annotators per task
    order: str                      # "uncertainty" | "random" | "imported"
    review: bool
    instructions: str
    seed: int

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["questions"] = list(self.questions)
        out["created_at"] = _iso(self.created_at)
        return out


@dataclass(frozen=True)
class Task:
    id: int
    campaign: str
    image_hash: str                         # store.image_bytes(image_hash) gives the PNG
    image_path: str | None                  # where the image came from
    model_output: str
    question: str | None
    tokens: tuple[str, ...] | None          # the model's tokens, when known
    token_probs: tuple[float, ...] | None   # their probabilities
    confidence: float | None                # mean token probability
    lease_until: datetime | None            # this annotator's lease ends then (None: not leased to them)
    corrected: str | None = None            # this annotator's text, when back reopens a submitted task
    correction_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["tokens"] = None if self.tokens is None else list(self.tokens)
        out["token_probs"] = None if self.token_probs is None else list(self.token_probs)
        out["lease_until"] = _iso(self.lease_until)
        return out


def _iso(t: datetime | None) -> str | None:
    return None if t is None else t.isoformat().replace("+00:00", "Z")


def _annotator(value: Any) -> str:
    return clean_text(value, "annotator", required=True, single_line=True)  # type: ignore[return-value]


def _task_id(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise InputError(f"not a task id: {str(value)[:80]!r}")
    try:
        n = int(value)
    except ValueError:
        raise InputError(f"not a task id: {str(value)[:80]!r}") from None
    if n < 1 or (isinstance(value, float) and n != value):
        raise InputError(f"not a task id: {value!r}")
    return n


def _probs(value: Any, field: str = "token_probs") -> tuple[float, ...] | None:
    if value is None:
        return None
    try:
        out = tuple(float(p) for p in value)
    except (TypeError, ValueError):
        raise InputError(f"{field} must be a list of numbers") from None
    if len(out) > MAX_TOKENS:
        raise InputError(f"{field} has {len(out):,} entries, the limit is {MAX_TOKENS:,}")
    if not all(math.isfinite(p) and -1e-6 <= p <= 1.0 + 1e-6 for p in out):
        raise InputError(f"{field} must be probabilities between 0 and 1")
    return tuple(min(max(p, 0.0), 1.0) for p in out) or None    # float32 rounding may step just past 1


def _tokens(value: Any) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, str) or not all(isinstance(t, str) for t in value):
        raise InputError("tokens must be a list of strings")
    out = tuple(value)
    if len(out) > MAX_TOKENS:
        raise InputError(f"tokens has {len(out):,} entries, the limit is {MAX_TOKENS:,}")
    return out or None


def _key(image_hash: str, question: str | None) -> str:
    return hashlib.sha256(f"{image_hash}\0{question or ''}".encode()).hexdigest()


class CampaignsMixin:
    """The campaign half of Store (it uses the store's transactions, images and corrections)."""

    # --- campaigns ---------------------------------------------------------------------------
    def create_campaign(self, name: str, *, model: str, model_revision: str | None = None, task: str = "caption",
                        questions: Iterable[str] = (), overlap: int = 1, order: str = "imported",
                        review: bool = False, instructions: str = "", seed: int = 0) -> Campaign:
        """A new, empty campaign (add its tasks with add_tasks). InputError when the name is taken."""
        title = clean_text(name, "campaign", required=True, single_line=True)
        if task not in TASKS:
            raise InputError(f"task must be one of {', '.join(TASKS)}, not {task!r}")
        if isinstance(questions, str):
            questions = [questions]
        qs = [clean_text(q, "question", required=True, single_line=True) for q in questions]
        qs = list(dict.fromkeys(qs))
        if task == "vqa" and not qs:
            raise InputError("a vqa campaign needs at least one question")
        if task == "caption" and qs:
            raise InputError("questions are for vqa campaigns; this one is a caption campaign")
        if isinstance(overlap, bool) or not isinstance(overlap, int) or not 1 <= overlap <= 100:
            raise InputError(f"overlap must be a whole number from 1 to 100, not {overlap!r}")
        if order not in ORDERS:
            raise InputError(f"order must be one of {', '.join(ORDERS)}, not {order!r}")
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise InputError(f"seed must be a whole number, not {seed!r}")
        row = {"name": title, "created_at": S.utcnow(),
               "model": clean_text(model, "model", required=True, single_line=True),
               "model_revision": clean_text(model_revision, "model_revision", single_line=True),
               "task": task, "questions": qs or None, "overlap": overlap, "order": order,
               "review": int(bool(review)), "instructions": clean_text(instructions, "instructions") or "",
               "seed": seed}
        c = S.campaigns.c
        with self._tx("create a campaign", write=True) as conn:  # type: ignore[attr-defined]
            if conn.execute(select(c.id).where(c.name == title)).first() is not None:
                raise InputError(f"a campaign named {title!r} already exists")
            new = conn.execute(insert(S.campaigns).values(**row)).inserted_primary_key[0]
            records = self._mirrored(mirror.campaign_record, conn, new)
        self._mirror(records)
        return self.get_campaign(title)

    def get_campaign(self, name: str) -> Campaign:

        with self._tx("read a campaign") as conn:  # type: ignore[attr-defined]
            row = conn.execute(select(S.campaigns).where(S.campaigns.c.name == name)).first()
        if row is None:
            raise S.NotFoundError(f"no campaign named {name!r}")
        return _campaign(row)

    def list_campaigns(self) -> list[Campaign]:
        with self._tx("list campaigns") as conn:  # type: ignore[attr-defined]
            return [_campaign(r) for r in conn.execute(select(S.campaigns).order_by(S.campaigns.c.id))]

    def set_model_revision(self, name: str, revision: str | None) -> None:
        """Record the revision of the campaign's model (filled in when pre-annotation first loads it)."""
        rev = clean_text(revision, "model_revision", single_line=True)
        with self._tx("update a campaign", write=True) as conn:  # type: ignore[attr-defined]
            cid = self._campaign_id(conn, name)
            conn.execute(update(S.campaigns).where(S.campaigns.c.id == cid).values(model_revision=rev))
            records = self._mirrored(mirror.campaign_record, conn, cid)
        self._mirror(records)

    def campaign_keys(self, name: str) -> set[str]:
        """The keys (image hash × question) of the tasks a campaign already has: what a refill skips."""
        camp = self.get_campaign(name)
        t = S.campaign_tasks.c
        with self._tx("read campaign tasks") as conn:  # type: ignore[attr-defined]
            return set(conn.execute(select(t.key).where(t.campaign_id == camp.id)).scalars())

    def add_tasks(self, name: str, items: Iterable[dict[str, Any]]) -> int:
        """Add tasks; each item {"image": PIL|path|bytes, "image_path", "model_output", "question",
        "token_probs"} (and optional "tokens", "decoding"). Images are kept once by content hash; an item whose
        image (and question) the campaign already has is skipped. Returns how many tasks were added."""
        camp = self.get_campaign(name)
        added = 0
        batch: list[dict[str, Any]] = []
        seen: set[str] = set()
        for item in items:
            row = self._task_row(camp, item)
            if row["key"] in seen:
                continue
            seen.add(row["key"])
            batch.append(row)
            if len(batch) >= _BATCH:
                added += self._insert_tasks(camp, batch)
                batch = []
        if batch:
            added += self._insert_tasks(camp, batch)
        return added

    def _task_row(self, camp: Campaign, item: dict[str, Any]) -> dict[str, Any]:
        if not isinstance(item, dict):
            raise InputError(f"a task must be a dict, not {type(item).__name__}")
        unknown = set(item) - TASK_FIELDS
        if unknown:
            raise InputError(f"add_tasks: unknown field(s) {', '.join(sorted(unknown))}")
        image = item.get("image")
        if image is None:
            raise InputError("add_tasks: an item has no image")
        question = clean_text(item.get("question"), "question", single_line=True)
        if camp.task == "vqa" and question is None:
            raise InputError("add_tasks: a vqa task needs its question")
        probs = _probs(item.get("token_probs"))
        path = item.get("image_path")
        if path is None and isinstance(image, (str, os.PathLike)):
            path = os.fspath(image)
        image_row = self.store_image(image)  # type: ignore[attr-defined]
        return {"key": _key(image_row["hash"], question), "image_hash": image_row["hash"], "_image": image_row,
                "image_path": None if path is None else str(path)[:4_000], "question": question,
                "model_output": clean_text(item.get("model_output"), "model_output") or "",
                "tokens": _tokens(item.get("tokens")), "token_probs": probs,
                "decoding": clean_decoding(item.get("decoding")),
                "confidence": fmean(probs) if probs else None}

    def _insert_tasks(self, camp: Campaign, rows: list[dict[str, Any]]) -> int:
        t = S.campaign_tasks.c

        with self._tx("add campaign tasks", write=True) as conn:  # type: ignore[attr-defined]
            present = set(conn.execute(select(t.key).where(t.campaign_id == camp.id,
                                                           t.key.in_([r["key"] for r in rows]))).scalars())
            fresh = [r for r in rows if r["key"] not in present]
            if not fresh:
                return 0
            images = list({r["_image"]["hash"]: r["_image"] for r in fresh}.values())
            S.insert_ignoring_duplicates(conn, S.images, self._image_rows(conn, images))  # type: ignore[attr-defined]
            last = conn.execute(select(func.count()).where(t.campaign_id == camp.id)).scalar_one()
            now = S.utcnow()
            out = []
            for n, r in enumerate(fresh):
                if camp.order == "imported":
                    position = float(last + n)
                elif camp.order == "random":
                    position = random.Random(f"{camp.seed}:{r['key']}").random()
                else:       # uncertainty: least confident first; unknown confidence last
                    position = r["confidence"] if r["confidence"] is not None else 2.0
                out.append({"campaign_id": camp.id, "key": r["key"], "image_hash": r["image_hash"],
                            "image_path": r["image_path"], "question": r["question"],
                            "model_output": r["model_output"],
                            "tokens": None if r["tokens"] is None else list(r["tokens"]),
                            "token_probs": None if r["token_probs"] is None else list(r["token_probs"]),
                            "decoding": r["decoding"],
                            "confidence": r["confidence"], "position": position, "created_at": now,
                            "submissions": 0, "done": 0})
            conn.execute(insert(S.campaign_tasks), out)
            records = [] if self._sync is None else mirror.task_records(  # type: ignore[attr-defined]
                conn, camp.name, conn.execute(select(t.id).where(t.campaign_id == camp.id,
                                                                 t.key.in_([r["key"] for r in out]))).scalars())
        self._mirror(records, [r["image_hash"] for r in out])
        return len(out)

    # --- the queue ---------------------------------------------------------------------------
    def next_task(self, campaign: str, annotator: str) -> Task | None:
        """Lease the next task to `annotator` (their live lease again, if they hold one); None when the
        queue has nothing left for them (every task done, leased to others, or already theirs)."""
        who = _annotator(annotator)
        t, s, k = S.campaign_tasks.c, S.campaign_submissions.c, S.campaign_skips.c
        now = S.utcnow()
        until = now + timedelta(seconds=max(1, settings().lease_seconds))
        with self._tx("lease a task", write=True) as conn:  # type: ignore[attr-defined]
            cid = self._campaign_id(conn, campaign)
            mine = conn.execute(select(t.id, t.lease_started).where(
                t.campaign_id == cid, t.lease_annotator == who, t.lease_until > now, t.done == 0)
                .order_by(t.lease_started.desc()).limit(1)).first()
            if mine is not None:
                task_id, started = mine.id, mine.lease_started
            else:
                q = (select(t.id).where(
                        t.campaign_id == cid, t.done == 0, or_(t.lease_until.is_(None), t.lease_until <= now),
                        ~exists().where(s.task_id == t.id, s.annotator == who),
                        ~exists().where(k.task_id == t.id, k.annotator == who))
                     .order_by(t.position, t.id).limit(1))
                if conn.dialect.name == "postgresql":
                    q = q.with_for_update(skip_locked=True, of=S.campaign_tasks)
                task_id, started = conn.execute(q).scalar(), now
                if task_id is None:
                    return None
            conn.execute(update(S.campaign_tasks).where(t.id == task_id)
                         .values(lease_annotator=who, lease_started=started, lease_until=until))
            row = conn.execute(select(S.campaign_tasks).where(t.id == task_id)).one()
        return _task(row, campaign, until)

    def submit_task(self, task_id: int, corrected: str, annotator: str, *, note: str | None = None) -> str:
        """Save `annotator`'s text for the task (a correction, linked to the campaign); return the correction id.

        Submitting a task again (after back) adds a version to the same correction. Refused when the
        task is done or leased to someone else.
        """

        tid, who = _task_id(task_id), _annotator(annotator)
        text = clean_text(corrected, "corrected", required=True)
        note = clean_text(note, "note")
        t, s, c = S.campaign_tasks.c, S.campaign_submissions.c, S.campaigns.c
        now = S.utcnow()
        with self._tx("submit a task", write=True) as conn:  # type: ignore[attr-defined]
            q = (select(S.campaign_tasks, c.name, c.model, c.model_revision, c.task.label("kind"), c.overlap)
                 .join(S.campaigns, c.id == t.campaign_id).where(t.id == tid))
            if conn.dialect.name == "postgresql":
                q = q.with_for_update(of=S.campaign_tasks)
            task = conn.execute(q).first()
            if task is None:
                raise S.NotFoundError(f"no campaign task {tid}")
            again = conn.execute(select(s.correction_id).where(s.task_id == tid, s.annotator == who)).scalar()
            if again is None:
                if task.done:
                    raise InputError(f"task {tid} is already done: {task.overlap} annotator(s) submitted it")
                if task.lease_annotator not in (None, who) and task.lease_until is not None \
                        and task.lease_until > now:
                    raise InputError(f"task {tid} is leased to another annotator; ask next_task for yours")
                cid = str(uuid.uuid4())
                rate = edit_rate(task.model_output, text)
                conn.execute(insert(S.corrections).values(
                    id=cid, created_at=now, updated_at=now, image_hash=task.image_hash, model=task.model,
                    model_revision=task.model_revision, task=task.kind, question=task.question,
                    decoding=task.decoding,
                    model_output=task.model_output, corrected=text, annotator=who, note=note, version=1,
                    edit_rate=rate))
                conn.execute(insert(S.correction_versions).values(
                    correction_id=cid, version=1, corrected=text, annotator=who, note=note, edit_rate=rate,
                    created_at=now))
                started = task.lease_started if task.lease_annotator == who else None
                submission = conn.execute(insert(S.campaign_submissions).values(
                    task_id=tid, campaign_id=task.campaign_id, annotator=who, correction_id=cid,
                    started_at=started, submitted_at=now, status="submitted"))
                unskipped = conn.execute(delete(S.campaign_skips).where(S.campaign_skips.c.task_id == tid,
                                                                        S.campaign_skips.c.annotator == who)).rowcount
                n = task.submissions + 1
                conn.execute(update(S.campaign_tasks).where(t.id == tid).values(
                    submissions=n, done=int(n >= task.overlap), lease_annotator=None, lease_started=None,
                    lease_until=None))
                records = self._mirrored(mirror.submission_record, conn, submission.inserted_primary_key[0])
                if unskipped:
                    records += self._mirrored(mirror.skip_record, conn, tid, who)
            elif task.lease_annotator == who:
                conn.execute(update(S.campaign_tasks).where(t.id == tid)
                             .values(lease_annotator=None, lease_started=None, lease_until=None))
        if again is not None:
            self.update(again, text, who, note=note)  # type: ignore[attr-defined]
            return again
        self._push(cid)  # type: ignore[attr-defined]
        self._mirror(records)
        return cid

    def skip_task(self, task_id: int, annotator: str) -> None:
        """Give the task back to the queue; it is not offered to this annotator again (back reopens it)."""

        tid, who = _task_id(task_id), _annotator(annotator)
        t = S.campaign_tasks.c
        with self._tx("skip a task", write=True) as conn:  # type: ignore[attr-defined]
            campaign_id = conn.execute(select(t.campaign_id).where(t.id == tid)).scalar()
            if campaign_id is None:
                raise S.NotFoundError(f"no campaign task {tid}")
            S.insert_ignoring_duplicates(conn, S.campaign_skips, [
                {"task_id": tid, "annotator": who, "campaign_id": campaign_id, "skipped_at": S.utcnow()}])
            conn.execute(update(S.campaign_tasks).where(t.id == tid, t.lease_annotator == who)
                         .values(lease_annotator=None, lease_started=None, lease_until=None))
            records = self._mirrored(mirror.skip_record, conn, tid, who)
        self._mirror(records)

    def previous_task(self, campaign: str, annotator: str, before: int | None = None) -> Task | None:
        """Back: the task this annotator submitted or skipped just before task `before` (None: their latest).

        A submitted task comes with their text (`corrected`); submitting it again adds a version. A
        skipped task is reopened and leased to them when nobody else holds it. Their other leases in
        the campaign return to the queue. None when there is nothing earlier.
        """
        who = _annotator(annotator)
        t, s, k = S.campaign_tasks.c, S.campaign_submissions.c, S.campaign_skips.c
        now = S.utcnow()
        until = now + timedelta(seconds=max(1, settings().lease_seconds))
        with self._tx("go back a task", write=True) as conn:  # type: ignore[attr-defined]
            cid = self._campaign_id(conn, campaign)
            sub_q = select(s.task_id, s.submitted_at.label("at"), s.correction_id).where(
                s.campaign_id == cid, s.annotator == who)
            skip_q = select(k.task_id, k.skipped_at.label("at")).where(k.campaign_id == cid, k.annotator == who)
            if before is not None:
                bid = _task_id(before)
                times = [conn.execute(select(s.submitted_at).where(s.task_id == bid, s.annotator == who)).scalar(),
                         conn.execute(select(k.skipped_at).where(k.task_id == bid, k.annotator == who)).scalar()]
                if any(times):
                    cutoff = min(x for x in times if x is not None)
                    sub_q = sub_q.where(s.submitted_at < cutoff, s.task_id != bid)
                    skip_q = skip_q.where(k.skipped_at < cutoff, k.task_id != bid)
            sub = conn.execute(sub_q.order_by(s.submitted_at.desc()).limit(1)).first()
            skip = conn.execute(skip_q.order_by(k.skipped_at.desc()).limit(1)).first()
            if sub is None and skip is None:
                return None
            conn.execute(update(S.campaign_tasks).where(t.campaign_id == cid, t.lease_annotator == who)
                         .values(lease_annotator=None, lease_started=None, lease_until=None))
            lease = None
            if sub is not None and (skip is None or sub.at >= skip.at):
                tid, correction_id = sub.task_id, sub.correction_id
                corrected = conn.execute(select(S.corrections.c.corrected)
                                         .where(S.corrections.c.id == correction_id)).scalar()
            else:
                tid, correction_id, corrected = skip.task_id, None, None
                taken = conn.execute(update(S.campaign_tasks).where(
                    t.id == tid, t.done == 0, or_(t.lease_until.is_(None), t.lease_until <= now))
                    .values(lease_annotator=who, lease_started=now, lease_until=until)).rowcount
                lease = until if taken else None
            row = conn.execute(select(S.campaign_tasks).where(t.id == tid)).one()
        task = _task(row, campaign, lease)
        return Task(**{**task.__dict__, "corrected": corrected, "correction_id": correction_id})

    def task(self, task_id: int) -> Task:
        """One task, as stored (no lease information)."""

        t, c = S.campaign_tasks.c, S.campaigns.c
        with self._tx("read a task") as conn:  # type: ignore[attr-defined]
            row = conn.execute(select(S.campaign_tasks, c.name.label("campaign_name"))
                               .join(S.campaigns, c.id == t.campaign_id).where(t.id == _task_id(task_id))).first()
        if row is None:
            raise S.NotFoundError(f"no campaign task {task_id}")
        return _task(row, row.campaign_name, None)

    # --- review ------------------------------------------------------------------------------
    def review_task(self, correction_id: str, action: str, reviewer: str, *, corrected: str | None = None,
                    version: int | None = None, note: str | None = None) -> dict[str, Any]:
        """Review one submission: "approve", "reject", "edit" (new text by the reviewer, approved) or
        "restore" (an earlier version's text becomes the latest; nothing is lost). Returns the submission."""

        if action not in ACTIONS:
            raise InputError(f"action must be one of {', '.join(ACTIONS)}, not {action!r}")
        who = _annotator(reviewer)
        s = S.campaign_submissions.c
        with self._tx("read a submission") as conn:  # type: ignore[attr-defined]
            found = conn.execute(select(s.id).where(s.correction_id == correction_id)).scalar()
        if found is None:
            raise S.NotFoundError(f"no campaign submission with correction id {correction_id}")
        if action == "edit":
            if corrected is None:
                raise InputError("an edit needs the corrected text")
            self.update(correction_id, corrected, who, note=note)  # type: ignore[attr-defined]
        elif action == "restore":
            self.restore_version(correction_id, version, who)  # type: ignore[arg-type]
        status = {"approve": "approved", "reject": "rejected", "edit": "approved"}.get(action)
        if status is not None:
            with self._tx("review a submission", write=True) as conn:  # type: ignore[attr-defined]
                conn.execute(update(S.campaign_submissions).where(s.id == found)
                             .values(status=status, reviewer=who, reviewed_at=S.utcnow()))
                records = self._mirrored(mirror.submission_record, conn, found)
            self._mirror(records)
        return self.submission(correction_id)

    def restore_version(self, correction_id: str, version: int, annotator: str | None = None) -> Any:
        """Make an earlier version's text the latest (as a new version); return the correction."""
        if isinstance(version, bool) or not isinstance(version, int):
            raise InputError(f"version must be a whole number, not {version!r}")
        current = self.get(correction_id)  # type: ignore[attr-defined]
        old = next((v for v in current.history if v.version == version), None)
        if old is None:
            raise InputError(f"correction {correction_id} has no version {version} "
                             f"(it has 1 to {current.version})")
        return self.update(correction_id, old.corrected, annotator)  # type: ignore[attr-defined]

    def submission(self, correction_id: str) -> dict[str, Any]:
        """A campaign submission with its correction and every version."""

        s, c = S.campaign_submissions.c, S.campaigns.c
        with self._tx("read a submission") as conn:  # type: ignore[attr-defined]
            row = conn.execute(select(S.campaign_submissions, c.name).join(S.campaigns, c.id == s.campaign_id)
                               .where(s.correction_id == correction_id)).first()
        if row is None:
            raise S.NotFoundError(f"no campaign submission with correction id {correction_id}")
        corr = self.get(correction_id)  # type: ignore[attr-defined]
        return {"campaign": row.name, "task_id": row.task_id, "annotator": row.annotator,
                "correction_id": correction_id, "status": row.status, "reviewer": row.reviewer,
                "reviewed_at": _iso(row.reviewed_at), "submitted_at": _iso(row.submitted_at),
                "model_output": corr.model_output, "corrected": corr.corrected, "version": corr.version,
                "history": [{"version": v.version, "corrected": v.corrected, "annotator": v.annotator,
                             "created_at": _iso(v.created_at)} for v in corr.history]}

    def review_queue(self, campaign: str, *, status: str = "submitted", limit: int = 50) -> list[dict[str, Any]]:
        """Tasks with submissions in `status`, the ones annotators disagree on most first.

        Each: {"task_id", "image_hash", "image_path", "question", "model_output", "word_similarity",
        "submissions": [{"correction_id", "annotator", "corrected", "status", "version"}]}.
        """
        from .agreement import agreement

        rows = self._submission_rows(campaign)
        by_task: dict[int, list[Any]] = {}
        for r in rows:
            by_task.setdefault(r.task_id, []).append(r)
        waiting = {tid: subs for tid, subs in by_task.items() if any(r.status == status for r in subs)}
        scores = agreement({tid: {r.annotator: r.corrected for r in subs} for tid, subs in waiting.items()})["items"]
        order = sorted(waiting, key=lambda tid: (scores[tid]["word_similarity"] if tid in scores else 2.0, tid))
        out = []
        for tid in order[:limit]:
            first = waiting[tid][0]
            out.append({"task_id": tid, "image_hash": first.image_hash, "image_path": first.image_path,
                        "question": first.question, "model_output": first.model_output,
                        "word_similarity": scores[tid]["word_similarity"] if tid in scores else None,
                        "submissions": [{"correction_id": r.correction_id, "annotator": r.annotator,
                                         "corrected": r.corrected, "status": r.status, "version": r.version}
                                        for r in waiting[tid]]})
        return out

    # --- status ------------------------------------------------------------------------------
    def campaign_status(self, campaign: str) -> dict[str, Any]:
        """{"name", "images", "tasks_done", "images_done", "leased", "pending",
        "agreement": {"word_similarity", "chrf"}, "annotators": [{"annotator", "tasks_done",
        "median_seconds", "mean_edit_rate", "agreement"}]} — agreement over submissions not rejected."""
        counts = self.campaign_counts(campaign)
        rows = [r for r in self._submission_rows(campaign) if r.status != "rejected"]
        texts: dict[int, dict[str, str]] = {}
        for r in rows:
            texts.setdefault(r.task_id, {})[r.annotator] = r.corrected
        agree = self._agreement(campaign, texts)
        people: dict[str, list[Any]] = {}
        for r in rows:
            people.setdefault(r.annotator, []).append(r)
        annotators = []
        for name in sorted(people):
            mine = people[name]
            seconds = [(r.submitted_at - r.started_at).total_seconds() for r in mine if r.started_at is not None]
            annotators.append({"annotator": name, "tasks_done": len(mine),
                               "median_seconds": median(seconds) if seconds else None,
                               "mean_edit_rate": fmean(r.edit_rate for r in mine),
                               "agreement": agree["annotators"].get(name)})
        return {"name": campaign, "images": counts["images"], "tasks_done": counts["tasks_done"],
                "images_done": counts["images_done"], "leased": counts["leased"], "pending": counts["pending"],
                "agreement": {"word_similarity": agree["word_similarity"], "chrf": agree["chrf"]},
                "annotators": annotators}

    def _agreement(self, campaign: str, texts: dict[int, dict[str, str]]) -> dict[str, Any]:
        """agreement.agreement over the tasks' texts, reusing each task's stored chrF while its texts are
        unchanged and storing the ones computed now (a failed store only costs the next call the time)."""
        from .agreement import agreement, texts_key

        t = S.campaign_tasks.c
        keys = {tid: texts_key(by) for tid, by in texts.items() if len(by) >= 2}
        with self._tx("read stored agreement") as conn:  # type: ignore[attr-defined]
            cid = self._campaign_id(conn, campaign)
            stored = conn.execute(select(t.id, t.chrf, t.chrf_key)
                                  .where(t.campaign_id == cid, t.chrf_key.is_not(None))).all()
        known = {tid: value for tid, value, key in stored if keys.get(tid) == key}
        agree = agreement(texts, known)
        fresh = [{"_id": tid, "_chrf": agree["items"][tid]["chrf"], "_key": key}
                 for tid, key in keys.items() if tid not in known]
        if fresh:
            try:
                with self._tx("store agreement", write=True) as conn:  # type: ignore[attr-defined]
                    conn.execute(update(S.campaign_tasks).where(t.id == bindparam("_id"))
                                 .values(chrf=bindparam("_chrf"), chrf_key=bindparam("_key")), fresh)
            except StoreError as e:
                log.warning("could not remember agreement of campaign %s: %s", campaign, e)
        return agree

    def campaign_counts(self, campaign: str) -> dict[str, int]:
        """Progress only (index scans, no texts): {"images", "tasks", "tasks_done", "images_done", "leased",
        "pending"}; leased counts live leases, pending the tasks waiting for an annotator."""
        t, c = S.campaign_tasks.c, S.campaigns.c
        now = S.utcnow()
        with self._tx("read campaign progress") as conn:  # type: ignore[attr-defined]
            cid = self._campaign_id(conn, campaign)
            kind = conn.execute(select(c.task).where(c.id == cid)).scalar_one()
            tasks = conn.execute(select(func.count()).where(t.campaign_id == cid)).scalar_one()
            done = conn.execute(select(func.count()).where(t.campaign_id == cid, t.done == 1)).scalar_one()
            leased = conn.execute(select(func.count()).where(t.campaign_id == cid, t.done == 0,
                                                             t.lease_until > now)).scalar_one()
            if kind == "caption":           # one task per image
                images, images_done = tasks, done
            else:
                images = conn.execute(select(func.count(t.image_hash.distinct()))
                                      .where(t.campaign_id == cid)).scalar_one()
                per_image = (select(t.image_hash).where(t.campaign_id == cid).group_by(t.image_hash)
                             .having(func.min(t.done) == 1).subquery())
                images_done = conn.execute(select(func.count()).select_from(per_image)).scalar_one()
        return {"images": images, "tasks": tasks, "tasks_done": done, "images_done": images_done,
                "leased": leased, "pending": tasks - done - leased}

    def campaign_submissions(self, campaign: str) -> list[dict[str, Any]]:
        """Every submission of the campaign, oldest first, with its correction's current text (for exports)."""
        return [dict(r._mapping) for r in self._submission_rows(campaign)]

    def _submission_rows(self, campaign: str) -> list[Any]:
        s, t, c = S.campaign_submissions.c, S.campaign_tasks.c, S.corrections.c
        with self._tx("read campaign submissions") as conn:  # type: ignore[attr-defined]
            cid = self._campaign_id(conn, campaign)
            return conn.execute(
                select(s.task_id, s.annotator, s.correction_id, s.started_at, s.submitted_at, s.status,
                       s.reviewer, s.reviewed_at, t.image_hash, t.image_path, t.question, t.model_output,
                       c.corrected, c.edit_rate, c.version)
                .join(S.campaign_tasks, t.id == s.task_id).join(S.corrections, c.id == s.correction_id)
                .where(s.campaign_id == cid).order_by(s.submitted_at, s.id)).all()

    # --- the dataset mirror (hub_sync) -------------------------------------------------------
    def _mirrored(self, record, conn: Connection, *args: Any) -> list[dict[str, Any]]:
        """[record(conn, *args)] when a mirror is on (read inside the writing transaction), else []."""
        return [] if self._sync is None else [record(conn, *args)]  # type: ignore[attr-defined]

    def _mirror(self, records: list[dict[str, Any]], image_hashes: Iterable[str] = ()) -> None:
        """Hand committed campaign rows (and images the mirror lacks) to the hub sync; never fails the write."""
        sync = self._sync  # type: ignore[attr-defined]
        if sync is None or not records:
            return
        try:
            images = {h: self.image_bytes(h) for h in set(image_hashes)  # type: ignore[attr-defined]
                      if sync.needs_image(h) and self.has_image(h)}  # type: ignore[attr-defined]
            sync.append_campaign(records, images)
        except Exception as e:  # noqa: BLE001 - the rows are committed; the dataset push is best effort
            log.warning("hub sync: could not queue %d campaign record(s): %s", len(records), e)

    def restore_campaigns(self, records: Iterable[dict[str, Any]],
                          read_image: Callable[[str], bytes | None]) -> int:
        """Insert mirrored campaign `records` (see _campaign_mirror) the store does not have; return how many
        campaigns came back. Their submissions link to corrections, so restore those first (restore_mirror)."""
        def store_images(conn: Connection, hashes: list[tuple[str, datetime]]) -> None:
            self._restore_images(conn, hashes, read_image)  # type: ignore[attr-defined]

        latest: dict[tuple, dict[str, Any]] = {}
        for r in records:
            key = mirror.identity(r)
            if key is not None:
                latest[key] = r
        with self._tx("restore campaigns", write=True) as conn:  # type: ignore[attr-defined]
            return mirror.restore(conn, latest.values(), store_images)

    @staticmethod
    def _campaign_id(conn: Connection, name: str) -> int:

        if not isinstance(name, str):
            raise InputError(f"a campaign name must be text, not {type(name).__name__}")
        cid = conn.execute(select(S.campaigns.c.id).where(S.campaigns.c.name == name)).scalar()
        if cid is None:
            raise S.NotFoundError(f"no campaign named {name!r}")
        return cid


def _campaign(row: Any) -> Campaign:
    m = row._mapping
    return Campaign(id=m["id"], name=m["name"], created_at=m["created_at"], model=m["model"],
                    model_revision=m["model_revision"], task=m["task"], questions=tuple(m["questions"] or ()),
                    overlap=m["overlap"], order=m["order"], review=bool(m["review"]),
                    instructions=m["instructions"] or "", seed=m["seed"])


def _task(row: Any, campaign: str, lease_until: datetime | None) -> Task:
    m = row._mapping
    return Task(id=m["id"], campaign=campaign, image_hash=m["image_hash"], image_path=m["image_path"],
                model_output=m["model_output"], question=m["question"],
                tokens=None if m["tokens"] is None else tuple(m["tokens"]),
                token_probs=None if m["token_probs"] is None else tuple(m["token_probs"]),
                confidence=m["confidence"], lease_until=lease_until)
