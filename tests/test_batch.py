"""`python -m mmdemo batch`: world scenes and broken files through caption, ask and explain on the local engine and
on Ray; rows equal to the one-image commands; reruns and killed jobs; input formats; campaigns with a fake store."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from helpers import require_weights
from mmdemo.cli import main
from mmdemo.config import ASSETS
from mmdemo.images import content_hash, load_image
from mmdemo.models.base import Decoding
from mmdemo.world.render import render
from mmdemo.world.scene import sample_scene

ROOT = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
N_SCENES = 14
BROKEN = {"truncated.png": "truncated or corrupt", "text.jpg": "not an image", "empty.jpg": "empty"}
QUESTIONS = ["what color is the circle?", "how many objects are there?"]


def cli(capsys, *args):
    code = main([str(a) for a in args])
    out = capsys.readouterr()
    return code, out.out, out.err


def run_json(capsys, *args) -> dict:
    code, out, err = cli(capsys, *args, "--json")
    assert code == 0, err
    return json.loads(out)


def subprocess_cli(*args, timeout=180):
    return subprocess.run([sys.executable, "-m", "mmdemo", *map(str, args)], capture_output=True, text=True,
                          env=ENV, timeout=timeout)


def table(out: Path) -> pd.DataFrame:
    return pd.read_parquet(out).sort_values(["image_path", "question"], na_position="first").reset_index(drop=True)


@pytest.fixture(scope="module")
def model():
    require_weights("shapes-cross")
    import mmdemo

    return mmdemo.load("shapes-cross", device="cpu")


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """N_SCENES world scenes (two sizes) and three broken files in one folder."""
    folder = tmp_path_factory.mktemp("scenes")
    scenes = []
    for seed in range(N_SCENES):
        path = folder / f"scene{seed:02d}.png"
        render(sample_scene(seed, 128 if seed % 2 else 96)).save(path)
        scenes.append(path)
    good = scenes[0].read_bytes()
    (folder / "truncated.png").write_bytes(good[:len(good) // 3])
    (folder / "text.jpg").write_text("just some text, not a picture")
    (folder / "empty.jpg").write_bytes(b"")
    return folder, scenes


@pytest.fixture(scope="module")
def caption_out(inputs, tmp_path_factory):
    """One local `batch caption` run over the inputs, shared by the tests that only read it."""
    require_weights("shapes-cross")
    out = tmp_path_factory.mktemp("caption") / "out"
    code = main(["batch", "caption", "--input", str(inputs[0]), "--model", "shapes-cross", "--out", str(out),
                 "--batch-size", "4", "--shard-rows", "5", "--json"])
    assert code == 0
    return out


# --- caption on the local engine --------------------------------------------------------------------------------
def test_local_caption_rows_match_the_model(inputs, caption_out, model):
    folder, scenes = inputs
    df = table(caption_out)
    assert len(df) == N_SCENES + len(BROKEN)
    assert df.image_path.is_unique and df.hash.is_unique
    assert len(list(caption_out.glob("*.parquet"))) == 4                  # 17 rows, 5 a shard
    good = df[df.error.isna()].set_index("image_path")
    assert sorted(good.index) == [str(p) for p in scenes]
    for path in scenes:
        image = load_image(path)
        row = good.loc[str(path)]
        expected = model.caption([image])[0]
        assert row.caption == expected.text
        assert list(row.tokens) == [t for t, _ in expected.tokens]
        np.testing.assert_allclose(row.token_probs, [p for _, p in expected.tokens], rtol=1e-4)
        assert row.hash == content_hash(image)
        assert row.model == "shapes-cross" and row.model_revision == model.info.revision and row.task == "caption"
        assert json.loads(row.decoding) == Decoding().to_dict()
        assert row.seconds > 0 and pd.isna(row.method) and row["map"] is None
    bad = df[df.error.notna()].set_index("image_path")
    for name, reason in BROKEN.items():
        row = bad.loc[str(folder / name)]
        assert reason in row.error and pd.isna(row.caption)
        assert row.hash == hashlib.sha256((folder / name).read_bytes()).hexdigest()


def test_captions_equal_the_caption_command(inputs, caption_out):
    df = table(caption_out).set_index("image_path")
    for path in inputs[1][:2]:
        out = subprocess_cli("caption", path, "--model", "shapes-cross", "--json")
        assert out.returncode == 0, out.stderr
        assert json.loads(out.stdout)["caption"] == df.loc[str(path), "caption"]


def test_output_loads_with_datasets(caption_out):
    datasets = pytest.importorskip("datasets")
    ds = datasets.load_dataset("parquet", data_files=str(caption_out / "*.parquet"), split="train")
    assert ds.num_rows == N_SCENES + len(BROKEN)
    assert {"image_path", "hash", "caption", "token_probs", "error", "decoding"} <= set(ds.column_names)


def test_summary_json_and_line(inputs, tmp_path, capsys):
    require_weights("shapes-cross")
    out = tmp_path / "out"
    summary = run_json(capsys, "batch", "caption", "--input", inputs[0], "--model", "shapes-cross", "--out", out)
    assert set(summary) == {"rows", "done", "skipped", "errors", "seconds", "images_per_s", "out"}
    assert (summary["rows"], summary["done"], summary["skipped"], summary["errors"]) == (N_SCENES + 3, N_SCENES, 0, 3)
    assert summary["out"] == str(out) and summary["images_per_s"] > 0
    code, text, _ = cli(capsys, "batch", "caption", "--input", inputs[0], "--model", "shapes-cross", "--out", out)
    assert code == 0 and text.startswith(f"done 0, skipped {N_SCENES + 3}, errors 0 in ")
    assert text.strip().endswith(f"{N_SCENES + 3} rows in {out}")


# --- nothing lost, nothing twice ---------------------------------------------------------------------------------
def test_rerun_skips_everything(inputs, caption_out, capsys):
    files = sorted(caption_out.glob("*.parquet"))
    summary = run_json(capsys, "batch", "caption", "--input", inputs[0], "--model", "shapes-cross",
                       "--out", caption_out)
    counts = (summary["rows"], summary["done"], summary["skipped"], summary["errors"])
    assert counts == (N_SCENES + 3, 0, N_SCENES + 3, 0)
    assert sorted(caption_out.glob("*.parquet")) == files


def test_stopped_job_resumes_without_duplicates(inputs, caption_out, tmp_path, capsys):
    from mmdemo.batch import Job, run

    out = tmp_path / "out"
    run(Job("caption", model="shapes-cross"), inputs[0], out, batch_size=2, shard_rows=4, limit=9)  # "killed"
    assert len(pd.read_parquet(out)) == 8                                   # two whole shards; the third was lost
    summary = run_json(capsys, "batch", "caption", "--input", inputs[0], "--model", "shapes-cross", "--out", out)
    assert summary["skipped"] == 8 and summary["rows"] == N_SCENES + 3
    df, full = table(out), table(caption_out)
    assert df.hash.is_unique and df.image_path.is_unique
    assert df.caption.tolist() == full.caption.tolist() and df.error.tolist() == full.error.tolist()


def test_deleted_shard_is_computed_again(inputs, caption_out, tmp_path, capsys):
    out = tmp_path / "out"
    shutil.copytree(caption_out, out)
    victim = sorted(out.glob("*.parquet"))[1]
    lost = len(pd.read_parquet(victim))
    victim.unlink()
    (out / "garbage.parquet").write_bytes(b"PAR1 cut short")                 # a writer killed mid-file
    summary = run_json(capsys, "batch", "caption", "--input", inputs[0], "--model", "shapes-cross", "--out", out)
    assert summary["done"] + summary["errors"] == lost and summary["rows"] == N_SCENES + 3
    assert (out / ".broken-garbage.parquet").exists() and not (out / "garbage.parquet").exists()
    df = table(out)
    assert df.hash.is_unique and df.caption.tolist() == table(caption_out).caption.tolist()


def test_killed_process_loses_at_most_its_open_shard(inputs, caption_out, tmp_path):
    require_weights("shapes-cross")
    out = tmp_path / "out"
    args = [sys.executable, "-m", "mmdemo", "batch", "caption", "--input", str(inputs[0]), "--model", "shapes-cross",
            "--out", str(out), "--batch-size", "1", "--shard-rows", "2"]
    proc = subprocess.Popen(args, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while proc.poll() is None and not list(out.glob("*.parquet")) and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    written = len(pd.read_parquet(out)) if list(out.glob("*.parquet")) else 0
    out2 = subprocess_cli(*args[3:], "--json")
    assert out2.returncode == 0, out2.stderr
    summary = json.loads(out2.stdout)
    assert summary["skipped"] == written and summary["rows"] == N_SCENES + 3
    df = table(out)
    assert df.hash.is_unique and df.caption.tolist() == table(caption_out).caption.tolist()


def test_an_image_over_the_pixel_limit_is_an_error_row_and_the_job_goes_on(inputs, tmp_path, monkeypatch, capsys):
    require_weights("shapes-cross")
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(inputs[1][1], folder / "small.png")                           # 128 x 128
    render(sample_scene(7, 400)).save(folder / "huge.png")                    # 400 x 400: over the limit set below
    monkeypatch.setenv("MMDEMO_MAX_PIXELS", str(200 * 200))
    summary = run_json(capsys, "batch", "caption", "--input", folder, "--model", "shapes-cross",
                       "--out", tmp_path / "o")
    assert (summary["done"], summary["errors"]) == (1, 1)
    df = table(tmp_path / "o").set_index("image_path")
    assert "MMDEMO_MAX_PIXELS" in df.loc[str(folder / "huge.png"), "error"]
    assert df.loc[str(folder / "small.png"), "caption"]


def test_same_image_twice_is_one_row(inputs, tmp_path, capsys):
    require_weights("shapes-cross")
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(inputs[1][0], folder / "a.png")
    shutil.copy(inputs[1][0], folder / "b.png")
    summary = run_json(capsys, "batch", "caption", "--input", folder, "--model", "shapes-cross",
                       "--out", tmp_path / "o")
    assert (summary["rows"], summary["done"], summary["skipped"]) == (1, 1, 1)


# --- ask and explain ---------------------------------------------------------------------------------------------
def test_ask_one_row_per_image_and_question(inputs, tmp_path, model, capsys):
    folder, scenes = inputs
    qfile = tmp_path / "questions.txt"
    qfile.write_text(f"# asked of every image\n{QUESTIONS[1]}\n\n")
    out = tmp_path / "out"
    summary = run_json(capsys, "batch", "ask", "--input", folder, "--model", "shapes-cross", "--out", out,
                       "--question", QUESTIONS[0], "--questions", qfile, "--batch-size", "5")
    assert (summary["rows"], summary["errors"]) == (2 * (N_SCENES + 3), 2 * 3)
    df = table(out)
    assert not df.duplicated(["hash", "question"]).any()
    good = df[df.error.isna()]
    assert len(good) == 2 * N_SCENES and set(good.question) == set(QUESTIONS)
    for row in good.itertuples():
        expected = model.answer([load_image(row.image_path)], [row.question])[0]
        assert row.answer == expected.answer and row.prob == pytest.approx(expected.prob, rel=1e-4)
        assert [t["answer"] for t in row.top_k] == [a for a, _ in expected.top_k] and len(row.top_k) == 5
        assert list(row.tokens) == [row.answer] and pd.isna(row.decoding) and row.task == "ask"


def test_ask_without_questions_is_exit_2(inputs, tmp_path, capsys):
    code, _, err = cli(capsys, "batch", "ask", "--input", inputs[0], "--model", "shapes-cross", "--out", tmp_path / "o")
    assert code == 2 and "needs questions" in err and len(err.strip().splitlines()) == 1


def _explain_cli_map(path, *extra):
    out = subprocess_cli("explain", path, "--model", "shapes-cross", "--method", "ig", *extra,
                         "--out", Path(path).with_suffix(".overlay.png"), "--json")
    assert out.returncode == 0, out.stderr
    payload = json.loads(out.stdout)
    return payload["target"], np.array(payload["map"])


def test_explain_ig_maps_equal_the_explain_command(inputs, tmp_path, capsys):
    require_weights("shapes-cross")
    folder = tmp_path / "in"
    folder.mkdir()
    for path in inputs[1][:2]:
        shutil.copy(path, folder / path.name)
    (folder / "empty.jpg").write_bytes(b"")
    out = tmp_path / "out"
    summary = run_json(capsys, "batch", "explain", "--input", folder, "--model", "shapes-cross", "--out", out,
                       "--method", "ig")
    assert (summary["done"], summary["errors"]) == (2, 1)
    df = table(out)
    for _, row in df[df.error.isna()].iterrows():
        target, expected = _explain_cli_map(row.image_path)
        assert row.method == "ig" and row.target == target == row.caption and list(row.grid) == [8, 8]
        np.testing.assert_allclose(np.array(row["map"]).reshape(8, 8), expected, atol=6e-5)
    # the answer to a question, as `explain --question`
    out = tmp_path / "out-q"
    run_json(capsys, "batch", "explain", "--input", folder, "--model", "shapes-cross", "--out", out, "--method", "ig",
             "--question", QUESTIONS[1])
    row = table(out).dropna(subset=["map"]).iloc[0]
    target, expected = _explain_cli_map(row.image_path, "--question", QUESTIONS[1])
    assert row.target == target == row.answer and row.question == QUESTIONS[1]
    np.testing.assert_allclose(np.array(row["map"]).reshape(8, 8), expected, atol=6e-5)


@pytest.mark.parametrize("args, message", [
    (["--method", "modality"], "not a map"),
    (["--method", "nonsense"], "unknown explanation method"),
])
def test_explain_bad_method_is_exit_2(inputs, tmp_path, capsys, args, message):
    require_weights("shapes-cross")
    code, _, err = cli(capsys, "batch", "explain", "--input", inputs[0], "--model", "shapes-cross",
                       "--out", tmp_path / "o", *args)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1


# --- inputs ------------------------------------------------------------------------------------------------------
def test_parquet_coco_and_text_lists_name_the_same_images(inputs, tmp_path):
    from mmdemo.batch import list_inputs

    folder, scenes = inputs
    expected = [{"image_path": str(p), "question": None} for p in scenes[:3]]
    names = [p.name for p in scenes[:3]]
    pd.DataFrame({"image_path": names}).to_parquet(folder / "list.parquet")
    (folder / "coco.json").write_text(json.dumps({"images": [{"id": i, "file_name": n} for i, n in enumerate(names)]}))
    (folder / "list.txt").write_text("\n".join(names) + "\n")
    for name in ("list.parquet", "coco.json", "list.txt"):
        assert list_inputs(folder / name) == expected, name
    pd.DataFrame({"image": [{"path": str(scenes[0]), "bytes": None}], "question": [QUESTIONS[0]]}).to_parquet(
        tmp_path / "hf.parquet")
    assert list_inputs(tmp_path / "hf.parquet") == [{"image_path": str(scenes[0]), "question": QUESTIONS[0]}]


@pytest.mark.parametrize("make, args, message", [
    (lambda tmp: tmp / "missing", [], "no such input"),
    (lambda tmp: (tmp / "empty").mkdir() or tmp / "empty", [], "no images found"),
    (lambda tmp: pd.DataFrame({"x": [1]}).to_parquet(tmp / "t.parquet") or tmp / "t.parquet", [], "no column"),
    (lambda tmp: tmp, ["--engine", "spark"], "invalid choice"),
    (lambda tmp: tmp, ["--batch-size", "0"], "must be 1 or more"),
])
def test_bad_input_is_exit_2_with_one_line(tmp_path, capsys, make, args, message):
    source = make(tmp_path)
    code, out, err = cli(capsys, "batch", "caption", "--input", source, "--out", tmp_path / "o", *args)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1 and not out


def test_campaign_with_explain_is_exit_2(inputs, tmp_path, capsys):
    code, _, err = cli(capsys, "batch", "explain", "--input", inputs[0], "--out", tmp_path / "o", "--campaign", "c")
    assert code == 2 and "--campaign takes the rows of batch caption or batch ask" in err


def test_out_that_is_a_file_is_exit_2(inputs, tmp_path, capsys):
    (tmp_path / "o").write_text("")
    code, _, err = cli(capsys, "batch", "caption", "--input", inputs[0], "--out", tmp_path / "o")
    assert code == 2 and "must be a folder" in err


# --- Ray ---------------------------------------------------------------------------------------------------------
def test_cli_and_package_import_neither_torch_nor_ray():
    code = ("import sys, mmdemo.cli, mmdemo.batch; mmdemo.cli.build_parser(); "
            "print(sorted(m for m in ('torch', 'ray', 'pyarrow') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=ENV, check=True)
    assert out.stdout.strip() == "[]"


def test_ray_is_an_optional_extra_that_ci_installs():
    tomllib = pytest.importorskip("tomllib")                                 # Python 3.11+
    extra = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["ray"]
    listed = [line.strip() for line in (ROOT / "requirements-ray.txt").read_text().splitlines()
              if line.strip() and not line.startswith("#")]
    assert extra == listed == ["ray[data]>=2.9"]
    assert "pip install -q -r requirements-ray.txt" in (ROOT / ".ci" / "run").read_text()


def test_missing_ray_says_how_to_install(inputs, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)                          # `import ray` raises ImportError
    code, out, err = cli(capsys, "batch", "caption", "--input", inputs[0], "--out", tmp_path / "o", "--engine", "ray")
    assert code == 2 and not out
    assert err.strip().splitlines() == ['error: the ray engine needs Ray: pip install "mmdemo[ray]" '
                                        '(or: pip install -r requirements-ray.txt)']


@pytest.mark.parametrize("task, args, message", [
    ("caption", ["--model", "no-such-model"], "unknown model"),
    ("explain", ["--model", "shapes-cross", "--method", "nonsense"], "unknown explanation method"),
])
def test_ray_refuses_before_starting(inputs, tmp_path, capsys, task, args, message):
    pytest.importorskip("ray.data")
    import ray

    code, _, err = cli(capsys, "batch", task, "--input", inputs[0], "--out", tmp_path / "o", "--engine", "ray", *args)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
    assert not ray.is_initialized()


@pytest.mark.slow
def test_ray_gives_the_local_rows_and_resumes_a_local_job(inputs, caption_out, tmp_path, capsys):
    """A local job stopped after 6 rows, finished by Ray (2 actors on a local 2-CPU Ray): all rows, once each, with
    the captions of the local engine."""
    pytest.importorskip("ray.data")
    from mmdemo.batch import Job, run

    out = tmp_path / "out"
    run(Job("caption", model="shapes-cross"), inputs[0], out, batch_size=3, shard_rows=3, limit=6)
    summary = run_json(capsys, "batch", "caption", "--input", inputs[0], "--model", "shapes-cross", "--out", out,
                       "--engine", "ray", "--num-cpus", "2", "--actors", "2", "--batch-size", "4")
    assert (summary["rows"], summary["skipped"]) == (N_SCENES + 3, 6)
    assert summary["done"] + summary["errors"] == N_SCENES + 3 - 6
    df, full = table(out), table(caption_out)
    assert df.hash.is_unique
    cols = ["image_path", "hash", "caption", "error", "model", "model_revision", "decoding"]
    assert df[cols].fillna("").equals(full[cols].fillna(""))


# --- campaigns ---------------------------------------------------------------------------------------------------
class FakeStore:
    def __init__(self, campaigns: dict, with_tasks: bool = True):
        self.campaigns = campaigns
        if with_tasks:
            self.add_tasks = lambda name, items: self.campaigns[name]["tasks"].extend(items)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def campaign_status(self, name):
        if name not in self.campaigns:
            from mmdemo.store import NotFoundError
            raise NotFoundError(f"no campaign {name!r}")
        return {"name": name}

    def create_campaign(self, name, *, model, model_revision, task):
        self.campaigns[name] = {"model": model, "model_revision": model_revision, "task": task, "tasks": []}


def test_campaign_gets_the_successful_rows(inputs, caption_out, tmp_path, capsys, monkeypatch, model):
    campaigns: dict = {}
    monkeypatch.setattr("mmdemo.store.open_store", lambda *a, **k: FakeStore(campaigns))
    out = tmp_path / "out"
    shutil.copytree(caption_out, out)
    summary = run_json(capsys, "batch", "caption", "--input", inputs[0], "--model", "shapes-cross", "--out", out,
                       "--campaign", "pre")
    assert summary["skipped"] == N_SCENES + 3                              # nothing computed again, all rows passed
    df = pd.concat([pd.read_parquet(p) for p in sorted(out.glob("*.parquet"))])
    good = df[df.error.isna()]
    expected = [{"image": r.image_path, "image_path": r.image_path, "model_output": r.caption, "question": None,
                 "token_probs": list(r.token_probs)} for r in good.itertuples()]
    assert campaigns == {"pre": {"model": "shapes-cross", "model_revision": model.info.revision, "task": "caption",
                                 "tasks": expected}}
    assert [t["image_path"] for t in expected] == [str(p) for p in inputs[1]]
    # a second job into an existing campaign adds its tasks without creating it again
    qout = tmp_path / "qout"
    run_json(capsys, "batch", "ask", "--input", inputs[0], "--model", "shapes-cross", "--out", qout,
             "--question", QUESTIONS[0], "--campaign", "pre")
    added = campaigns["pre"]["tasks"][len(expected):]
    assert len(added) == N_SCENES and {t["question"] for t in added} == {QUESTIONS[0]}
    assert all(len(t["token_probs"]) == 1 for t in added)


def test_campaign_without_store_support_is_exit_2(inputs, caption_out, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("mmdemo.store.open_store", lambda *a, **k: FakeStore({}, with_tasks=False))
    out = tmp_path / "out"
    shutil.copytree(caption_out, out)
    code, _, err = cli(capsys, "batch", "caption", "--input", inputs[0], "--model", "shapes-cross", "--out", out,
                       "--campaign", "pre")
    assert code == 2 and "campaigns are not available" in err and len(err.strip().splitlines()) == 1


# --- a real photo model ------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_photo_lite_captions_real_photos(tmp_path, capsys):
    require_weights("photo-lite")
    import mmdemo

    folder = tmp_path / "photos"
    folder.mkdir()
    for name in ("chelsea.jpg", "coffee.jpg", "rocket.jpg"):
        shutil.copy(ASSETS / "photos" / name, folder / name)
    out = tmp_path / "out"
    summary = run_json(capsys, "batch", "caption", "--input", folder, "--model", "photo-lite", "--out", out,
                       "--batch-size", "2")
    assert (summary["done"], summary["errors"]) == (3, 0)
    photo = mmdemo.load("photo-lite", device="cpu")
    for row in table(out).itertuples():
        assert row.caption == photo.caption([load_image(row.image_path)])[0].text and row.model == "photo-lite"
