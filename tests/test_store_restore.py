"""Corrections survive a restart: saved with the dataset mirror on, the data folder deleted, the store opened
again → every row, every version and every image back, byte for byte (folder mode: no network)."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from mmdemo.store import open_store
from mmdemo.store import hub_sync
from mmdemo.store.hub_sync import HubSync, image_path, is_folder, latest_records


def make_image(i: int, size: int = 16) -> np.ndarray:
    return np.random.default_rng(1000 + i).integers(0, 256, (size, size, 3), dtype=np.uint8)


@pytest.fixture
def env(tmp_path, monkeypatch):
    data, mirror = tmp_path / "data", tmp_path / "mirror"
    monkeypatch.setenv("MMDEMO_DATA_DIR", str(data))
    monkeypatch.setenv("MMDEMO_HUB_DATASET", str(mirror))
    monkeypatch.delenv("MMDEMO_DATABASE_URL", raising=False)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    return data, mirror


def snapshot(store) -> dict[str, tuple[dict, bytes]]:
    out = {}
    for c in store.scan(include_deleted=True):
        full = store.get(c.id)
        out[c.id] = (full.to_dict(history=True), store.image_bytes(c.image_hash))
    return out


def save_fifty(store) -> list[str]:
    ids = [store.add(make_image(i % 45), f"a small red circle {i}", f"a large red circle {i}", model="shapes-cross",
                     task="vqa" if i % 5 == 0 else "caption", question="what is it?" if i % 5 == 0 else None,
                     annotator=f"ann{i % 3}", note="n" if i % 2 else None,
                     decoding={"strategy": "beam", "max_new_tokens": 20, "beams": 3} if i % 4 == 0 else None)
           for i in range(50)]       # 45 distinct images: some shared
    for i in range(0, 50, 7):
        store.update(ids[i], f"a large blue circle {i}", "ben", note="second look")
        store.update(ids[i], f"a large blue square {i}", "cleo")
    store.delete(ids[3], "ben")
    store.delete(ids[4], "ben")
    store.restore(ids[4])
    return ids


def test_fifty_corrections_come_back_byte_for_byte_after_the_data_folder_is_deleted(env):
    data, mirror = env
    store = open_store()
    ids = save_fifty(store)
    before = snapshot(store)
    store.close()
    assert len(before) == 50 and before[ids[0]][0]["version"] == 3 and before[ids[3]][0]["deleted"]

    shutil.rmtree(data)
    store = open_store()
    try:
        after = snapshot(store)
        assert store.count(include_deleted=True) == 50 and store.count() == 49
        assert after.keys() == before.keys()
        for cid, (row, png) in before.items():
            assert after[cid][0] == row, cid             # every field, times to the microsecond, all versions
            assert after[cid][1] == png                  # the image, byte for byte
        assert [v["corrected"] for v in after[ids[7]][0]["history"]] == \
            ["a large red circle 7", "a large blue circle 7", "a large blue square 7"]
        # a new save after the restore goes on as before, and reaches the mirror too
        new = store.add(make_image(99), "x", "y", model="shapes-cross")
        assert store.get(new).version == 1
    finally:
        store.close()
    assert any(r["id"] == new for r in latest_records(mirror))


def test_a_store_that_has_rows_is_not_restored_into(env):
    data, mirror = env
    with open_store() as store:
        save_fifty(store)
    with open_store() as store:                          # the data folder is still there: nothing added twice
        assert store.count(include_deleted=True) == 50


def test_the_mirror_layout(env):
    data, mirror = env
    with open_store() as store:
        cid = store.add(make_image(1), "a", "b", model="m", annotator="ana")
        store.update(cid, "c", "ben")
        h = store.get(cid).image_hash
        png = store.image_bytes(h)
    shards = list((mirror / "data").glob("corrections-*.jsonl"))
    assert len(shards) == 1
    lines = [json.loads(x) for x in shards[0].read_text(encoding="utf-8").splitlines()]
    assert [(x["id"], x["version"]) for x in lines] == [(cid, 1), (cid, 2)]
    assert [v["annotator"] for v in lines[1]["history"]] == ["ana", "ben"] and lines[1]["saved_at"].endswith("Z")
    assert image_path(mirror, h) == mirror / "images" / h[:2] / f"{h}.png"
    assert image_path(mirror, h).read_bytes() == png
    assert list((mirror / "images").rglob("*.png")) == [image_path(mirror, h)]    # written once


def test_older_row_only_shards_and_cut_lines_still_restore(env, tmp_path):
    data, mirror = env
    with open_store(sync=None) as store:
        cid = store.add(make_image(2), "a", "b", model="m", annotator="ana")
        row = store.get(cid).to_dict()                   # the old format: no history, no saved_at
        png = store.image_bytes(row["image_hash"])
    old = mirror / "data" / "host-1-abc"
    old.mkdir(parents=True)
    (old / "corrections.jsonl").write_text(json.dumps(row) + "\n" + '{"id": "cut mid-wri', encoding="utf-8")
    image_path(mirror, row["image_hash"]).parent.mkdir(parents=True)
    image_path(mirror, row["image_hash"]).write_bytes(png)
    shutil.rmtree(data)
    with open_store() as store:
        c = store.get(cid)
        assert (c.corrected, c.annotator, c.version, len(c.history)) == ("b", "ana", 1, 1)
        assert store.image_bytes(c.image_hash) == png


def test_a_repo_id_restores_from_snapshot_download_and_pushes_with_commit_scheduler(env, monkeypatch, tmp_path):
    """The hub side, with huggingface_hub's two calls replaced (no network): what they are asked for."""
    data, mirror = env
    with open_store() as store:                          # a dataset folder made in folder mode
        save_fifty(store)
    shutil.rmtree(data)
    calls = {}

    class FakeScheduler:
        def __init__(self, **kw):
            calls["scheduler"] = kw

        def trigger(self):
            class Done:
                def result(self):
                    calls["pushed"] = True
            return Done()

        def stop(self):
            pass

    def fake_snapshot_download(repo_id, **kw):
        calls["download"] = (repo_id, kw)
        return str(mirror)

    import huggingface_hub
    monkeypatch.setattr(huggingface_hub, "CommitScheduler", FakeScheduler)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot_download)
    monkeypatch.setenv("MMDEMO_HUB_DATASET", "ana/corrections")
    monkeypatch.setenv("HF_TOKEN", "hf_test")
    with open_store() as store:
        assert store.count(include_deleted=True) == 50
    assert calls["download"] == ("ana/corrections", {"repo_type": "dataset", "token": "hf_test",
                                                      "allow_patterns": hub_sync.PATTERNS})
    kw = calls["scheduler"]
    assert (kw["repo_id"], kw["repo_type"], kw["path_in_repo"]) == ("ana/corrections", "dataset", "")
    assert Path(kw["folder_path"]) == data / "hub_mirror" and calls["pushed"]


def test_what_counts_as_a_folder():
    assert is_folder("/srv/corrections") and is_folder("./mirror") and is_folder("~/mirror")
    assert is_folder("a/b/c")
    assert not is_folder("ana/corrections")


def test_no_token_for_a_repo_id_means_no_sync(monkeypatch, tmp_path):
    monkeypatch.setenv("MMDEMO_HUB_DATASET", "ana/corrections")
    monkeypatch.delenv("HF_TOKEN", raising=False)
    assert HubSync.from_env(tmp_path) is None


def test_a_store_that_keeps_images_in_its_database_restores_them_too(env):
    """PostgreSQL and in-memory SQLite keep image bytes in a table: the restore fills that table."""
    data, mirror = env
    with open_store() as store:
        save_fifty(store)
        before = snapshot(store)
    with open_store("sqlite://") as memory:              # empty, images in the database
        assert snapshot(memory) == before


# --- campaigns ------------------------------------------------------------------------------------------------
def run_campaigns(store) -> None:
    """Two campaigns worked on by a team: overlap, review, a skip kept and one taken back, a resubmission."""
    store.create_campaign("audit", model="shapes-cross", task="vqa", questions=["what color is it?"], overlap=2,
                          order="random", review=True, instructions="fix colours", seed=3)
    store.set_model_revision("audit", "rev-7")
    store.add_tasks("audit", [{"image": make_image(200 + i), "image_path": f"a{i}.png", "question": "what color is it?",
                               "model_output": f"red {i}", "token_probs": [0.5 + i / 20], "tokens": ["red"]}
                              for i in range(6)])
    store.create_campaign("captions", model="shapes-cross", order="uncertainty")
    store.add_tasks("captions", [{"image": make_image(300 + i), "model_output": f"a small circle {i}",
                                  "token_probs": [0.9 - i / 10, 0.8], "decoding": {"strategy": "greedy"}}
                                 for i in range(8)])
    for who in ("ana", "ben", "ana", "ben", "cleo"):
        t = store.next_task("audit", who)
        store.submit_task(t.id, f"blue by {who} {t.id}", who)
    skipped = store.next_task("audit", "cleo")
    store.skip_task(skipped.id, "cleo")
    t = store.next_task("captions", "dan")
    store.skip_task(t.id, "dan")
    again = store.previous_task("captions", "dan")                       # back to the skipped task, then submit it
    store.submit_task(again.id, "a large circle", "dan")
    first = store.submit_task(store.next_task("captions", "dan").id, "a small square", "dan")
    store.submit_task(store.task(store.submission(first)["task_id"]).id, "a small blue square", "dan")  # version 2
    queue = store.review_queue("audit")
    store.review_task(queue[0]["submissions"][0]["correction_id"], "approve", "rev")
    store.review_task(queue[0]["submissions"][1]["correction_id"], "reject", "rev")
    store.review_task(queue[1]["submissions"][0]["correction_id"], "edit", "rev", corrected="green")


def campaign_snapshot(store) -> dict:
    """Everything a campaign shows, with database ids replaced by what names a task."""
    out = {}
    for c in store.list_campaigns():
        name = c.name
        key = {}
        subs = store.campaign_submissions(name)
        for s in subs:
            key[s["task_id"]] = (s["image_hash"], s["question"])
        status = store.campaign_status(name)
        queue = store.review_queue(name)
        out[name] = {
            "campaign": {k: v for k, v in c.to_dict().items() if k != "id"},
            "counts": store.campaign_counts(name), "status": status,
            "submissions": [{**{k: v for k, v in s.items() if k != "task_id"}, "task": key[s["task_id"]],
                             **{k: store.submission(s["correction_id"])[k] for k in ("history", "version")}}
                            for s in subs],
            "queue": [{**{k: v for k, v in q.items() if k != "task_id"}, "task": key[q["task_id"]]} for q in queue],
            "images": {s["image_hash"]: store.image_bytes(s["image_hash"]) for s in subs},
            "next": {who: _task_view(store.next_task(name, who)) for who in ("ana", "ben", "cleo", "dan", "eve")},
        }
    return out


def _task_view(t) -> dict | None:
    if t is None:
        return None
    return {k: v for k, v in t.__dict__.items() if k not in ("id", "lease_until")}


def test_campaigns_come_back_after_the_data_folder_is_deleted(env):
    data, mirror = env
    with open_store() as store:
        run_campaigns(store)
        corrections = snapshot(store)
        before = campaign_snapshot(store)
    assert before["audit"]["campaign"]["model_revision"] == "rev-7"
    assert before["audit"]["counts"]["tasks_done"] == 2 and before["audit"]["counts"]["tasks"] == 6
    assert {s["status"] for s in before["audit"]["submissions"]} == {"approved", "rejected", "submitted"}
    assert before["captions"]["submissions"][-1]["history"][-1]["corrected"] == "a small blue square"
    assert before["audit"]["next"]["cleo"] is not None and before["captions"]["next"]["dan"] is not None

    shutil.rmtree(data)
    with open_store() as store:
        assert snapshot(store) == corrections
        assert campaign_snapshot(store) == before         # the queue hands out the same next tasks too


def test_campaigns_restore_into_postgresql_and_into_a_database_that_keeps_images(env, store_url):
    """Mirror records name campaigns and tasks, not database ids: a restore into any backend is the same campaign."""
    data, mirror = env
    with open_store() as store:
        run_campaigns(store)
        before = campaign_snapshot(store)
    for n, url in enumerate((store_url, "sqlite://")):
        with open_store(url) as other:
            assert {k: v for k, v in campaign_snapshot(other).items() if not k.startswith("after")} == before
            other.create_campaign(f"after the restore {n}", model="m")   # new rows get fresh ids (and are mirrored)
            other.add_tasks(f"after the restore {n}", [{"image": make_image(999), "model_output": "x"}])
            assert other.next_task(f"after the restore {n}", "ana").model_output == "x"
