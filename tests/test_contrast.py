"""Contrastive targets: log p(target) - log p(contrast) under the same prefix or question, through every method
that follows the score, on the tiny ShapesNets and a tiny hub captioner."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from mmdemo.errors import InputError
from mmdemo.explain import explain, method_for
from mmdemo.explain._forward import ScoreFunction, image_baseline, prepare
from mmdemo.models.base import Target
from helpers import tiny

QUESTION = "what color is the circle?"

torch.set_num_threads(1)
CAPTION = "a large red circle to the left of a small blue star"


@pytest.fixture(scope="module")
def scene_image():
    from mmdemo.world.render import render
    from mmdemo.world.scene import sample_scene

    return render(sample_scene(np.random.default_rng(3), 96, 80, n_objects=2))


def plain_score(model, image, target, pixels=None):
    inputs = model.prepare([image], [target])
    with torch.no_grad():
        return float(model.score(inputs, pixels=pixels))


def test_contrast_scores_the_difference(scene_image):
    model = tiny("cross", seed=1)
    target = Target("token", CAPTION, token=3, contrast="square")
    inputs = prepare(model, [scene_image], [target])
    with torch.no_grad():
        both = float(ScoreFunction(model, inputs)(inputs.pixels))
    expected = (plain_score(model, scene_image, Target("token", CAPTION, token=3))
                - plain_score(model, scene_image, Target("token", CAPTION.replace("circle", "square"), token=3)))
    assert both == pytest.approx(expected, abs=1e-5)
    answer = Target("answer", "red", question=QUESTION, contrast="blue")
    inputs = prepare(model, [scene_image], [answer])
    with torch.no_grad():
        both = float(ScoreFunction(model, inputs)(inputs.pixels))
    expected = (plain_score(model, scene_image, Target("answer", "red", question=QUESTION))
                - plain_score(model, scene_image, Target("answer", "blue", question=QUESTION)))
    assert both == pytest.approx(expected, abs=1e-5)


def check_contrast_completeness(model, image, target, steps=64):
    inputs = prepare(model, [image], [target])
    fn = ScoreFunction(model, inputs)
    with torch.no_grad():
        gap = float(fn(inputs.pixels) - fn(image_baseline(inputs.pixels, "median")))
    total = float(method_for("ig", model).attribute(inputs, steps=steps).sum())
    assert abs(gap) > 1e-6, "the test needs an image that moves the difference"
    assert total == pytest.approx(gap, rel=0.05), (total, gap)


@pytest.mark.parametrize("fusion", ["cross", "early", "late"])
def test_contrastive_ig_completeness(fusion, scene_image):
    model = tiny(fusion, seed=1)
    check_contrast_completeness(model, scene_image, Target("token", CAPTION, token=3, contrast="square"))
    check_contrast_completeness(model, scene_image, Target("answer", "red", question=QUESTION, contrast="blue"))


FAST = {"ig": {"steps": 8}, "ig-pixels": {"steps": 8}, "shapley": {"samples": 1}}


@pytest.mark.parametrize("fusion", ["cross", "early"])
def test_contrast_with_itself_is_an_all_zero_map(fusion, scene_image):
    model = tiny(fusion)
    same = Target("token", CAPTION, token=3, contrast="circle")
    inputs = prepare(model, [scene_image], [same])
    for m in ("ig", "saliency", "inputxgrad", "occlusion", "relevance", "ig-pixels", "shapley"):
        raw = method_for(m, model).attribute(inputs, **FAST.get(m, {}))           # the method itself: ~0
        assert float(raw.detach().abs().max()) == pytest.approx(0.0, abs=1e-6), m
        e = explain(model, scene_image, same, m, cache=False, **FAST.get(m, {}))  # the engine: exactly 0
        assert not e.raw.any() and not e.grid.any(), m


def test_contrastive_maps_differ_from_plain_ones(scene_image):
    model = tiny("cross")
    plain = explain(model, scene_image, Target("token", CAPTION, token=3), "ig", cache=False, steps=8)
    contrast = explain(model, scene_image, Target("token", CAPTION, token=3, contrast="star"), "ig", cache=False,
                       steps=8)
    assert np.isfinite(contrast.raw).all() and contrast.raw.any()
    assert not np.allclose(plain.raw, contrast.raw)


def test_bad_contrasts_are_input_errors(scene_image):
    model = tiny("cross")
    with pytest.raises(InputError, match="does not take the place"):          # two tokens for one
        explain(model, scene_image, Target("token", CAPTION, token=3, contrast="blue star"), "ig", steps=4)
    with pytest.raises(InputError, match="cannot explain a contrast"):
        explain(model, scene_image, Target("token", CAPTION, token=3, contrast="star"), "attention")
    with pytest.raises(InputError, match="not an answer this model knows"):
        explain(model, scene_image, Target("answer", "red", question=QUESTION, contrast="pink"), "ig", steps=4)
    with pytest.raises(InputError, match="one word"):
        Target("caption", CAPTION, contrast="star")
    with pytest.raises(InputError, match="empty"):
        Target("token", CAPTION, token=1, contrast="  ")


# --- tiny hub checkpoints (test_hub's builders) ------------------------------------------------------------------
HUB = ("git", "blip-caption", "vilt", "vit-gpt2")


@pytest.fixture(scope="module")
def hub_models(tiny_hub_models):
    return tiny_hub_models


@pytest.fixture(scope="module")
def noise():
    from PIL import Image

    return Image.fromarray(np.random.default_rng(0).integers(0, 256, (30, 40, 3), dtype=np.uint8))


def hub_target(name: str, contrast: str) -> Target:
    if name == "vilt":
        return Target("answer", "red", question="what color is the cat?", contrast="two" if contrast == "blue"
                      else contrast)
    return Target("token", "a red cat", token=1, contrast=contrast)


@pytest.mark.parametrize("name", ["git", "vilt"])      # (the tiny BLIP's image hardly moves its scores)
def test_hub_contrastive_ig_completeness(hub_models, noise, name):
    model = hub_models[name]
    check_contrast_completeness(model, noise, hub_target(name, "blue"))


@pytest.mark.parametrize("name", ["git", "blip-caption", "vilt"])
def test_hub_contrast_methods(hub_models, noise, name):
    model = hub_models[name]
    for m in ("saliency", "occlusion", "relevance"):
        e = explain(model, noise, hub_target(name, "blue"), m, cache=False)
        assert np.isfinite(e.raw).all(), m
        assert e.raw.any() or name == "blip-caption", m       # the tiny BLIP's image hardly moves its scores
        same = explain(model, noise, hub_target(name, "red"), m, cache=False)
        assert not same.raw.any(), m


def test_hub_contrast_must_be_one_token(hub_models, noise):
    with pytest.raises(InputError, match="does not take the place"):
        explain(hub_models["git"], noise, Target("token", "a red cat", token=1, contrast="blue dog"), "ig", steps=4)
    with pytest.raises(InputError, match="does not take the place"):        # letters: 'dog' is three tokens
        explain(hub_models["vit-gpt2"], noise, Target("token", "a cat", token=0, contrast="dog"), "ig", steps=4)


# --- the command line ----------------------------------------------------------------------------------------------
@pytest.fixture
def cli_model(monkeypatch):
    from mmdemo.models.base import Caption

    model = tiny("cross", seed=3)
    model.caption = lambda images, **kw: [Caption("a large red circle", [("a", 0.5)] * 4) for _ in images]
    monkeypatch.setattr("mmdemo.cli.explain.load_model", lambda args: model)
    return model


def run_cli(capsys, *args):
    import json

    from mmdemo.cli import main

    code = main(list(map(str, args)))
    out = capsys.readouterr()
    return code, (json.loads(out.out) if code == 0 and out.out.startswith("{") else out.out), out.err


def test_cli_contrast_json(capsys, cli_model, scene_image, tmp_path):
    path = tmp_path / "scene.png"
    scene_image.save(path)
    code, payload, err = run_cli(capsys, "explain", path, "--token", "3", "--contrast", "square", "--method", "ig",
                                 "--option", "steps=8", "--out", tmp_path / "c.png", "--json")
    assert code == 0, err
    assert payload["contrast"] == "square" and payload["token"] == 3 and payload["target"] == "a large red circle"
    expected = explain(cli_model, scene_image, Target("token", "a large red circle", token=3, contrast="square"),
                       "ig", steps=8)
    assert np.allclose(payload["map"], np.round(expected.grid, 4), atol=1e-4)
    code, payload, err = run_cli(capsys, "explain", path, "--question", QUESTION, "--target", "red",
                                 "--contrast", "blue", "--method", "occlusion", "--out", tmp_path / "a.png", "--json")
    assert code == 0, err
    assert payload["contrast"] == "blue" and payload["question"] == QUESTION
    code, payload, err = run_cli(capsys, "explain", path, "--token", "3", "--contrast", "circle", "--method",
                                 "saliency", "--out", tmp_path / "z.png", "--json")
    assert code == 0 and not np.any(payload["map"])                     # contrast = the word itself: all zero
    code, out, err = run_cli(capsys, "explain", path, "--token", "3", "--contrast", "square", "--method", "ig",
                             "--option", "steps=8", "--out", tmp_path / "h.png")
    assert code == 0 and "rather than 'square'" in out


@pytest.mark.parametrize("args, message", [
    (["--contrast", "square"], "give --token"),
    (["--token", "3", "--contrast", "blue star", "--method", "ig"], "does not take the place"),
    (["--token", "3", "--contrast", "square", "--method", "attention"], "cannot explain a contrast"),
])
def test_cli_bad_contrast_exits_2(capsys, cli_model, scene_image, tmp_path, args, message):
    path = tmp_path / "scene.png"
    scene_image.save(path)
    code, out, err = run_cli(capsys, "explain", path, *args, "--out", tmp_path / "x.png", "--json")
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
