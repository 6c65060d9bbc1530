"""Corrections store: provenance, history, soft delete, filters, hygiene, errors; on SQLite and PostgreSQL.

The PostgreSQL runs need MMDEMO_TEST_POSTGRES_URL (`source .ci/postgres.sh`); each test gets its own schema.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import sqlite3
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mmdemo import images as intake
from mmdemo.errors import ImageError, InputError, MmdemoError, StoreError
from mmdemo.store import LIMITS, NotFoundError, edit_rate, open_store, word_diff
from mmdemo.store import _schema
from mmdemo.store.hub_sync import HubSync
from mmdemo.store.store import _postgres_url
from helpers import make_image


# --- shared by the test_store*.py files --------------------------------------------------------
pytestmark = pytest.mark.usefixtures("store_env")


# --- saving and reading -----------------------------------------------------------------------
def test_add_keeps_full_provenance(store):
    image = make_image(1)
    cid = store.add(image, "a red circle", "a large red circle", model="shapes-cross", model_revision="abc123",
                    task="caption", annotator="ana", note="first pass", decoding={"num_beams": 3, "max_new_tokens": 20})
    c = store.get(cid)
    assert uuid.UUID(c.id) and c.id == cid
    assert (c.model, c.model_revision, c.task, c.question) == ("shapes-cross", "abc123", "caption", None)
    assert (c.model_output, c.corrected) == ("a red circle", "a large red circle")
    assert (c.annotator, c.note) == ("ana", "first pass")
    assert c.decoding == {"num_beams": 3, "max_new_tokens": 20}
    assert c.created_at.tzinfo is not None and c.created_at.utcoffset() == timedelta(0)
    assert abs(c.created_at - datetime.now(timezone.utc)) < timedelta(minutes=1)
    assert c.image_hash == intake.content_hash(intake.load_image(image))
    assert (c.image_width, c.image_height) == (12, 12)
    assert c.version == 1 and [v.corrected for v in c.history] == ["a large red circle"]
    assert c.edit_rate == pytest.approx(1 / 3) and not c.deleted
    assert [d.op for d in c.diff()] == ["equal", "insert", "equal"]
    d = c.to_dict(history=True)
    assert d["created_at"].endswith("Z") and d["history"][0]["version"] == 1
    json.dumps(d)


def test_vqa_correction_keeps_question(store):
    cid = store.add(make_image(2), "red", "blue", model="m", task="vqa", question="what color is the circle?")
    c = store.get(cid)
    assert (c.task, c.question, c.edit_rate) == ("vqa", "what color is the circle?", 1.0)


def test_image_stored_once_and_returned_as_png(store, store_url):
    image = make_image(3)
    ids = [store.add(image, "x", f"caption {i}", model="m") for i in range(3)]
    hashes = {store.get(i).image_hash for i in ids}
    assert len(hashes) == 1
    h = hashes.pop()
    png = store.image_bytes(h)
    assert png == intake.encode_png(intake.load_image(image))
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(png)).convert("RGB")), image)
    assert store.stats()["images"] == 1 and store.has_image(h)
    if store_url.startswith("sqlite"):
        root = Path(store_url.removeprefix("sqlite:///")).parent / "images"
        files = [p for p in root.rglob("*") if p.is_file()]
        assert files == [root / h[:2] / f"{h}.png"]          # one file, no temp files left


def test_same_pixels_from_any_source_dedup(store, tmp_path):
    image = make_image(4)
    path = tmp_path / "x.png"
    Image.fromarray(image).save(path)
    a = store.add(image, "", "one", model="m")
    b = store.add(str(path), "", "two", model="m")
    c = store.add(path.read_bytes(), "", "three", model="m")
    assert len({store.get(i).image_hash for i in (a, b, c)}) == 1


def test_id_is_readable_at_once_from_another_connection(store, store_url):
    cid = store.add(make_image(5), "a", "b", model="m")
    with open_store(store_url) as other:
        assert other.get(cid).corrected == "b"


def test_add_many(store):
    image = make_image(6)
    ids = store.add_many({"image": image, "model_output": "o", "corrected": f"c{i}", "model": "m"} for i in range(1200))
    assert len(set(ids)) == 1200 and store.count() == 1200
    assert store.get(ids[-1]).corrected == "c1199"
    for bad in ({"image": image, "model_output": "o", "corrected": "c", "model": "m", "colour": "red"},
                {"image": image, "corrected": "c", "model": "m"}):
        with pytest.raises(InputError):
            store.add_many([bad])


# --- history, soft delete -----------------------------------------------------------------------
def test_update_keeps_every_version(store):
    cid = store.add(make_image(7), "a red circle", "a red square", model="m", annotator="ana", note="n1")
    store.update(cid, "a blue square", "ben")
    c = store.update(cid, "a big blue square", "cy", note="n3")
    assert (c.version, c.corrected, c.annotator, c.note) == (3, "a big blue square", "cy", "n3")
    assert [(v.version, v.corrected, v.annotator, v.note) for v in c.history] == [
        (1, "a red square", "ana", "n1"), (2, "a blue square", "ben", "n1"), (3, "a big blue square", "cy", "n3")]
    assert c.updated_at >= c.created_at and c.history[-1].created_at == c.updated_at
    assert c.edit_rate == pytest.approx(edit_rate("a red circle", "a big blue square"))
    assert c.model_output == "a red circle"                      # never changes
    with pytest.raises(NotFoundError):
        store.update(str(uuid.uuid4()), "x", "y")
    with pytest.raises(InputError):
        store.update(cid, "   ", "y")


def test_soft_delete_hides_but_keeps(store):
    keep = store.add(make_image(8), "a", "kept", model="m")
    gone = store.add(make_image(8), "a", "gone", model="m")
    store.delete(gone, annotator="ana")
    assert [c.id for c in store.list()] == [keep]
    assert store.count() == 1 and store.count(include_deleted=True) == 2
    assert store.stats()["corrections"] == 1 and store.stats()["deleted"] == 1
    c = store.get(gone)
    assert c.deleted and c.deleted_by == "ana" and c.corrected == "gone"
    assert {x.id: x.deleted for x in store.list(include_deleted=True)} == {keep: False, gone: True}
    with pytest.raises(InputError, match="deleted"):
        store.update(gone, "again", "ana")
    store.delete(gone)                                           # twice: no error, first time kept
    assert store.get(gone).deleted_by == "ana"
    store.restore(gone)
    assert store.count() == 2 and not store.get(gone).deleted
    with pytest.raises(NotFoundError):
        store.delete(str(uuid.uuid4()))


def test_get_unknown_id(store):
    with pytest.raises(NotFoundError) as e:
        store.get(str(uuid.uuid4()))
    assert isinstance(e.value, (StoreError, KeyError))
    with pytest.raises(InputError):
        store.get(123)  # type: ignore[arg-type]


# --- listing ---------------------------------------------------------------------------------------
def test_list_filters_and_pages(store):
    img = make_image(9)
    ids = []
    for i in range(12):
        ids.append(store.add(img, f"output {i}", f"corrected {i} 100%_sure" if i == 3 else f"corrected {i}",
                             model="a" if i % 2 else "b", task="vqa" if i % 3 == 0 else "caption",
                             question="q?" if i % 3 == 0 else None, annotator="ana" if i < 6 else "ben"))
    newest_first = list(reversed(ids))
    assert [c.id for c in store.list(limit=5)] == newest_first[:5]
    assert [c.id for c in store.list(limit=5, offset=5)] == newest_first[5:10]
    assert {c.model for c in store.list(model="a")} == {"a"} and store.count(model="a") == 6
    assert store.count(task="vqa") == 4 and store.count(annotator="ben") == 6
    assert store.count(model="a", annotator="ana") == 3
    assert [c.id for c in store.list(search="CORRECTED 11")] == [ids[11]]
    assert [c.id for c in store.list(search="100%_s")] == [ids[3]]     # % and _ are literal
    assert store.count(search="%") == 1 and store.count(search="_") == 1
    assert store.count(search="output") == 12
    assert store.count(since=datetime.now(timezone.utc) + timedelta(hours=1)) == 0
    assert store.count(since=datetime.now(timezone.utc) - timedelta(hours=1)) == 12
    assert store.count(image_hash=store.get(ids[0]).image_hash) == 12
    assert store.list()[0].history == ()
    for bad in ({"limit": 0}, {"limit": 100_000}, {"offset": -1}, {"task": "draw"}):
        with pytest.raises(InputError):
            store.list(**bad)


def test_scan_reads_everything_in_order(store):
    ids = store.add_many({"image": make_image(10), "model_output": "", "corrected": f"c{i}", "model": "m"}
                         for i in range(25))
    assert [c.id for c in store.scan(batch=7)] == ids


def test_stats(store):
    img = make_image(11)
    store.add(img, "a red circle", "a red circle", model="m1", annotator="ana")            # rate 0
    store.add(img, "a red circle", "a blue circle", model="m1", annotator="ben")           # rate 1/3
    store.add(make_image(12), "red", "blue", model="m2", task="vqa", question="what color?")   # rate 1
    s = store.stats()
    assert s["corrections"] == 3 and s["images"] == 2 and s["changed"] == 2
    assert s["by_model"] == {"m1": 2, "m2": 1}
    assert s["by_task"] == {"caption": 2, "vqa": 1}
    assert s["by_annotator"] == {"ana": 1, "ben": 1, "": 1}
    assert s["mean_edit_rate"] == pytest.approx((0 + 1 / 3 + 1) / 3)
    json.dumps(s)


def test_empty_store_stats(store):
    assert store.stats()["mean_edit_rate"] is None and store.count() == 0 and store.list() == []


# --- hygiene -----------------------------------------------------------------------------------------
def test_hostile_text_is_kept_as_plain_text(store):
    html = '<script>alert("x")</script><img src=x onerror=alert(1)> & "quotes", commas'
    cid = store.add(make_image(13), html, html, model="m", annotator="<b>ana</b>", note=html)
    c = store.get(cid)
    assert c.corrected == html and c.model_output == html and c.note == html and c.annotator == "<b>ana</b>"
    assert store.list(search="<script>")[0].id == cid


def test_control_characters_removed_newlines_kept(store):
    cid = store.add(make_image(14), "out\x00put", "line\x1b[31m one\r\nline\x07 two\x7f\x9b\ttab",
                    model="m\x00\n1", annotator="an\na\x00", note="\x00")
    c = store.get(cid)
    assert c.corrected == "line[31m one\nline two\ttab"
    assert (c.model_output, c.model, c.annotator, c.note) == ("output", "m 1", "an a", None)


def test_limits_and_bad_input(store):
    img = make_image(15)
    too_long = "x" * 10_000
    cases = [
        dict(corrected=too_long), dict(corrected=""), dict(corrected=" \n\t "), dict(corrected=None),
        dict(corrected="\x00\x01"), dict(corrected=123), dict(note="n" * (LIMITS["note"] + 1)),
        dict(annotator="a" * 101), dict(model=""), dict(task="draw"), dict(task="vqa"),
        dict(decoding={"f": object()}), dict(decoding=[1, 2]), dict(decoding={"x": float("nan")}),
        dict(model_output=too_long),
    ]
    for case in cases:
        kwargs = {"corrected": "ok", "model": "m", **case}
        corrected = kwargs.pop("corrected")
        output = kwargs.pop("model_output", "out")
        with pytest.raises(InputError):
            store.add(img, output, corrected, **kwargs)
    with pytest.raises(InputError):
        store.add(None, "o", "c", model="m")
    with pytest.raises(ImageError):
        store.add(b"not an image", "o", "c", model="m")
    store.add(img, "o", "x" * LIMITS["corrected"], model="m")       # at the limit: accepted
    assert store.count() == 1


def test_image_bytes_refuses_non_hashes(store):
    for bad in ("../../etc/passwd", "A" * 64, "ab", 42):
        with pytest.raises(InputError):
            store.image_bytes(bad)  # type: ignore[arg-type]
    with pytest.raises(NotFoundError):
        store.image_bytes("0" * 64)


def test_word_diff_and_edit_rate():
    assert word_diff("a large red circle", "a small red star") == [
        ("equal", "a"), ("delete", "large"), ("insert", "small"), ("equal", "red"), ("delete", "circle"),
        ("insert", "star")]
    assert word_diff("", "new words") == [("insert", "new words")]
    assert word_diff("same", "same") == [("equal", "same")]
    assert edit_rate("a red circle", "a red circle") == 0.0
    assert edit_rate("a red circle", "a blue square") == pytest.approx(2 / 3)
    assert edit_rate("", "two words") == 2.0
    assert edit_rate("one", "one two three") == 2.0


# --- the database itself ---------------------------------------------------------------------------
def _versions(conn) -> list[int]:
    from sqlalchemy import select

    v = _schema.schema_version.c.version
    return conn.execute(select(v).order_by(v)).scalars().all()


def test_schema_version_recorded_and_newer_refused(store_url):
    from sqlalchemy import insert, select

    with open_store(store_url) as s:
        with s.engine.connect() as conn:
            assert _versions(conn) == list(range(1, _schema.LATEST + 1))
    with open_store(store_url) as s:                      # reopening applies nothing twice
        with s.engine.begin() as conn:
            assert _versions(conn) == list(range(1, _schema.LATEST + 1))
            conn.execute(insert(_schema.schema_version).values(version=_schema.LATEST + 1,
                                                               applied_at=datetime.now(timezone.utc)))
    with pytest.raises(StoreError, match="newer"):
        open_store(store_url)


def test_corrupt_sqlite_file_gives_store_error(tmp_path):
    db = tmp_path / "corrections.db"
    db.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreError, match="corrupt or not a database") as e:
        open_store(str(db))
    assert str(db) in str(e.value) and "\n" not in str(e.value)


def test_damaged_pages_give_store_error(tmp_path):
    db = tmp_path / "corrections.db"
    with open_store(str(db)) as s:
        s.add(make_image(16), "o", "c", model="m")
    raw = bytearray(db.read_bytes())
    raw[100:len(raw)] = b"\xff" * (len(raw) - 100)          # keep the header, wreck the pages
    db.write_bytes(bytes(raw))
    for suffix in ("-wal", "-shm"):
        Path(str(db) + suffix).unlink(missing_ok=True)
    with pytest.raises(StoreError):
        with open_store(str(db)) as s:
            s.list()


def test_locked_database_gives_store_error(tmp_path):
    db = tmp_path / "corrections.db"
    with open_store(str(db)) as s:
        s.add(make_image(17), "o", "c", model="m")
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        with open_store(str(db), timeout_s=0.2) as s:
            assert s.count() == 1                           # WAL: reads go on under a writer
            with pytest.raises(StoreError, match="locked"):
                s.add(make_image(17), "o", "c2", model="m")
    finally:
        holder.rollback()
        holder.close()


def test_default_location_follows_data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("MMDEMO_DATA_DIR", str(tmp_path / "elsewhere"))
    with open_store() as s:
        s.add(make_image(18), "o", "c", model="m")
        assert s.where == str(tmp_path / "elsewhere" / "corrections.db")
    assert (tmp_path / "elsewhere" / "corrections.db").is_file()
    with sqlite3.connect(tmp_path / "elsewhere" / "corrections.db") as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_database_url_env_and_url_forms(tmp_path, monkeypatch):
    monkeypatch.setenv("MMDEMO_DATABASE_URL", f"sqlite:///{tmp_path / 'env.db'}")
    with open_store() as s:
        assert s.where == str(tmp_path / "env.db")
    with open_store("sqlite://") as s:                       # in memory: images in the table
        cid = s.add(make_image(19), "o", "c", model="m")
        assert s.image_bytes(s.get(cid).image_hash).startswith(b"\x89PNG")
    assert _postgres_url("postgresql://u:p@h/db") == "postgresql+psycopg://u:p@h/db"
    assert _postgres_url("postgres://u@h/db") == "postgresql+psycopg://u@h/db"
    assert _postgres_url("postgresql+psycopg2://h/db") == "postgresql+psycopg2://h/db"
    with pytest.raises(InputError, match="unsupported"):
        open_store("mysql://u@h/db")


def test_unreachable_postgres_gives_store_error():
    with pytest.raises(StoreError, match="PostgreSQL") as e:
        open_store("postgresql://u:secret@127.0.0.1:1/db", timeout_s=1)
    assert "secret" not in str(e.value)


# --- hub sync (no network) ------------------------------------------------------------------------
def test_hub_sync_writes_a_shard_per_process(tmp_path, monkeypatch):
    assert HubSync.from_env(tmp_path) is None                # not asked for
    monkeypatch.setenv("MMDEMO_HUB_DATASET", "org/corrections")
    assert HubSync.from_env(tmp_path) is None                # no token: off
    assert HubSync.mirror_folder(tmp_path) == tmp_path / "hub_mirror"
    sync = HubSync(tmp_path / "mirror")
    assert HubSync(tmp_path / "mirror").shard != sync.shard  # two stores in one process: two shards
    assert sync.shard.parent == tmp_path / "mirror" / "data" and str(os.getpid()) in sync.shard.name
    s = open_store(f"sqlite:///{tmp_path / 'c.db'}", sync=sync)
    cid = s.add(make_image(20), "a red circle", "a blue circle <b>", model="m")
    s.update(cid, "a green circle", "ana")
    s.delete(cid)
    s.close()
    lines = [json.loads(x) for x in sync.shard.read_text(encoding="utf-8").splitlines()]
    assert [(x["id"], x["version"], x["deleted"]) for x in lines] == [(cid, 1, False), (cid, 2, False), (cid, 2, True)]
    assert lines[0]["corrected"] == "a blue circle <b>" and lines[1]["annotator"] == "ana"


def test_hub_sync_failure_never_fails_a_save(tmp_path):
    class Broken:
        def append(self, record):
            raise OSError("disk full")

        def close(self):
            pass

    s = open_store(f"sqlite:///{tmp_path / 'c.db'}", sync=Broken())
    cid = s.add(make_image(21), "o", "c", model="m")
    assert s.get(cid).corrected == "c"
    s.close()


# --- CLI handlers (in process, through a parser like mmdemo.cli's) ---------------------------------
def _run_cli(argv: list[str], capsys) -> tuple[int, str, str]:
    from mmdemo.cli import store as store_cli

    parser = argparse.ArgumentParser(prog="mmdemo")
    store_cli.add_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    try:
        rc = args.func(args)
    except MmdemoError as e:
        print(f"error: {e}", file=os.sys.stderr)
        rc = 2
    out, err = capsys.readouterr()
    return rc, out, err


def test_cli_correct_and_list(tmp_path, capsys):
    path = tmp_path / "img.png"
    Image.fromarray(make_image(22)).save(path)
    rc, out, _ = _run_cli(["correct", str(path), "--output", "a red circle", "--corrected", "a red, \"big\" circle",
                           "--model", "shapes-cross", "--annotator", "ana"], capsys)
    cid = out.strip()
    assert rc == 0 and uuid.UUID(cid)
    rc, out, _ = _run_cli(["correct", str(path), "--output", "red", "--corrected", "blue", "--task", "vqa",
                           "--question", "what color?", "--note", "n", "--json"], capsys)
    saved = json.loads(out)
    assert rc == 0 and saved["question"] == "what color?" and saved["model"] == "shapes-cross"
    rc, out, _ = _run_cli(["corrections", "--json"], capsys)
    assert rc == 0 and [c["id"] for c in json.loads(out)] == [saved["id"], cid]
    rc, out, _ = _run_cli(["corrections", "--limit", "1"], capsys)
    assert rc == 0 and saved["id"] in out and "(1 of 2)" in out
    assert (tmp_path / "data" / "corrections.db").is_file()   # MMDEMO_DATA_DIR


def test_cli_bad_input_is_one_line(tmp_path, capsys):
    path = tmp_path / "img.png"
    Image.fromarray(make_image(23)).save(path)
    rc, _, err = _run_cli(["correct", str(path), "--output", "o", "--corrected", "  "], capsys)
    assert rc == 2 and err.strip() == "error: corrected is empty"
    rc, _, err = _run_cli(["correct", str(tmp_path / "missing.png"), "--output", "o", "--corrected", "c"], capsys)
    assert rc == 2 and len(err.strip().splitlines()) == 1
