"""Correction campaigns: the queue's rules (leases, overlap, skip, back, expiry), orders, review, agreement
figures against hand-computed values, the edit-rate migration, and the CLI's JSON; on SQLite and PostgreSQL."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from PIL import Image
from sqlalchemy import delete, select, update

from helpers import require_weights
from mmdemo.errors import InputError
from mmdemo.store import NotFoundError, edit_rate, open_store
from mmdemo.store import _schema
from mmdemo.store.agreement import agreement, chrf, word_similarity
from helpers import make_image

pytestmark = pytest.mark.usefixtures("store_env")

ROOT = Path(__file__).resolve().parent.parent
STATUS_KEYS = {"name", "images", "tasks_done", "images_done", "leased", "pending", "agreement", "annotators"}


@pytest.fixture
def store(store_url):
    s = open_store(store_url, sync=None)
    yield s
    s.close()


def items(n: int, *, probs: list[list[float]] | None = None, start: int = 0) -> list[dict]:
    return [{"image": make_image(start + i), "image_path": f"img-{start + i}.png",
             "model_output": f"a red circle number {start + i}", "question": None,
             "token_probs": None if probs is None else probs[i]} for i in range(n)]


def campaign(store, name="c", n=4, **kw):
    store.create_campaign(name, model="shapes-cross", **kw)
    assert store.add_tasks(name, items(n)) == n
    return name


# --- campaigns and tasks ------------------------------------------------------------------------
def test_create_list_get_and_refuse_bad_settings(store):
    c = store.create_campaign("audit", model="shapes-cross", model_revision="r1", task="vqa",
                              questions=["what color is the circle?", "how many objects are there?"],
                              overlap=2, order="random", review=True, instructions="fix colors", seed=7)
    assert (c.name, c.model, c.model_revision, c.task, c.overlap, c.order, c.review, c.seed) == \
        ("audit", "shapes-cross", "r1", "vqa", 2, "random", True, 7)
    assert c.questions == ("what color is the circle?", "how many objects are there?")
    assert store.get_campaign("audit") == c and [x.name for x in store.list_campaigns()] == ["audit"]
    with pytest.raises(InputError, match="already exists"):
        store.create_campaign("audit", model="m")
    with pytest.raises(InputError, match="order must be one of"):
        store.create_campaign("x", model="m", order="newest")
    with pytest.raises(InputError, match="needs at least one question"):
        store.create_campaign("x", model="m", task="vqa")
    with pytest.raises(InputError, match="overlap"):
        store.create_campaign("x", model="m", overlap=0)
    with pytest.raises(NotFoundError, match="no campaign named 'nope'"):
        store.get_campaign("nope")
    assert [x.name for x in store.list_campaigns()] == ["audit"]


def test_add_tasks_keeps_images_once_and_skips_what_is_there(store):
    store.create_campaign("c", model="m")
    assert store.add_tasks("c", items(3, probs=[[0.5, 0.7], [0.9], [0.2, 0.4]])) == 3
    assert store.add_tasks("c", items(5)) == 2                   # the first three are there already
    t = store.next_task("c", "ana")
    assert (t.image_path, t.model_output, t.question, t.token_probs) == \
        ("img-0.png", "a red circle number 0", None, (0.5, 0.7))
    assert t.confidence == pytest.approx(0.6) and t.campaign == "c"
    png = store.image_bytes(t.image_hash)
    assert png.startswith(b"\x89PNG")
    with pytest.raises(InputError, match="unknown field"):
        store.add_tasks("c", [{**items(1)[0], "caption": "x"}])
    with pytest.raises(InputError, match="probabilities"):
        store.add_tasks("c", [{**items(1, start=9)[0], "token_probs": [1.5]}])
    assert store.add_tasks("c", [{**items(1, start=9)[0], "token_probs": [1.0000001, 0.5]}]) == 1  # float32 noise
    with pytest.raises(NotFoundError):
        store.add_tasks("nope", items(1))


def test_vqa_tasks_are_image_times_question(store):
    store.create_campaign("v", model="m", task="vqa", questions=["what color is the circle?"])
    rows = [{"image": make_image(i), "image_path": f"{i}.png", "model_output": "red", "question": q,
             "token_probs": [0.8]} for i in range(2) for q in ("what color is the circle?", "how many objects?")]
    assert store.add_tasks("v", rows) == 4
    with pytest.raises(InputError, match="needs its question"):
        store.add_tasks("v", [{"image": make_image(5), "model_output": "red"}])
    seen = set()
    while (t := store.next_task("v", "ana")) is not None:
        seen.add((t.image_path, t.question))
        store.submit_task(t.id, "blue", "ana")
    assert len(seen) == 4
    s = store.campaign_status("v")
    assert (s["images"], s["tasks_done"], s["images_done"]) == (2, 4, 2)


# --- orders -------------------------------------------------------------------------------------
def drain(store, name, who="ana"):
    order = []
    while (t := store.next_task(name, who)) is not None:
        order.append(t.image_path)
        store.submit_task(t.id, "x", who)
    return order


def test_orders(store):
    probs = [[0.9, 0.9], [0.2, 0.6], [0.5], [0.95, 0.1], None]   # means: 0.9, 0.4, 0.5, 0.525, unknown
    for name, order, seed in (("imp", "imported", 0), ("unc", "uncertainty", 0), ("r1", "random", 1),
                              ("r1b", "random", 1), ("r2", "random", 2)):
        store.create_campaign(name, model="m", order=order, seed=seed)
        store.add_tasks(name, items(5, probs=probs))
    assert drain(store, "imp") == [f"img-{i}.png" for i in range(5)]
    assert drain(store, "unc") == ["img-1.png", "img-2.png", "img-3.png", "img-0.png", "img-4.png"]
    r1, r1b, r2 = drain(store, "r1"), drain(store, "r1b"), drain(store, "r2")
    assert r1 == r1b and sorted(r1) == sorted(r2) and r1 != r2 and len(r1) == 5


# --- the queue ----------------------------------------------------------------------------------
def test_lease_is_exclusive_and_overlap_counts_distinct_annotators(store):
    campaign(store, n=2, overlap=2)
    a, b = store.next_task("c", "ana"), store.next_task("c", "ben")
    assert a.id != b.id                                  # no task to two annotators at once
    assert store.next_task("c", "ana").id == a.id        # asking again (a page reload) gives the same lease
    assert store.next_task("c", "cara") is None          # both leased
    with pytest.raises(InputError, match="leased to another annotator"):
        store.submit_task(a.id, "stolen", "cara")
    cid = store.submit_task(a.id, "a blue circle", "ana")
    assert store.get(cid).annotator == "ana" and store.get(cid).corrected == "a blue circle"
    assert store.next_task("c", "ana") is None           # ana has done a; b is ben's
    assert store.next_task("c", "cara").id == a.id       # a needs a second annotator
    store.submit_task(a.id, "a green circle", "cara")
    with pytest.raises(InputError, match="already done"):
        store.submit_task(a.id, "late", "dan")
    s = store.campaign_status("c")
    assert set(s) == STATUS_KEYS and set(s["agreement"]) == {"word_similarity", "chrf"}
    assert (s["images"], s["tasks_done"], s["images_done"], s["leased"], s["pending"]) == (2, 1, 1, 1, 0)
    assert store.count() == 2                            # every submission is a correction


def test_leases_expire(store, monkeypatch):
    monkeypatch.setenv("MMDEMO_LEASE_SECONDS", "1")
    campaign(store, n=1)
    t = store.next_task("c", "ana")
    assert store.next_task("c", "ben") is None
    time.sleep(1.3)
    assert store.campaign_status("c")["pending"] == 1
    u = store.next_task("c", "ben")
    assert u.id == t.id
    with pytest.raises(InputError, match="leased to another"):
        store.submit_task(t.id, "too late", "ana")
    store.submit_task(u.id, "in time", "ben")
    assert store.campaign_status("c")["tasks_done"] == 1


def test_skip_and_back(store):
    campaign(store, n=3)
    t0 = store.next_task("c", "ana")
    store.skip_task(t0.id, "ana")
    assert store.campaign_status("c")["leased"] == 0     # a skip releases the lease
    t1 = store.next_task("c", "ana")
    assert t1.id != t0.id
    store.submit_task(t1.id, "first text", "ana")
    t2 = store.next_task("c", "ana")
    back = store.previous_task("c", "ana")               # from t2 back to t1, with ana's text
    assert (back.id, back.corrected) == (t1.id, "first text")
    assert store.campaign_status("c")["leased"] == 0     # t2 went back to the queue
    cid = store.submit_task(t1.id, "second text", "ana")  # a new version, not a second submission
    c = store.get(cid)
    assert (c.version, [v.corrected for v in c.history]) == (2, ["first text", "second text"])
    again = store.previous_task("c", "ana", before=t1.id)  # further back: the skipped t0, reopened for ana
    assert again.id == t0.id and again.corrected is None and again.lease_until is not None
    assert store.previous_task("c", "ana", before=t0.id) is None
    store.submit_task(t0.id, "now done", "ana")
    assert store.next_task("c", "ana").id == t2.id
    assert store.campaign_status("c")["tasks_done"] == 2
    assert store.next_task("c", "ben") is None           # t0, t1 done; t2 leased to ana
    with pytest.raises(NotFoundError):
        store.skip_task(999_999, "ana")


# --- review -------------------------------------------------------------------------------------
def test_review_approve_reject_edit_restore(store):
    campaign(store, n=2, overlap=2, review=True)
    texts = {("ana", 0): "a red circle number 0", ("ben", 0): "a red circle number 0",
             ("ana", 1): "a blue square", ("ben", 1): "a red circle number one"}
    ids = {}
    for who in ("ana", "ben"):
        while (t := store.next_task("c", who)) is not None:
            n = int(t.image_path.split("-")[1].split(".")[0])
            ids[(who, n)] = store.submit_task(t.id, texts[(who, n)], who)
    queue = store.review_queue("c")
    assert [q["image_path"] for q in queue] == ["img-1.png", "img-0.png"]   # the disagreement first
    assert queue[1]["word_similarity"] == 1.0 and len(queue[0]["submissions"]) == 2
    r = store.review_task(ids[("ana", 0)], "approve", "rita")
    assert (r["status"], r["reviewer"]) == ("approved", "rita")
    r = store.review_task(ids[("ben", 1)], "reject", "rita")
    assert r["status"] == "rejected"
    r = store.review_task(ids[("ana", 1)], "edit", "rita", corrected="a blue square left of a star")
    assert (r["status"], r["corrected"], r["version"]) == ("approved", "a blue square left of a star", 2)
    r = store.review_task(ids[("ana", 1)], "restore", "rita", version=1)
    assert (r["corrected"], r["version"]) == ("a blue square", 3)
    assert [h["corrected"] for h in r["history"]] == ["a blue square", "a blue square left of a star",
                                                      "a blue square"]
    with pytest.raises(InputError, match="no version 9"):
        store.review_task(ids[("ana", 1)], "restore", "rita", version=9)
    with pytest.raises(InputError, match="action must be"):
        store.review_task(ids[("ana", 1)], "burn", "rita")
    # the rejected submission no longer counts for agreement: only image 0 has two texts left
    assert store.campaign_status("c")["agreement"]["word_similarity"] == 1.0
    assert [q["task_id"] for q in store.review_queue("c")] == [queue[1]["task_id"]]   # ben's 0 still waits


# --- agreement ----------------------------------------------------------------------------------
def test_word_similarity_and_edit_rate_by_hand():
    assert word_similarity("a red circle", "a blue circle") == pytest.approx(2 / 3)
    assert word_similarity("a star", "a big yellow star") == pytest.approx(1 - 2 / 4)
    assert word_similarity("", "") == 1.0 and word_similarity("a", "") == 0.0
    # a reordered sentence: 4 word edits (difflib's opcodes counted 6)
    assert edit_rate("a red circle left of a star", "a star left of a red circle") == pytest.approx(4 / 7)
    assert chrf("a red circle", "a red circle") == pytest.approx(100.0)
    assert 0 < chrf("a red circle", "a blue circle") < 100
    assert agreement({"x": {"ana": "only one"}})["word_similarity"] is None


def test_campaign_agreement_equals_hand_computed_values(store):
    """Three images, overlap 3; constructed texts (model outputs in brackets):
    img-0 [a red circle]: ana "a red circle", ben "a blue circle", cara "a red circle"
        pairs: ana–ben 2/3, ana–cara 1, ben–cara 2/3 → 7/9
    img-1 [two green squares]: ana and ben the same → 1
    img-2 [a star]: ana "a star", ben "a big yellow star" → 1 − 2/4 = 1/2
    campaign: (7/9 + 1 + 1/2) / 3; ana: (2/3 + 1 + 1 + 1/2) / 4; ben: (2/3 + 2/3 + 1 + 1/2) / 4; cara: (1 + 2/3) / 2
    edit rates: ana 0, 0, 0; ben 1/3, 0, 2/2; cara 0
    """
    store.create_campaign("agree", model="m", overlap=3)
    outputs = ["a red circle", "two green squares", "a star"]
    store.add_tasks("agree", [{"image": make_image(i), "image_path": f"{i}", "model_output": o}
                              for i, o in enumerate(outputs)])
    texts = {"ana": ["a red circle", "two green squares", "a star"],
             "ben": ["a blue circle", "two green squares", "a big yellow star"],
             "cara": ["a red circle"]}
    for who, theirs in texts.items():
        for text in theirs:
            t = store.next_task("agree", who)
            store.submit_task(t.id, text, who)
    s = store.campaign_status("agree")
    assert s["agreement"]["word_similarity"] == pytest.approx((7 / 9 + 1 + 1 / 2) / 3)
    pairs = {0: [("a red circle", "a blue circle"), ("a red circle", "a red circle"),
                 ("a blue circle", "a red circle")],
             1: [("two green squares", "two green squares")], 2: [("a star", "a big yellow star")]}
    per_item = [sum(chrf(a, b) for a, b in p) / len(p) for p in pairs.values()]
    assert s["agreement"]["chrf"] == pytest.approx(sum(per_item) / 3)
    assert per_item[1] == pytest.approx(100.0)
    people = {a["annotator"]: a for a in s["annotators"]}
    assert people["ana"]["agreement"] == pytest.approx((2 / 3 + 1 + 1 + 1 / 2) / 4)
    assert people["ben"]["agreement"] == pytest.approx((2 / 3 + 2 / 3 + 1 + 1 / 2) / 4)
    assert people["cara"]["agreement"] == pytest.approx((1 + 2 / 3) / 2)
    assert people["ana"]["mean_edit_rate"] == 0.0
    assert people["ben"]["mean_edit_rate"] == pytest.approx((1 / 3 + 0 + 1) / 3)
    assert [people[a]["tasks_done"] for a in ("ana", "ben", "cara")] == [3, 3, 1]
    assert all(people[a]["median_seconds"] >= 0 for a in people)
    assert (s["tasks_done"], s["images_done"], s["pending"]) == (1, 1, 2)


def test_remembered_chrf_follows_the_texts(store):
    campaign(store, n=1, overlap=2)
    t = store.next_task("c", "ana")
    store.submit_task(t.id, "a red circle", "ana")
    ben = store.submit_task(store.next_task("c", "ben").id, "a blue circle", "ben")
    first = store.campaign_status("c")["agreement"]
    assert first["chrf"] == pytest.approx(chrf("a red circle", "a blue circle"))
    with store.engine.connect() as conn:
        assert conn.execute(select(_schema.campaign_tasks.c.chrf)).scalar() == pytest.approx(first["chrf"])
    assert store.campaign_status("c")["agreement"] == first                  # from the stored value
    store.review_task(ben, "edit", "rita", corrected="a red circle")
    assert store.campaign_status("c")["agreement"] == {"word_similarity": 1.0, "chrf": pytest.approx(100.0)}
    store.review_task(ben, "reject", "rita")
    assert store.campaign_status("c")["agreement"] == {"word_similarity": None, "chrf": None}


def test_migration_recomputes_stored_edit_rates(store_url):
    with open_store(store_url, sync=None) as s:
        cid = s.add(make_image(1), "a red circle left of a star", "a star left of a red circle", model="m")
        s.update(cid, "a star left of a circle")
        c = _schema.corrections.c
        with s.engine.begin() as conn:                  # as a version-2 store left them: difflib's counts
            conn.execute(update(_schema.corrections).values(edit_rate=6 / 7))
            conn.execute(update(_schema.correction_versions).values(edit_rate=6 / 7))
            conn.execute(delete(_schema.schema_version).where(_schema.schema_version.c.version >= 3))
    with open_store(store_url, sync=None) as s:
        got = s.get(cid)
        assert got.edit_rate == pytest.approx(edit_rate("a red circle left of a star", "a star left of a circle"))
        assert [v.edit_rate for v in got.history] == pytest.approx([4 / 7, got.edit_rate])
        with s.engine.connect() as conn:
            assert conn.execute(select(c.edit_rate)).scalar() == pytest.approx(got.edit_rate)


# --- CLI ----------------------------------------------------------------------------------------
def cli(*args, data_dir, check=True):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MMDEMO_DATA_DIR": str(data_dir)}
    env.pop("MMDEMO_DATABASE_URL", None)
    p = subprocess.run([sys.executable, "-m", "mmdemo", "campaign", *args], capture_output=True, text=True,
                       timeout=180, env=env)
    if check:
        assert p.returncode == 0, p.stderr
    return p


@pytest.fixture
def table(tmp_path):
    """A CSV of image paths with existing captions, one unreadable image among them."""
    folder = tmp_path / "imgs"
    folder.mkdir()
    lines = ["image_path,caption"]
    for i in range(4):
        Image.fromarray(make_image(i, 16)).save(folder / f"{i}.png")
        lines.append(f"imgs/{i}.png,a small red circle {i}")
    (folder / "broken.png").write_bytes(b"not a png at all")
    lines.append("imgs/broken.png,whatever")
    (tmp_path / "table.csv").write_text("\n".join(lines) + "\n")
    return tmp_path / "table.csv"


def test_cli_create_status_export_round_trip(table, tmp_path):
    data = tmp_path / "data"
    out = json.loads(cli("create", "team", "--images", str(table), "--model", "shapes-cross", "--overlap", "2",
                         "--order", "random", "--instructions", "fix colors", "--json", data_dir=data).stdout)
    assert (out["added"], out["skipped"], out["read"]) == (4, 0, 5)
    assert [u["path"].endswith("broken.png") for u in out["unreadable"]] == [True]
    assert out["campaign"]["overlap"] == 2 and out["campaign"]["instructions"] == "fix colors"
    again = json.loads(cli("create", "team", "--images", str(table), "--model", "shapes-cross", "--json",
                           data_dir=data).stdout)
    assert (again["added"], again["skipped"], again["resumed"]) == (0, 4, True)        # resumable
    listed = json.loads(cli("list", "--json", data_dir=data).stdout)
    assert [c["name"] for c in listed] == ["team"]

    with open_store(str(data / "corrections.db"), sync=None) as s:
        for who in ("ana", "ben"):
            while (t := s.next_task("team", who)) is not None:
                assert t.model_output.startswith("a small red circle")
                s.submit_task(t.id, t.model_output.replace("red", "blue") if who == "ben" else t.model_output, who)
    status = json.loads(cli("status", "team", "--json", data_dir=data).stdout)
    assert set(status) == STATUS_KEYS and set(status["agreement"]) == {"word_similarity", "chrf"}
    assert (status["name"], status["images"], status["tasks_done"], status["images_done"]) == ("team", 4, 4, 4)
    assert status["agreement"]["word_similarity"] == pytest.approx(1 - 1 / 5)
    assert [a["annotator"] for a in status["annotators"]] == ["ana", "ben"]

    import pandas as pd

    for fmt in ("csv", "jsonl", "coco", "parquet"):
        path = tmp_path / f"team.{fmt}"
        res = json.loads(cli("export", "team", "--format", fmt, "--out", str(path), "--json", data_dir=data).stdout)
        assert res["rows"] == 8
    rows = [json.loads(line) for line in (tmp_path / "team.jsonl").read_text().splitlines()]
    assert {r["campaign"] for r in rows} == {"team"} and {r["status"] for r in rows} == {"submitted"}
    assert all(r["versions"][0]["corrected"] == r["corrected"] for r in rows)
    df = pd.read_parquet(tmp_path / "team.parquet")
    assert len(df) == 8 and {"campaign", "status", "reviewer", "versions", "task_id"} <= set(df.columns)
    coco = json.loads((tmp_path / "team.coco").read_text())
    assert len(coco["images"]) == 4 and coco["annotations"][0]["mmdemo"]["campaign"] == "team"
    assert len(pd.read_csv(tmp_path / "team.csv")) == 8


def test_cli_bad_input_exits_2_with_one_line(tmp_path, table):
    data = tmp_path / "data"
    for args in (["create", "x", "--images", str(tmp_path / "missing"), "--model", "m"],
                 ["create", "x", "--images", str(table), "--model", "m", "--order", "newest"],
                 ["create", "x", "--images", str(table), "--model", "m", "--task", "vqa"],
                 ["status", "nope", "--json"],
                 ["export", "nope", "--format", "csv", "--out", str(tmp_path / "x.csv")]):
        p = cli(*args, data_dir=data, check=False)
        assert p.returncode == 2, (args, p.stderr)
        assert len(p.stderr.strip().splitlines()) == 1 and "Traceback" not in p.stderr, p.stderr


@pytest.mark.slow
def test_cli_pre_annotates_with_the_model(tmp_path):
    require_weights("shapes-cross")
    data = tmp_path / "data"
    out = json.loads(cli("create", "pre", "--images", str(ROOT / "assets" / "examples"), "--model", "shapes-cross",
                         "--order", "uncertainty", "--json", data_dir=data).stdout)
    assert out["added"] == len(list((ROOT / "assets" / "examples").glob("*.png")))
    with open_store(str(data / "corrections.db"), sync=None) as s:
        assert s.get_campaign("pre").model_revision                  # filled in when the model was loaded
        t = s.next_task("pre", "ana")
        assert t.tokens and len(t.tokens) == len(t.token_probs) and 0 < t.confidence <= 1
        assert t.model_output.split()[0] == "a"
        vqa = s.create_campaign("preq", model="shapes-cross", task="vqa", questions=["how many objects are there?"])
        from mmdemo.campaigns import fill_campaign, read_sources

        r = fill_campaign(s, vqa.name, read_sources(ROOT / "assets" / "examples"), progress=False)
        assert r.added == out["added"] and not r.unreadable
        answer = s.next_task("preq", "ana")
        assert answer.question == "how many objects are there?" and len(answer.token_probs) == 1


# --- filling from folders, COCO files and tables ---------------------------------------------------
class FakeModel:
    """Stands in for a model: fixed captions with token probabilities, fixed answers; counts its images."""

    def __init__(self):
        self.seen = 0

    def caption(self, images):
        self.seen += len(images)
        return [SimpleNamespace(text="a blue star", tokens=[("a", 0.9), ("blue", 0.3), ("star", 0.6)])
                for _ in images]

    def answer(self, images, questions, top_k=5):
        self.seen += len(images)
        return [SimpleNamespace(answer=f"red ({q})", prob=0.7) for q in questions]


def test_fill_from_a_folder_pre_annotates_once_and_lists_unreadable(store, tmp_path):
    from mmdemo.campaigns import fill_campaign, read_sources

    folder = tmp_path / "photos"
    folder.mkdir()

    for i in range(3):
        Image.fromarray(make_image(i, 16)).save(folder / f"{i}.png")
    (folder / "bad.jpg").write_bytes(b"\xff\xd8 truncated")
    store.create_campaign("f", model="fake", order="uncertainty")
    model = FakeModel()
    r = fill_campaign(store, "f", read_sources(folder), batch_size=2, progress=False, model=model)
    assert (r.read, r.added, r.skipped, model.seen) == (4, 3, 0, 3)
    assert [Path(u["path"]).name for u in r.unreadable] == ["bad.jpg"] and r.unreadable[0]["error"]
    again = fill_campaign(store, "f", read_sources(folder), progress=False, model=model)
    assert (again.added, again.skipped, model.seen) == (0, 3, 3)          # resumed: the model did not run again
    t = store.next_task("f", "ana")
    assert (t.model_output, t.tokens, t.token_probs) == ("a blue star", ("a", "blue", "star"), (0.9, 0.3, 0.6))
    assert t.confidence == pytest.approx(0.6) and Path(t.image_path).parent == folder
    from mmdemo.models.base import Decoding

    assert store.get(store.submit_task(t.id, "a red star", "ana")).decoding == Decoding().to_dict()


def test_fill_from_coco_and_tables_uses_their_texts(store, tmp_path):
    import pandas as pd

    from mmdemo.campaigns import fill_campaign, read_sources

    (tmp_path / "images").mkdir()
    for i in range(2):
        Image.fromarray(make_image(10 + i, 16)).save(tmp_path / "images" / f"{i}.png")
    coco = {"images": [{"id": 7, "file_name": "0.png"}, {"id": 8, "file_name": "1.png"}],
            "annotations": [{"id": 1, "image_id": 7, "caption": "two red circles"},
                            {"id": 2, "image_id": 8, "caption": "a green square"}]}
    (tmp_path / "captions.json").write_text(json.dumps(coco))
    store.create_campaign("coco", model="not-a-registered-model")       # never loaded: every image has a text
    r = fill_campaign(store, "coco", read_sources(tmp_path / "captions.json"), progress=False)
    assert (r.added, r.unreadable) == (2, [])
    assert drain(store, "coco") == [str(tmp_path / "images" / f"{i}.png") for i in range(2)]
    assert {c.model_output for c in store.list()} == {"two red circles", "a green square"}

    pd.DataFrame({"image": ["images/0.png", "images/1.png", "images/1.png"],
                  "question": ["what color is it?", "what color is it?", "how many?"],
                  "answer": ["red", "green", None]}).to_parquet(tmp_path / "qa.parquet")
    store.create_campaign("qa", model="fake", task="vqa", questions=["how many?"])
    model = FakeModel()
    r = fill_campaign(store, "qa", read_sources(tmp_path / "qa.parquet"), progress=False, model=model)
    assert (r.added, model.seen) == (3, 1)                              # one row had no answer: the model gave it
    got = set()
    while (t := store.next_task("qa", "ana")) is not None:
        got.add((Path(t.image_path).name, t.question, t.model_output))
        store.submit_task(t.id, "ok", "ana")
    assert got == {("0.png", "what color is it?", "red"), ("1.png", "what color is it?", "green"),
                   ("1.png", "how many?", "red (how many?)")}
    with pytest.raises(InputError, match="no image path column"):
        pd.DataFrame({"caption": ["x"]}).to_csv(tmp_path / "bad.csv", index=False)
        read_sources(tmp_path / "bad.csv")
    with pytest.raises(InputError, match="no such file or folder"):
        read_sources(tmp_path / "missing")
