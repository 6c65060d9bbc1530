"""Every caption token's map, one at a time: the service's stream equals the sheet, stops when its consumer stops,
checks its arguments first; the Caption tab streams it (/explain_sheet); method pickers show measured times;
occlusion and Shapley default to coarse regions on large patch grids."""
from __future__ import annotations

import json
import re

import numpy as np
import pytest

import mmdemo
from helpers import example, served_app, tiny_models
from mmdemo.errors import InputError
from mmdemo.explain import explain_tokens, sheet
from mmdemo.explain import timings
from mmdemo.explain.methods.occlusion import regions_for
from mmdemo.service import Service


@pytest.fixture(scope="module")
def service():
    s = Service(preloaded=tiny_models())
    yield s
    s.close()


def words(text: str) -> list[str]:
    """A shapes caption as its models split it: words, and commas on their own."""
    return re.findall(r"[\w']+|[^\w\s]", text)


def caption_of(service, model="shapes-cross"):
    image = mmdemo.load_image(example(3)["path"])
    return image, service.caption(image, model).caption


@pytest.mark.parametrize("method", ["attention", "ig", "occlusion"])
def test_the_stream_is_the_sheet(service, method):
    image, text = caption_of(service)
    streamed = list(service.explain_tokens(image, text, "shapes-cross", method))
    whole = explain_tokens(service.model("shapes-cross"), image, text, method, cache=False)
    assert [m.index for m in streamed] == list(range(len(whole))) and {m.count for m in streamed} == {len(whole)}
    assert [m.token for m in streamed] == words(text)
    for m, e in zip(streamed, whole):
        assert m.explanation.target.token == m.index and m.explanation.method == method
        np.testing.assert_allclose(m.explanation.grid, e.grid, atol=1e-5)


def test_a_tiny_hub_captioner_streams_too(tiny_hub_models):
    model = tiny_hub_models["blip-caption"]
    s = Service(preloaded={"blip-tiny": model})
    image = mmdemo.load_image(example(1)["path"])
    text = s.caption(image, "blip-tiny", {"max_new_tokens": 5}).caption or "a cat"
    n = len(model.prepare([image], [mmdemo.Target("caption", text)]).text_tokens[0])
    maps = list(s.explain_tokens(image, text, "blip-tiny", "ig", steps=4))
    assert [m.index for m in maps] == list(range(n))
    assert all(m.explanation.grid.shape == tuple(model.info.patch_grid) for m in maps)


def test_stopping_the_stream_stops_the_work(service, monkeypatch):
    image, text = caption_of(service)
    made = []
    real = sheet.explain

    def counted(*args, **kwargs):
        made.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(sheet, "explain", counted)
    stream = service.explain_tokens(image, text, "shapes-cross", "ig", steps=4)
    first, second = next(stream), next(stream)
    stream.close()                                   # what Gradio does when a user presses Stop
    assert (first.index, second.index) == (0, 1) and len(made) == 2
    assert first.count == len(words(text)) > 2
    assert service.pool.lock("shapes-cross").acquire(timeout=1)      # the model is free again
    service.pool.lock("shapes-cross").release()


def test_bad_requests_fail_before_the_first_map(service):
    image, text = caption_of(service)
    with pytest.raises(InputError, match="caption"):
        service.explain_tokens(image, "   ", "shapes-cross", "ig")
    with pytest.raises(InputError, match="must be text"):
        service.explain_tokens(image, ["a", "red"], "shapes-cross", "ig")
    with pytest.raises(InputError, match="does not draw maps.*choose one of: attention"):
        service.explain_tokens(image, text, "shapes-cross", "text-ig")
    with pytest.raises(InputError, match="steeps"):
        service.explain_tokens(image, text, "shapes-cross", "ig", steeps=4)


# --- measured times in the method pickers --------------------------------------------------------------------
@pytest.fixture
def timing_table(tmp_path, monkeypatch):
    path = tmp_path / "timings.json"
    path.write_text(json.dumps({"models": {"shapes-cross": {"cpu": {"seconds": {"attention": 0.004, "ig": 0.21,
                                                                                 "shapley": 4.6}}},
                                           "blip-caption": {"cpu": {"seconds": {"occlusion": 150.0}}}}}))
    monkeypatch.setattr(timings, "TIMINGS_FILE", path)
    return path


def test_pickers_label_methods_with_their_measured_time(timing_table, service):
    from mmdemo.ui.common import image_methods

    assert timings.typical_seconds("shapes-cross", "ig") == 0.21
    assert timings.typical_seconds("shapes-cross", "ig", "cuda:0") is None      # not measured on a GPU
    assert timings.typical_seconds("shapes-cross", "saliency") is None
    assert [timings.rough(s) for s in (0.004, 0.21, 4.6, 150.0)] == ["<0.1 s", "~0.2 s", "~5 s", "~2 min"]
    choices = dict((name, label) for label, name in image_methods(service, "shapes-cross"))
    assert choices["attention"] == "attention (<0.1 s)" and choices["ig"] == "ig (~0.2 s)"
    assert choices["shapley"] == "shapley (~5 s)" and choices["saliency"] == "saliency"


def test_the_shipped_table_reads(monkeypatch):
    monkeypatch.setattr(timings, "TIMINGS_FILE", timings.TIMINGS_FILE)
    rows = timings.table().get("models", {})
    assert "shapes-cross" in rows and rows["shapes-cross"]["cpu"]["seconds"]["attention"] > 0


def test_occlusion_and_shapley_default_to_an_8x8_region_grid_on_large_grids():
    assert regions_for(None, (8, 8)) is None and regions_for(None, (7, 7)) is None
    assert regions_for(None, (24, 24)) == (8, 8) and regions_for(None, (12, 6)) == (8, 6)
    assert regions_for("6x6", (24, 24)) == (6, 6) and regions_for(3, (8, 8)) == (3, 3)
    with pytest.raises(InputError, match="regions"):
        regions_for("many", (24, 24))


# --- the app ------------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_the_caption_tab_streams_every_tokens_map(tmp_path):
    gradio_client = pytest.importorskip("gradio_client")
    with served_app(tmp_path / "data") as url:
        client = gradio_client.Client(url, verbose=False)
        image = gradio_client.handle_file(example(3)["path"])
        text = client.predict(image, "shapes-cross", "greedy", 24, 3, 0.9, 1.0, -1, api_name="/caption")["caption"]
        job = client.submit(image, "shapes-cross", text, "ig", 0.5, "jet", api_name="/explain_sheet")
        gallery, status = job.result(timeout=120)
        n = len(words(text))
        assert [g["caption"] for g in gallery] == [f"{i}: {w}" for i, w in enumerate(words(text))]
        assert status.startswith(f"ig: all {n} of {n} tokens")
        assert len(job.outputs()) >= n                       # one update per map: streamed, not sent at the end
        with pytest.raises(Exception, match="does not draw maps"):
            client.predict(image, "shapes-cross", text, "text-ig", 0.5, "jet", api_name="/explain_sheet")


# --- relevance under bf16 autocast ---------------------------------------------------------------------------
def test_relevance_in_bf16_matches_fp32_and_auto_keeps_small_images_in_fp32(tiny_hub_models, monkeypatch):
    import torch

    from mmdemo.explain import explain
    from mmdemo.explain.methods import relevance as rel

    model = tiny_hub_models["blip-caption"]
    image = mmdemo.load_image(example(3)["path"])
    target = mmdemo.Target("token", "a red circle", token=1)
    fp32 = explain(model, image, target, "relevance", cache=False, precision="fp32")
    bf16 = explain(model, image, target, "relevance", cache=False, precision="bf16")
    assert np.corrcoef(fp32.raw.ravel(), bf16.raw.ravel())[0, 1] > 0.98
    cpu = torch.device("cpu")
    assert not rel.use_bf16("auto", cpu, (8, 8))                    # small grids stay fp32: nothing to gain
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: True)
    assert rel.use_bf16("auto", cpu, (24, 24)) and not rel.use_bf16("fp32", cpu, (24, 24))
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    assert not rel.use_bf16("auto", cpu, (24, 24)) and rel.use_bf16("bf16", cpu, (8, 8))
    with pytest.raises(InputError, match="precision must be auto, fp32 or bf16"):
        explain(model, image, target, "relevance", cache=False, precision="fp16")


@pytest.mark.parametrize("family", ["blip-caption", "git", "vit-gpt2"])
def test_a_relevance_sheet_is_one_scored_pass_and_equals_the_maps_one_by_one(tiny_hub_models, family, monkeypatch):
    from mmdemo.explain import explain

    model = tiny_hub_models[family]
    image = mmdemo.load_image(example(3)["path"])
    text = "a red circle and a blue square"
    passes = []
    real = type(model).score
    monkeypatch.setattr(type(model), "score", lambda self, *a, **k: passes.append(1) or real(self, *a, **k))
    sheet_maps = explain_tokens(model, image, text, "relevance", cache=False, precision="fp32")
    assert len(passes) == 1 and len(sheet_maps) >= 6                 # one forward for every token's map
    for e in sheet_maps:
        one = explain(model, image, mmdemo.Target("token", text, token=e.target.token), "relevance",
                      cache=False, precision="fp32")
        np.testing.assert_allclose(e.grid, one.grid, atol=1e-5)
        assert np.abs(one.raw).max() > 0
