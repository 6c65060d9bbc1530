"""Every explanation method on tiny random checkpoints of each hub family (BLIP, ViLT, GIT, VisionEncoderDecoder),
built by test_hub's builders: finite maps on the patch grid, at the image's size, for answers, captions and tokens."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from mmdemo.explain import METHODS, available_methods, explain, method_for, modality_share
from mmdemo.models.base import Target
from tiny_hub import BUILDERS

FAST = {"ig": {"steps": 4}, "ig-pixels": {"steps": 4}, "text-ig": {"steps": 4}, "shapley": {"samples": 1}}
SPECIAL_METHODS = {   # which of rollout / relevance each family offers
    "blip-caption": {"relevance"}, "blip-vqa": {"relevance"}, "vilt": {"rollout", "relevance"},
    "git": {"rollout", "relevance"}, "vit-gpt2": {"relevance"}, "vit-bert": {"relevance"},
}


@pytest.fixture(scope="module")
def hub_models(tiny_hub_models):
    return tiny_hub_models


@pytest.fixture(scope="module")
def image():
    return Image.fromarray(np.random.default_rng(0).integers(0, 256, (30, 40, 3), dtype=np.uint8))


def targets(name, model):
    if "vqa" in model.info.tasks:
        return [Target("answer", "red", question="what color is the cat?")]
    text = "a cat" if name == "vit-gpt2" else "a red cat"        # vit-gpt2's tiny tokenizer spells letters
    return [Target("caption", text), Target("token", text, token=1)]


@pytest.mark.parametrize("name", list(BUILDERS))
def test_every_method_on_tiny_hub_models(hub_models, image, name):
    model = hub_models[name]
    methods = available_methods(model)
    assert {"rollout", "relevance"} & set(methods) == SPECIAL_METHODS[name]
    assert {"attention", "ig", "ig-pixels", "saliency", "inputxgrad", "gradcam", "occlusion", "shapley",
            "text-ig"} <= set(methods)
    h, w = model.info.patch_grid
    for target in targets(name, model):
        for m in methods:
            e = explain(model, image, target, m, cache=False, **FAST.get(m, {}))
            assert e.grid.shape == e.raw.shape == (h, w), m
            assert e.upsampled.shape == (30, 40), m
            assert np.isfinite(e.raw).all() and e.grid.min() >= 0, m
            if METHODS[m].output == "text":
                assert e.text and all(np.isfinite(s) for _, s in e.text), m
        share = modality_share(model, image, target, samples=1)
        assert share["image_share"] + share["text_share"] == pytest.approx(1.0)


@pytest.mark.parametrize("name", ["vilt", "git", "vit-gpt2"])
def test_hub_ig_completeness(hub_models, image, name):
    """IG on the patch tap adds up to score(image) - score(baseline image) on the hub models too."""
    from mmdemo.explain._forward import ScoreFunction, image_baseline

    model = hub_models[name]
    inputs = model.prepare([image], targets(name, model)[:1])
    fn = ScoreFunction(model, inputs)
    with torch.no_grad():
        gap = float(fn(inputs.pixels) - fn(image_baseline(inputs.pixels, "median")))
    total = float(method_for("ig", model).attribute(inputs, steps=64, at="patches").sum())
    assert abs(gap) > 1e-5
    assert total == pytest.approx(gap, rel=0.05)
