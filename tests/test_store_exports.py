"""Exports (CSV, JSON Lines, COCO, Parquet) and COCO import: round trips on SQLite and PostgreSQL."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from PIL import Image

from mmdemo.errors import InputError
from mmdemo.store import open_store
from mmdemo.store.exports import COLUMNS, export, import_coco
from helpers import make_image

pytestmark = pytest.mark.usefixtures("store_env")

ROOT = Path(__file__).resolve().parent.parent

TEXTS = [
    'a "quoted" caption, with commas',
    "two\nlines and a trailing comma,",
    "unicode: café, 猫, Ελληνικά, emoji 🐱🚀, right-to-left עברית",
    "<script>alert('x')</script> & <b>html</b>",
    "NA",
    "   leading and trailing spaces are trimmed   ",
    "=1+1 looks like a formula",
]


@pytest.fixture
def filled(store):
    ids = []
    for i, text in enumerate(TEXTS):
        ids.append(store.add(make_image(i % 3), f"model said {i}", text, model="shapes-cross" if i % 2 else "blip",
                             model_revision="r1", task="vqa" if i == 2 else "caption",
                             question="what is it?" if i == 2 else None, annotator="ana" if i else None,
                             note="note, with \"quotes\"\nand a newline" if i == 1 else None,
                             decoding={"num_beams": i}))
    store.update(ids[0], TEXTS[0] + " (edited)", "ben")
    gone = store.add(make_image(9), "x", "deleted one", model="m")
    store.delete(gone)
    return store, ids, gone


def _expected(store, ids):
    return [store.get(i) for i in ids]


def test_csv_keeps_unicode_quotes_commas_newlines(filled, tmp_path):
    import pandas as pd

    store, ids, gone = filled
    result = export(store, "csv", tmp_path / "out.csv")
    assert result.rows == len(ids)
    df = pd.read_csv(tmp_path / "out.csv", keep_default_na=False, dtype=str)
    assert tuple(df.columns) == COLUMNS
    want = _expected(store, ids)
    assert df["id"].tolist() == ids and gone not in df["id"].tolist()
    assert df["corrected"].tolist()[:-1] == [c.corrected for c in want][:-1]
    assert df["corrected"].tolist()[-1] == "'=1+1 looks like a formula"      # shown as text in a spreadsheet
    assert df["corrected"][2] == TEXTS[2] and df["corrected"][4] == "NA" and "\n" in df["corrected"][1]
    assert df["note"][1] == 'note, with "quotes"\nand a newline'
    assert df["question"][2] == "what is it?" and df["task"][2] == "vqa"
    assert json.loads(df["decoding"][3]) == {"num_beams": 3}
    assert df["image_file"][0] == want[0].image_hash + ".png"
    assert df["version"][0] == "2" and df["deleted"].tolist() == ["False"] * len(ids)
    assert pd.to_datetime(df["created_at"], utc=True).is_monotonic_increasing


def test_jsonl(filled, tmp_path):
    store, ids, _ = filled
    export(store, "jsonl", tmp_path / "out.jsonl", include_deleted=True)
    lines = (tmp_path / "out.jsonl").read_text(encoding="utf-8").splitlines()
    rows = [json.loads(x) for x in lines]
    assert len(rows) == len(ids) + 1 and all(tuple(r) == COLUMNS for r in rows)
    assert [r["corrected"] for r in rows[:len(ids)]] == [c.corrected for c in _expected(store, ids)]
    assert rows[-1]["deleted"] is True and rows[3]["decoding"] == {"num_beams": 3}
    assert rows[0]["created_at"].endswith("Z")


def test_parquet_loads_with_documented_columns(filled, tmp_path):
    import pandas as pd

    store, ids, _ = filled
    export(store, "parquet", tmp_path / "out.parquet")
    df = pd.read_parquet(tmp_path / "out.parquet")
    assert tuple(df.columns) == COLUMNS
    assert df["id"].tolist() == ids
    assert df["corrected"].tolist() == [c.corrected for c in _expected(store, ids)]
    assert str(df["created_at"].dtype) == "datetime64[us, UTC]"
    assert df["version"].tolist()[0] == 2 and df["edit_rate"].dtype == "float64"
    assert df["image_width"].tolist() == [12] * len(ids)
    assert df["model_revision"].tolist() == ["r1"] * len(ids)


def test_parquet_loads_with_datasets(filled, tmp_path):
    datasets = pytest.importorskip("datasets")
    store, ids, _ = filled
    export(store, "parquet", tmp_path / "out.parquet")
    ds = datasets.load_dataset("parquet", data_files=str(tmp_path / "out.parquet"), split="train",
                               cache_dir=str(tmp_path / "hf"))
    assert ds.column_names == list(COLUMNS) and ds["id"] == ids


def test_empty_exports(store, tmp_path):
    import pandas as pd

    for fmt in ("csv", "jsonl", "coco", "parquet"):
        assert export(store, fmt, tmp_path / f"empty.{fmt}").rows == 0
    assert tuple(pd.read_parquet(tmp_path / "empty.parquet").columns) == COLUMNS
    assert tuple(pd.read_csv(tmp_path / "empty.csv").columns) == COLUMNS


def test_export_filters_and_bad_format(filled, tmp_path):
    store, ids, _ = filled
    assert export(store, "jsonl", tmp_path / "a.jsonl", model="blip").rows == 4
    assert export(store, "jsonl", tmp_path / "b.jsonl", task="vqa").rows == 1
    with pytest.raises(InputError):
        export(store, "xlsx", tmp_path / "x.xlsx")
    with pytest.raises(InputError):
        export(store, "csv", tmp_path)
    assert not list(tmp_path.glob(".*tmp*"))


def test_coco_round_trip(filled, tmp_path, store_url):
    store, ids, _ = filled
    result = export(store, "coco", tmp_path / "coco" / "captions.json")
    doc = json.loads((tmp_path / "coco" / "captions.json").read_text(encoding="utf-8"))
    assert result.rows == len(ids) == len(doc["annotations"]) and len(doc["images"]) == 3
    by_image = {im["id"]: im for im in doc["images"]}
    for ann, c in zip(doc["annotations"], _expected(store, ids)):
        assert ann["caption"] == c.corrected and by_image[ann["image_id"]]["file_name"] == f"{c.image_hash}.png"
    assert by_image[1]["width"] == 12

    other = open_store(f"sqlite:///{tmp_path / 'other' / 'c.db'}")    # import with no images at hand
    got = import_coco(tmp_path / "coco" / "captions.json", other)
    assert (got.added, got.skipped, got.images) == (len(ids), 0, 3)
    for c in _expected(store, ids):
        d = other.get(c.id)                                  # same id, text and provenance
        assert (d.corrected, d.model_output, d.model, d.task, d.question, d.annotator, d.decoding, d.image_hash) == \
            (c.corrected, c.model_output, c.model, c.task, c.question, c.annotator, c.decoding, c.image_hash)
        assert d.created_at == c.created_at
    assert import_coco(tmp_path / "coco" / "captions.json", other).skipped == len(ids)   # idempotent
    assert other.count() == len(ids)
    other.close()


def test_coco_with_images_folder(filled, tmp_path):
    store, ids, _ = filled
    result = export(store, "coco", tmp_path / "ds" / "captions.json", images_dir=tmp_path / "ds" / "images")
    assert result.images == 3 and result.missing_images == 0
    files = sorted(p.name for p in (tmp_path / "ds" / "images").iterdir())
    assert files == sorted(f"{store.get(i).image_hash}.png" for i in ids[:3])
    fresh = open_store("sqlite://")
    import_coco(tmp_path / "ds" / "captions.json", fresh)    # finds ds/images/<hash>.png
    c = store.get(ids[1])
    assert fresh.image_bytes(c.image_hash) == store.image_bytes(c.image_hash)
    assert fresh.get(ids[1]).image_width == 12
    fresh.close()


def test_import_foreign_coco(store, tmp_path):
    folder = tmp_path / "foreign"
    folder.mkdir()
    Image.fromarray(make_image(30)).save(folder / "000001.jpg", quality=95)
    Image.fromarray(make_image(31)).save(folder / "000002.png")
    doc = {"images": [{"id": 1, "file_name": "000001.jpg"}, {"id": 2, "file_name": "000002.png"}],
           "annotations": [{"id": 10, "image_id": 1, "caption": "A cat on a mat."},
                           {"id": 11, "image_id": 1, "caption": "A second caption."},
                           {"id": 12, "image_id": 2, "caption": "Noise, mostly."}]}
    (folder / "captions.json").write_text(json.dumps(doc))
    got = import_coco(folder / "captions.json", store, annotator="coco")
    assert (got.added, got.images) == (3, 2)
    rows = store.list()
    assert {c.corrected for c in rows} == {"A cat on a mat.", "A second caption.", "Noise, mostly."}
    assert {(c.model, c.annotator, c.model_output, c.task) for c in rows} == {("coco-import", "coco", "", "caption")}
    assert all(store.image_bytes(c.image_hash) for c in rows)
    assert import_coco(folder / "captions.json", store).added == 3        # no provenance ids: added again


def test_import_refuses_bad_files_before_writing(store, tmp_path):
    (tmp_path / "a.json").write_text(json.dumps({
        "images": [{"id": 1, "file_name": "here.png"}, {"id": 2, "file_name": "../outside.png"}],
        "annotations": [{"id": 1, "image_id": 1, "caption": "ok"}, {"id": 2, "image_id": 2, "caption": "x"}]}))
    Image.fromarray(make_image(32)).save(tmp_path / "here.png")
    (tmp_path / "sub").mkdir()
    Image.fromarray(make_image(33)).save(tmp_path / "outside.png")
    (tmp_path / "sub" / "a.json").write_text((tmp_path / "a.json").read_text())
    Image.fromarray(make_image(32)).save(tmp_path / "sub" / "here.png")
    with pytest.raises(InputError, match="not found"):          # ../ does not escape the image folders
        import_coco(tmp_path / "sub" / "a.json", store)
    assert store.count() == 0
    bad = {"not coco": []}, {"images": [], "annotations": [{"image_id": 5, "caption": "x"}]}, \
        {"images": [{"id": 1, "file_name": "here.png"}], "annotations": [{"image_id": 1, "caption": ""}]}, \
        {"images": [{"id": 1, "file_name": "here.png"}], "annotations": [{"image_id": 1, "caption": "x" * 5000}]}
    for i, doc in enumerate(bad):
        (tmp_path / f"bad{i}.json").write_text(json.dumps(doc))
        with pytest.raises(InputError):
            import_coco(tmp_path / f"bad{i}.json", store)
    (tmp_path / "broken.json").write_text("{not json")
    with pytest.raises(InputError):
        import_coco(tmp_path / "broken.json", store)
    with pytest.raises(InputError):
        import_coco(tmp_path / "missing.json", store)
    assert store.count() == 0


def _run_mmdemo(args: list[str], env: dict[str, str]) -> tuple[subprocess.CompletedProcess, list[str]]:
    """Run `python -m mmdemo ARGS`; also report which heavy packages it imported."""
    probe = ("import json, runpy, sys\n"
             "sys.argv = ['mmdemo'] + sys.argv[1:]\n"
             "try:\n    runpy.run_module('mmdemo', run_name='__main__', alter_sys=True)\n"
             "except SystemExit as e:\n    rc = e.code\n"
             "heavy = sorted(m for m in ('torch', 'gradio', 'transformers', 'captum', 'timm') if m in sys.modules)\n"
             "print('HEAVY=' + json.dumps(heavy), file=sys.stderr)\n"
             "sys.exit(rc)\n")
    proc = subprocess.run([sys.executable, "-c", probe, *args], capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=60)
    marker = [ln for ln in proc.stderr.splitlines() if ln.startswith("HEAVY=")]
    return proc, json.loads(marker[-1][6:]) if marker else ["?"]


def test_cli_export_and_import_without_torch_or_gradio(tmp_path):
    import mmdemo.cli  # noqa: F401
    env = {**os.environ, "MMDEMO_DATA_DIR": str(tmp_path / "data"), "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    env.pop("MMDEMO_DATABASE_URL", None)
    with open_store(str(tmp_path / "data" / "corrections.db")) as s:
        cid = s.add(make_image(40), "a cat", "a small cat", model="m")
    proc, heavy = _run_mmdemo(["export", "--format", "coco", "--out", str(tmp_path / "c.json"),
                               "--images", str(tmp_path / "imgs"), "--json"], env)
    assert proc.returncode == 0, proc.stderr
    assert heavy == []
    assert json.loads(proc.stdout)["rows"] == 1 and len(list((tmp_path / "imgs").iterdir())) == 1
    env["MMDEMO_DATA_DIR"] = str(tmp_path / "data2")
    proc, heavy = _run_mmdemo(["import-coco", str(tmp_path / "c.json"), "--images", str(tmp_path / "imgs"), "--json"],
                              env)
    assert proc.returncode == 0 and heavy == [] and json.loads(proc.stdout)["added"] == 1
    proc, heavy = _run_mmdemo(["corrections", "--json"], env)
    assert heavy == [] and json.loads(proc.stdout)[0]["id"] == cid
    proc, heavy = _run_mmdemo(["export", "--format", "xlsx", "--out", "x"], env)
    assert proc.returncode == 2 and heavy == []
    proc, _ = _run_mmdemo(["import-coco", str(tmp_path / "nope.json")], env)
    assert proc.returncode == 2 and proc.stderr.splitlines()[0].startswith("error: no such file")
    assert str(uuid.UUID(cid)) == cid


def test_csv_cells_a_spreadsheet_would_run_are_shown_as_text(tmp_path):
    import pandas as pd

    store = open_store(f"sqlite:///{tmp_path / 'c.db'}")
    hostile = ['=HYPERLINK("http://x","click")', "+1+2", "-3", "@SUM(A1)"]   # (stored text is trimmed)
    for i, text in enumerate(hostile):
        store.add(make_image(i), "a red circle", text, model="m", annotator="=cmd", note="@note")
    export(store, "csv", tmp_path / "out.csv")
    export(store, "jsonl", tmp_path / "out.jsonl")
    df = pd.read_csv(tmp_path / "out.csv", keep_default_na=False, dtype=str)
    assert df["corrected"].tolist() == ["'" + t for t in hostile]
    assert set(df["annotator"]) == {"'=cmd"} and set(df["note"]) == {"'@note"}
    assert set(df["model_output"]) == {"a red circle"}          # ordinary text is untouched
    rows = [json.loads(x) for x in (tmp_path / "out.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [r["corrected"] for r in rows] == hostile             # JSONL keeps the text exactly
