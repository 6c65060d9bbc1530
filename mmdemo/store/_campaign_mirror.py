"""Campaigns in the dataset mirror: the rows a campaign is made of, as records keyed by what names them.

Four kinds of record go to `data/campaigns-<writer>.jsonl` (hub_sync), each written when its row changes:

    {"kind": "campaign", "name", "created_at", "model", "model_revision", "task", "questions", "overlap",
     "order", "review", "instructions", "seed"}
    {"kind": "task", "campaign", "key", "image_hash", "image_path", "question", "model_output", "tokens",
     "token_probs", "decoding", "confidence", "position", "created_at"}
    {"kind": "submission", "campaign", "task_key", "annotator", "correction_id", "started_at", "submitted_at",
     "status", "reviewer", "reviewed_at"}
    {"kind": "skip", "campaign", "task_key", "annotator", "skipped_at", "removed"}

Records name campaigns, tasks and annotators, never the database's integer ids, so a restore into any store
(SQLite or PostgreSQL) gives new ids and the same campaign. Leases are not mirrored (they last minutes); a task's
submission count and done flag are recounted from its submissions on restore, and the agreement cache is left to
be computed again. Per identity (kind + the fields that name it) the latest record wins.
"""
from __future__ import annotations

import logging
from datetime import datetime, timezone
from typing import Any, Callable, Iterable

from sqlalchemy import func, select, update
from sqlalchemy.engine import Connection

from . import _schema as S
from ._restore import utc_time

log = logging.getLogger(__name__)

CAMPAIGN_FIELDS = ("name", "created_at", "model", "model_revision", "task", "questions", "overlap", "order",
                   "review", "instructions", "seed")
TASK_FIELDS = ("key", "image_hash", "image_path", "question", "model_output", "tokens", "token_probs", "decoding",
               "confidence", "position", "created_at")
SUBMISSION_FIELDS = ("correction_id", "started_at", "submitted_at", "status", "reviewer", "reviewed_at")
_NAMES = {"campaign": ("name",), "task": ("campaign", "key"), "submission": ("campaign", "task_key", "annotator"),
          "skip": ("campaign", "task_key", "annotator")}


_NEEDED = {"campaign": ("created_at", "model", "task", "overlap", "order", "review", "seed"),
           "task": ("image_hash", "model_output", "position", "created_at"),
           "submission": ("correction_id", "submitted_at", "status"), "skip": ()}


def identity(record: dict[str, Any]) -> tuple | None:
    """What a record is the state of (None: not a whole campaign record this version reads)."""
    names = _NAMES.get(record.get("kind"))  # type: ignore[arg-type]
    if names is None or any(not isinstance(record.get(n), str) for n in names) \
            or any(record.get(n) is None for n in _NEEDED[record["kind"]]):
        return None
    return (record["kind"], *(record[n] for n in names))


# --- records of rows, read inside the writing transaction ---------------------------------------------------
def campaign_record(conn: Connection, campaign_id: int) -> dict[str, Any]:
    row = conn.execute(select(S.campaigns).where(S.campaigns.c.id == campaign_id)).one()._mapping
    return {"kind": "campaign", **{k: _plain(row[k]) for k in CAMPAIGN_FIELDS}}


def task_records(conn: Connection, campaign: str, task_ids: Iterable[int]) -> list[dict[str, Any]]:
    t = S.campaign_tasks.c
    rows = conn.execute(select(S.campaign_tasks).where(t.id.in_(list(task_ids))).order_by(t.id)).all()
    return [{"kind": "task", "campaign": campaign, **{k: _plain(r._mapping[k]) for k in TASK_FIELDS}} for r in rows]


def submission_record(conn: Connection, submission_id: int) -> dict[str, Any]:
    s, t, c = S.campaign_submissions.c, S.campaign_tasks.c, S.campaigns.c
    row = conn.execute(select(S.campaign_submissions, t.key, c.name)
                       .join(S.campaign_tasks, t.id == s.task_id).join(S.campaigns, c.id == s.campaign_id)
                       .where(s.id == submission_id)).one()._mapping
    return {"kind": "submission", "campaign": row["name"], "task_key": row["key"], "annotator": row["annotator"],
            **{k: _plain(row[k]) for k in SUBMISSION_FIELDS}}


def skip_record(conn: Connection, task_id: int, annotator: str) -> dict[str, Any]:
    """A skip as it stands: its time, or removed when it is gone (taken back by a submission)."""
    t, c, k = S.campaign_tasks.c, S.campaigns.c, S.campaign_skips.c
    row = conn.execute(select(t.key, c.name).join(S.campaigns, c.id == t.campaign_id)
                       .where(t.id == task_id)).one()
    skipped_at = conn.execute(select(k.skipped_at).where(k.task_id == task_id, k.annotator == annotator)).scalar()
    return {"kind": "skip", "campaign": row.name, "task_key": row.key, "annotator": annotator,
            "skipped_at": _plain(skipped_at), "removed": skipped_at is None}


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        value = value if value.tzinfo else value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")
    return value


# --- restore ------------------------------------------------------------------------------------------------
def restore(conn: Connection, records: Iterable[dict[str, Any]],
            store_images: Callable[[Connection, list[tuple[str, datetime]]], None]) -> int:
    """Insert the campaigns of `records` (the latest record per identity) that the store does not have, with their
    tasks, submissions (whose corrections the store has) and skips; `store_images(conn, [(hash, created_at)])`
    puts the tasks' images in. Returns how many campaigns came back."""
    by_kind: dict[str, list[dict[str, Any]]] = {kind: [] for kind in _NAMES}
    for r in records:
        by_kind[r["kind"]].append(r)
    c, t = S.campaigns.c, S.campaign_tasks.c
    present = set(conn.execute(select(c.name)).scalars())
    ids: dict[str, int] = {}
    overlap: dict[str, int] = {}
    for r in by_kind["campaign"]:
        if r["name"] in present:
            continue
        row = {k: r.get(k) for k in CAMPAIGN_FIELDS} | {"created_at": utc_time(r["created_at"])}
        ids[r["name"]] = conn.execute(S.campaigns.insert().values(**row)).inserted_primary_key[0]
        overlap[r["name"]] = int(r["overlap"])
    tasks = [r for r in by_kind["task"] if r["campaign"] in ids]
    store_images(conn, list({r["image_hash"]: utc_time(r["created_at"]) for r in tasks}.items()))
    for lo in range(0, len(tasks), 500):
        conn.execute(S.campaign_tasks.insert(), [
            {k: r.get(k) for k in TASK_FIELDS} | {"campaign_id": ids[r["campaign"]], "submissions": 0, "done": 0,
                                                  "created_at": utc_time(r["created_at"])}
            for r in tasks[lo:lo + 500]])
    task_id: dict[tuple[str, str], int] = {}
    for name, cid in ids.items():
        for tid, key in conn.execute(select(t.id, t.key).where(t.campaign_id == cid)):
            task_id[(name, key)] = tid
    known = set(conn.execute(select(S.corrections.c.id)).scalars())
    subs = []
    for r in by_kind["submission"]:
        tid = task_id.get((r["campaign"], r["task_key"]))
        if tid is None:
            continue
        if r["correction_id"] not in known:
            log.warning("campaign %s: a submission's correction %s is not in the mirror; left out",
                        r["campaign"], r["correction_id"])
            continue
        subs.append({"task_id": tid, "campaign_id": ids[r["campaign"]], "annotator": r["annotator"],
                     **{k: r.get(k) for k in SUBMISSION_FIELDS},
                     **{k: utc_time(r.get(k)) for k in ("started_at", "submitted_at", "reviewed_at")}})
    if subs:
        conn.execute(S.campaign_submissions.insert(), subs)
    skips = [{"task_id": task_id[(r["campaign"], r["task_key"])], "annotator": r["annotator"],
              "campaign_id": ids[r["campaign"]], "skipped_at": utc_time(r["skipped_at"])}
             for r in by_kind["skip"]
             if not r.get("removed") and r.get("skipped_at") and (r["campaign"], r["task_key"]) in task_id]
    if skips:
        conn.execute(S.campaign_skips.insert(), skips)
    s = S.campaign_submissions.c
    counts = dict(conn.execute(select(s.task_id, func.count()).where(s.campaign_id.in_(list(ids.values())))
                               .group_by(s.task_id)).all())
    for (name, _), tid in task_id.items():
        n = counts.get(tid, 0)
        if n:
            conn.execute(update(S.campaign_tasks).where(t.id == tid)
                         .values(submissions=n, done=int(n >= overlap[name])))
    return len(ids)
