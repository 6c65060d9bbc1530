"""The fusion-input shortcuts (image encoded once, projections mixed instead of recomputed) against the direct way,
on tiny random checkpoints built by test_hub's builders: the same scores, maps and IG within 1e-5; completeness."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from captum.attr import IntegratedGradients
from PIL import Image

import mmdemo
from mmdemo.errors import InputError
from mmdemo.explain import explain, method_for
from mmdemo.explain import _fusion
from mmdemo.explain._forward import image_baseline
from mmdemo.models.base import Target
from tiny_hub import BUILDERS

CAPTIONERS = ["blip-caption", "vit-gpt2", "vit-bert", "git"]
FUSED = CAPTIONERS + ["blip-vqa"]       # families with a fusion input
TOL = 1e-5


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        mp.setenv("HF_HOME", str(tmp_path_factory.mktemp("hf_home")))
        mp.delenv("MMDEMO_DEVICE", raising=False)
        root = tmp_path_factory.mktemp("tiny_fusion")
        out = {}
        for name in FUSED + ["vilt"]:
            BUILDERS[name](root / name)
            folder = root / name / "model" if name == "vit-bert" else root / name
            out[name] = mmdemo.load(str(folder), device="cpu")
        for name in FUSED:
            make_image_matter(name, out[name])
        yield out


def make_image_matter(name: str, model) -> None:
    """Tiny random encoders give near-constant tokens (the score barely moves with the image): larger weights in
    the image encoder and in the projections that read it."""
    g = torch.Generator().manual_seed(0)
    encoder = {"blip-caption": lambda m: m.vision_model, "vit-gpt2": lambda m: m.encoder,
               "vit-bert": lambda m: m.encoder, "blip-vqa": lambda m: m.vision_model,
               "git": lambda m: m.git.image_encoder}
    modules = [encoder[name](model.model), *model.fusion_input().projections()]
    with torch.no_grad():
        for module in modules:
            for p in module.parameters():
                if p.dim() > 1:
                    p.copy_(torch.randn(p.shape, generator=g) * 0.25)
    model.fusion_input().clear()


@pytest.fixture(scope="module")
def image():
    return Image.fromarray(np.random.default_rng(1).integers(0, 256, (30, 40, 3), dtype=np.uint8))


def target(model, kind="token"):
    if "vqa" in model.info.tasks:
        return Target("answer", "red", question="what color is the cat?")
    text = "a red cat on a dog" if "gpt2" not in model.info.name else "a cat on a dog"   # one letter a token
    return Target("token", text, token=2) if kind == "token" else Target("caption", text)


@pytest.mark.parametrize("name", FUSED)
@pytest.mark.parametrize("kind", ["token", "caption"])
def test_score_from_cached_tokens_equals_score_from_pixels(models, image, name, kind):
    model = models[name]
    fusion = model.fusion_input()
    inputs = model.prepare([image], [target(model, kind)])
    with torch.no_grad():
        direct = model.score(inputs)
        tokens = fusion.encoded(inputs.pixels)
        again = fusion.encoded(inputs.pixels)
        cached = fusion.score(inputs, tokens)
        trimmed = fusion.score(inputs, tokens, trim=True)
        projected = fusion.score(inputs, tokens, projected=fusion.project(tokens), trim=True)
    assert again.data_ptr() != tokens.data_ptr() or torch.equal(again, tokens)
    assert torch.equal(again, tokens)
    for value in (cached, trimmed, projected):
        assert torch.allclose(value, direct, atol=TOL), (value, direct)


@pytest.mark.parametrize("name", CAPTIONERS)
def test_cached_attention_equals_attention_from_pixels(models, image, name):
    model = models[name]
    inputs = model.prepare([image], [target(model, "caption")])
    fusion = model.fusion_input()
    fusion.clear()
    cached_first = model.attention(inputs)          # fills the cache
    cached = model.attention(inputs)                # reads it
    with torch.no_grad():
        _, direct = model._forward(inputs.pixels, inputs.extra["input_ids"], inputs.extra["attention_mask"], True)
    from mmdemo.models.hub._base import renormalise
    direct = renormalise(direct[:, :, :, :-1])
    assert torch.allclose(cached, direct, atol=TOL) and torch.equal(cached, cached_first)


@pytest.mark.parametrize("name", FUSED)
def test_ig_through_mixed_projections_equals_ig_on_the_tokens(models, image, name):
    """The shortcut (projections at both ends, mixed per step, pulled back once) against Captum's IG on the
    encoded tokens, where every step re-runs the projections."""
    model = models[name]
    fusion = model.fusion_input()
    inputs = model.prepare([image], [target(model)])
    fast = _fusion.integrated_gradients(fusion, inputs, steps=16, baseline="median", grid=model.info.patch_grid)
    with torch.no_grad():
        x = fusion.encode(inputs.pixels)
        b = fusion.encode(image_baseline(inputs.pixels, "median"))
    f = lambda t: fusion.score(inputs, t)                                            # noqa: E731
    direct = IntegratedGradients(f).attribute(x, baselines=b, n_steps=16, method="gausslegendre").sum(-1)
    assert fast.shape == direct.shape
    assert torch.allclose(fast, direct.float(), atol=TOL, rtol=1e-4), (fast - direct).abs().max()
    # the method's map is the patch columns of the same attributions
    grid = method_for("ig", model).attribute(inputs, steps=16)
    assert torch.allclose(grid.flatten(1), fast[:, -fusion.n_patches:], atol=TOL)


@pytest.mark.parametrize("name", FUSED)
def test_ig_at_the_fusion_input_is_complete(models, image, name):
    model = models[name]
    fusion = model.fusion_input()
    inputs = model.prepare([image], [target(model)])
    attr = _fusion.integrated_gradients(fusion, inputs, steps=32, baseline="median", grid=model.info.patch_grid)
    with torch.no_grad():
        gap = float(model.score(inputs) - model.score(inputs, pixels=image_baseline(inputs.pixels, "median")))
    assert abs(gap) > 1e-4
    assert float(attr.sum()) == pytest.approx(gap, rel=0.05)


@pytest.mark.parametrize("name", FUSED)
def test_occlusion_of_regions_equals_scoring_each_occluded_image(models, image, name):
    model = models[name]
    fusion = model.fusion_input()
    inputs = model.prepare([image], [target(model)])
    grid = model.info.patch_grid
    fast = method_for("occlusion", model).attribute(inputs, regions=(2, 2)).flatten(1)     # (1, h*w)
    with torch.no_grad():
        x = fusion.encode(inputs.pixels)
        b = fusion.encode(image_baseline(inputs.pixels, "median"))
        region = _fusion.region_index(grid, (2, 2), x.shape[1], x.device)
        full = fusion.score(inputs, x)
        expect = torch.zeros(grid[0] * grid[1])
        for r in range(4):
            drop = full - fusion.score(inputs, torch.where((region == r)[None, :, None], b, x))
            expect[region[-grid[0] * grid[1]:] == r] = float(drop)
    assert torch.allclose(fast[0], expect, atol=TOL)
    assert len(set(np.round(fast[0].numpy(), 6))) <= 4                   # one value per region


@pytest.mark.parametrize("name", FUSED)
def test_shapley_of_regions_adds_up_to_the_score_gap(models, image, name):
    """Sampled Shapley values are efficient for every sampled order: regions add up to f(x) − f(baseline)."""
    model = models[name]
    inputs = model.prepare([image], [target(model)])
    fusion = model.fusion_input()
    phi = method_for("shapley", model).attribute(inputs, regions=(2, 2), samples=3).flatten(1)
    region = _fusion.region_index(model.info.patch_grid, (2, 2), fusion.encoded(inputs.pixels).shape[1], "cpu")
    per_region = [float(phi[0, region[-fusion.n_patches:] == r][0]) for r in range(4)]
    with torch.no_grad():
        x, b = fusion.encoded(inputs.pixels), fusion.encoded(image_baseline(inputs.pixels, "median"))
        gap = float(fusion.score(inputs, x) - fusion.score(inputs, torch.where((region >= 0)[None, :, None], b, x)))
    assert sum(per_region) == pytest.approx(gap, abs=1e-4)


def test_fusion_methods_through_explain(models, image):
    model = models["blip-caption"]
    t = target(model)
    for method, options in (("ig", {"steps": 4}), ("occlusion", {"regions": (2, 2)}), ("shapley", {"samples": 1}),
                            ("ig", {"steps": 4, "at": "patches"}), ("occlusion", {"at": "pixels"})):
        e = explain(model, image, t, method, cache=False, **options)
        assert e.raw.shape == model.info.patch_grid and np.isfinite(e.raw).all(), (method, options)


def test_fusion_is_refused_where_a_model_has_none(models, image):
    model = models["vilt"]
    assert model.fusion_input() is None
    with pytest.raises(InputError, match="no fusion input"):
        explain(model, image, target(model), "ig", at="fusion", cache=False)
    with pytest.raises(InputError, match="at must be"):
        explain(models["blip-caption"], image, target(models["blip-caption"]), "ig", at="nowhere", cache=False)
    with pytest.raises(InputError, match="regions must be"):
        explain(models["blip-caption"], image, target(models["blip-caption"]), "occlusion", regions=(9, 9),
                cache=False)


def test_sheet_of_attention_equals_each_token_explained_alone(models, image):
    from mmdemo.explain import explain_tokens

    model = models["blip-caption"]
    caption = "a red cat on a dog"
    seen = []
    sheet = explain_tokens(model, image, caption, "attention", cache=False,
                           on_token=lambda i, n, e: seen.append((i, n)))
    n = len(model.prepare([image], [Target("caption", caption)]).text_tokens[0])
    assert len(sheet) == n and seen == [(i, n) for i in range(n)]
    for i, e in enumerate(sheet):
        alone = explain(model, image, Target("token", caption, token=i), "attention", cache=False)
        assert e.target == alone.target
        assert np.allclose(e.raw, alone.raw, atol=TOL)


def test_sheet_stops_when_asked_and_fills_the_cache(models, image):
    from mmdemo.explain import CACHE, cache_key, explain_tokens

    model = models["blip-caption"]
    caption = "a red cat"
    part = explain_tokens(model, image, caption, "occlusion", regions=(2, 2), on_token=lambda i, n, e: i < 1)
    assert len(part) == 2
    key = cache_key(model, image, Target("token", caption, token=1), "occlusion", sign="positive", regions=(2, 2))
    assert CACHE.get(key) is part[1]
    with pytest.raises(InputError, match="empty"):
        explain_tokens(model, image, "  ", "attention")


def test_sheet_and_fusion_options_through_the_cli(models, image, tmp_path, capsys, monkeypatch):
    import json

    from mmdemo.cli import main

    model = models["blip-caption"]
    monkeypatch.setattr("mmdemo.cli.explain.load_model", lambda args: model)
    path = tmp_path / "photo.png"
    image.save(path)
    code = main(["explain", str(path), "--target", "a red cat", "--all-tokens", "--method", "occlusion",
                 "--option", "regions=2x2", "--out", str(tmp_path / "sheet.png"), "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and [t["token"] for t in out["tokens"]] == [0, 1, 2]
    assert all((tmp_path / f"sheet_{i}.png").is_file() for i in range(3))
    alone = explain(model, image, Target("token", "a red cat", token=1), "occlusion", regions=(2, 2))
    assert np.allclose(out["tokens"][1]["map"], np.round(alone.grid, 4), atol=1e-4)
    code = main(["explain", str(path), "--token", "1", "--all-tokens", "--out", str(tmp_path / "x.png")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "--all-tokens" in err


def test_an_image_encoded_in_inference_mode_serves_gradients_later(models, image):
    """caption() fills the cache under torch.inference_mode; IG then differentiates through the cached tokens."""
    model = models["blip-caption"]
    fusion = model.fusion_input()
    fusion.clear()
    inputs = model.prepare([image], [target(model)])
    with torch.inference_mode():
        fusion.encoded(inputs.pixels)
    attr = _fusion.integrated_gradients(fusion, inputs, steps=2, baseline="median", grid=model.info.patch_grid)
    assert torch.isfinite(attr).all()


@pytest.mark.parametrize("name", ["blip-caption", "blip-vqa"])
def test_modality_share_at_the_fusion_input_adds_up(models, image, name):
    """Shapley values of regions and words (image at the fusion input) add up to f(all) − f(none)."""
    from mmdemo.explain import modality_share
    from mmdemo.explain._forward import TextGate

    model = models[name]
    t = target(model, "caption")
    share = modality_share(model, image, t, samples=2, regions=(2, 2), cache=False)
    assert share["image_share"] + share["text_share"] == pytest.approx(1.0)
    total = sum(map(sum, share["image"])) + sum(v for _, v in share["text"])
    inputs = model.prepare([image], [t])
    fusion = model.fusion_input()
    with torch.no_grad():
        x, b = fusion.encoded(inputs.pixels), fusion.encoded(image_baseline(inputs.pixels, "median"))
        region = _fusion.region_index(model.info.patch_grid, (2, 2), x.shape[1], "cpu")
        gate = TextGate(model, inputs)
        with gate.applied(gate.baseline()):
            none = fusion.score(inputs, torch.where((region >= 0)[None, :, None], b, x))
        gap = float(fusion.score(inputs, x) - none)
    assert total == pytest.approx(gap, abs=1e-4)
