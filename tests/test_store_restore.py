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
