"""`explain` and `eval-explain` on the command line: JSON shapes, the overlay file, bad input -> exit 2, one line."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from helpers import require_weights
from mmdemo.cli import main
from mmdemo.models.base import Caption
from mmdemo.world.render import render
from mmdemo.world.scene import sample_scene
from helpers import tiny_model as build_tiny

KEYS = {"model", "method", "target", "grid", "map", "seconds", "out"}


@pytest.fixture(scope="module")
def image_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("img") / "scene.png"
    render(sample_scene(np.random.default_rng(1), 120, 90, n_objects=2)).save(path)
    return path


@pytest.fixture
def tiny_model(monkeypatch):
    """A tiny random model that captions every image "a large red circle" (a random net's own caption is noise)."""
    model = build_tiny("tiny-cross", "cross", 3, scaled=True)
    model.caption = lambda images, **kw: [Caption("a large red circle", [("a", 0.5)] * 4) for _ in images]
    monkeypatch.setattr("mmdemo.cli.explain.load_model", lambda args: model)
    return model


def run_main(capsys, *args):
    code = main(list(map(str, args)))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_explain_answer_json(capsys, tiny_model, image_path, tmp_path):
    out_png = tmp_path / "o.png"
    code, out, err = run_main(capsys, "explain", image_path, "--question", "what color is the circle?",
                              "--method", "ig", "--option", "steps=8", "--out", out_png, "--json")
    assert code == 0, err
    payload = json.loads(out)
    assert KEYS <= set(payload) and payload["question"] == "what color is the circle?"
    assert payload["model"] == "tiny-cross" and payload["method"] == "ig" and payload["out"] == str(out_png)
    assert payload["target"] == tiny_model.answer([Image.open(image_path)], ["what color is the circle?"])[0].answer
    grid = np.array(payload["map"])
    assert payload["grid"] == [8, 8] and grid.shape == (8, 8)
    assert grid.min() >= 0 and grid.max() == pytest.approx(1.0)
    assert Image.open(out_png).size == (120, 90)


def test_explain_caption_token_and_text(capsys, tiny_model, image_path, tmp_path):
    code, out, err = run_main(capsys, "explain", image_path, "--token", "1",
                              "--method", "attention", "--out", tmp_path / "a.png", "--json")
    assert code == 0, err
    payload = json.loads(out)
    assert payload["target"] == "a large red circle" and payload["token"] == 1 and payload["grid"] == [8, 8]
    code, out, err = run_main(capsys, "explain", image_path, "--question", "what color is the circle?",
                              "--target", "red", "--method", "text-ig", "--out", tmp_path / "t.png", "--json")
    assert code == 0, err
    words = json.loads(out)["text"]
    assert [w["token"] for w in words] == ["what", "color", "is", "the", "circle", "?"]
    code, out, err = run_main(capsys, "explain", image_path, "--target", "a large red circle",
                              "--out", tmp_path / "h.png")
    assert code == 0 and "wrote" in out and not out.lstrip().startswith("{")


def test_explain_modality_json(capsys, tiny_model, image_path, tmp_path):
    code, out, err = run_main(capsys, "explain", image_path, "--question", "is there a red star?", "--target", "no",
                              "--method", "modality", "--option", "samples=2", "--out", tmp_path / "m.png", "--json")
    assert code == 0, err
    payload = json.loads(out)
    assert {"image_share", "text_share"} <= set(payload)
    assert payload["image_share"] + payload["text_share"] == pytest.approx(1.0, abs=1e-3)
    assert (tmp_path / "m.png").stat().st_size > 0


@pytest.mark.parametrize("args, expect", [
    (["--method", "nope"], "unknown explanation method 'nope'"),
    (["--method", "rollout"], "cannot run 'rollout'"),
    (["--question", "what?", "--token", "2"], "--token picks a caption token"),
    (["--question", "   "], "the question is empty"),
    (["--option", "steps"], "KEY=VALUE"),
    (["--method", "ig", "--option", "stpes=3"], "no option stpes"),
    (["--token", "9"], "out of range"),
    (["--target", "a red star", "--token", "1"], "not allowed with argument --target"),
])
def test_explain_bad_input_exits_2_with_one_line(capsys, tiny_model, image_path, tmp_path, args, expect):
    code, out, err = run_main(capsys, "explain", image_path, *args, "--out", tmp_path / "x.png")
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and expect in err, err


def test_explain_out_folder_must_exist(capsys, tiny_model, image_path, tmp_path):
    code, _, err = run_main(capsys, "explain", image_path, "--out", tmp_path / "no" / "x.png")
    assert code == 2 and "does not exist" in err


def test_eval_explain_json(capsys, tiny_model):
    code, out, err = run_main(capsys, "eval-explain", "--methods", "attention,ig", "--n", "6", "--batch", "4",
                              "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["questions"] == 6 and set(report["methods"]) == {"attention", "ig"}
    for row in report["methods"].values():
        assert {"pointing_game", "mass_inside", "deletion_auc", "insertion_auc", "random_deletion_auc",
                "random_insertion_auc", "seconds_per_map"} <= set(row)
        assert 0 <= row["pointing_game"] <= 1 and 0 <= row["mass_inside"] <= 1
    code, out, _ = run_main(capsys, "eval-explain", "--methods", "attention", "--n", "3")
    assert code == 0 and "pointing" in out and "attention" in out


def test_explain_subprocess_on_the_trained_model(image_path, tmp_path):
    require_weights("shapes-cross")
    out_png = tmp_path / "overlay.png"
    res = subprocess.run([sys.executable, "-m", "mmdemo", "explain", str(image_path), "--question",
                          "what color is the circle?", "--method", "gradcam", "--out", str(out_png), "--json"],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    payload = json.loads(res.stdout)
    assert KEYS <= set(payload) and payload["model"] == "shapes-cross" and payload["grid"] == [8, 8]
    assert Image.open(out_png).size == (120, 90)
