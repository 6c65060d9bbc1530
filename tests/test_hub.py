"""Hub adapters on tiny random checkpoints of the real architectures, built and saved here, loaded through the real
path (`mmdemo.load(folder)`, a faked hub cache, $MMDEMO_VIT_BERT_PATH). Nothing is downloaded: HF_HUB_OFFLINE=1."""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import mmdemo
from mmdemo.errors import InputError, WeightsMissingError
from mmdemo.models.base import Answer, Caption, Decoding, Target
from tiny_hub import BUILDERS, TINY, WORDS

ANSWERS = ["yes", "no", "red", "two"]
GRID = 4 * 4                            # image_size 32 / patch 8
CAPTIONERS = ["blip-caption", "git", "vit-gpt2", "vit-bert"]
ANSWERERS = ["blip-vqa", "vilt"]


@pytest.fixture(scope="module", autouse=True)
def offline(tmp_path_factory):
    """No network, an empty HF cache, no opt-in downloads, for every test in this module."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        mp.setenv("HF_HOME", str(tmp_path_factory.mktemp("hf_home")))
        mp.delenv("HF_HUB_CACHE", raising=False)
        mp.delenv("MMDEMO_ALLOW_DOWNLOAD", raising=False)
        mp.delenv("MMDEMO_VIT_BERT_PATH", raising=False)
        mp.delenv("MMDEMO_DEVICE", raising=False)
        yield


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("tiny_hub")
    out = {}
    for name, build in BUILDERS.items():
        build(root / name)
        out[name] = root / name / "model" if name == "vit-bert" else root / name
    return out


@pytest.fixture(scope="module")
def models(folders):
    """Each tiny checkpoint loaded once, through mmdemo.load(folder) -> resolver -> factory -> adapter."""
    return {name: mmdemo.load(str(folder), device="cpu") for name, folder in folders.items()}


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(0)
    return [Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)) for h, w in [(30, 40), (50, 20)]]


QUESTIONS = ["what color is the cat?", "is the dog on the red dog"]


def squares(images):
    """The images stretched to squares: where captions or answers see a centre crop (GIT) or keep the aspect (ViLT),
    explanations see the photo stretched to a square, so the two agree exactly on square photos."""
    return [im.resize((max(im.size),) * 2) for im in images]


# --- loading ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name, cls, fusion, tasks", [
    ("blip-caption", "BlipCaptioner", "cross", ("caption",)), ("blip-vqa", "BlipAnswerer", "cross", ("vqa",)),
    ("vilt", "ViltAnswerer", "early", ("vqa",)), ("git", "GitCaptioner", "early", ("caption",)),
    ("vit-gpt2", "EncoderDecoderCaptioner", "encoder-decoder", ("caption",)),
    ("vit-bert", "EncoderDecoderCaptioner", "encoder-decoder", ("caption",))])
def test_family_comes_from_config_json(models, name, cls, fusion, tasks):
    model = models[name]
    assert type(model).__name__ == cls
    assert (model.info.fusion, model.info.tasks) == (fusion, tasks)
    assert model.info.patch_grid == (4, 4) and model.info.input_size == (32, 32)
    assert (model.info.device, model.info.dtype) == ("cpu", "float32")
    assert model.info.revision.startswith("sha256:")


def test_folder_of_unknown_family_is_a_clear_error(tmp_path):
    from transformers import BertConfig, BertModel

    BertModel(BertConfig(vocab_size=len(WORDS), **TINY)).save_pretrained(tmp_path)
    with pytest.raises(mmdemo.UnknownModelError, match="bert"):
        mmdemo.load(str(tmp_path))


# --- captions: generation and teacher forcing agree -------------------------------------------------------------
@pytest.mark.parametrize("name", CAPTIONERS)
def test_caption_score_equals_generation_log_probs(models, images, name):
    model = models[name]
    images = squares(images) if name == "git" else images
    caps = model.caption(images, Decoding(max_new_tokens=8))
    assert len(caps) == 2 and all(isinstance(c, Caption) and c.text for c in caps)
    assert all(0 < p <= 1 for c in caps for _, p in c.tokens)
    inputs = model.prepare(images, [Target("caption", c.text) for c in caps])
    assert [len(t) for t in inputs.text_tokens] == [len(c.tokens) for c in caps]
    assert inputs.text_tokens == [[t for t, _ in c.tokens] for c in caps]
    with torch.no_grad():
        scores = model.score(inputs)
    assert scores.shape == (2,)
    expected = torch.tensor([sum(math.log(p) for _, p in c.tokens) for c in caps])
    torch.testing.assert_close(scores, expected, atol=1e-4, rtol=0)

    last = len(caps[1].tokens) - 1
    inputs = model.prepare(images, [Target("token", caps[0].text, token=0), Target("token", caps[1].text, token=last)])
    with torch.no_grad():
        scores = model.score(inputs)
    expected = torch.tensor([math.log(caps[0].tokens[0][1]), math.log(caps[1].tokens[last][1])])
    torch.testing.assert_close(scores, expected, atol=1e-4, rtol=0)


@pytest.mark.parametrize("name", CAPTIONERS)
def test_caption_attention_lies_on_the_patch_grid(models, images, name):
    model = models[name]
    inputs = model.prepare(images, [Target("caption", "a red cat"), Target("caption", "the dog sits on a blue dog")])
    attn = model.attention(inputs)
    T = max(len(t) for t in inputs.text_tokens)
    assert attn.shape == (2, 2, 2, T, GRID)                 # (L, B, heads, T, h*w)
    assert torch.isfinite(attn).all() and (attn >= 0).all()
    torch.testing.assert_close(attn.sum(-1), torch.ones(2, 2, 2, T), atol=1e-3, rtol=0)


def test_decoding_settings_pass_through(models, images):
    model = models["blip-caption"]
    greedy = model.caption(images[:1], Decoding(max_new_tokens=5))[0]
    beam = model.caption(images[:1], Decoding("beam", 5, beams=3))[0]
    nucleus = [model.caption(images[:1], Decoding("nucleus", 5, top_p=0.9, temperature=0.7, seed=s))[0]
               for s in (1, 1, 2)]
    assert all(isinstance(c, Caption) for c in (greedy, beam, *nucleus))
    assert len(greedy.tokens) <= 5
    assert nucleus[0] == nucleus[1]                     # a seed repeats the sample
    inputs = model.prepare(images[:1], [Target("caption", beam.text)])
    with torch.no_grad():                # beam captions report the probabilities along their own beam
        assert model.score(inputs).item() == pytest.approx(sum(math.log(p) for _, p in beam.tokens), abs=1e-4)
    with pytest.raises(InputError, match="unknown decoding setting"):
        model.caption(images, Decoding.from_dict({"num_beams": 3}))


# --- answers ----------------------------------------------------------------------------------------------------
def test_blip_answer_prob_is_exp_of_its_score(models, images):
    model = models["blip-vqa"]
    answers = model.answer(images, QUESTIONS, top_k=3)
    assert all(isinstance(a, Answer) and a.answer for a in answers)
    for a in answers:
        assert 1 <= len(a.top_k) <= 3 and a.top_k[0] == (a.answer, a.prob)
        assert [p for _, p in a.top_k] == sorted((p for _, p in a.top_k), reverse=True)
    inputs = model.prepare(images, [Target("answer", a.answer, question=q) for a, q in zip(answers, QUESTIONS)])
    with torch.no_grad():
        scores = model.score(inputs)
    torch.testing.assert_close(scores, torch.tensor([math.log(a.prob) for a in answers]), atol=1e-4, rtol=0)
    assert model.answer(images[:1], QUESTIONS[:1], top_k=1)[0].answer


def test_vilt_answers_come_from_its_label_set(models, images):
    model = models["vilt"]
    images = squares(images)
    answers = model.answer(images, QUESTIONS, top_k=2)
    assert all(a.answer in ANSWERS and len(a.top_k) == 2 for a in answers)
    inputs = model.prepare(images, [Target("answer", a.answer, question=q) for a, q in zip(answers, QUESTIONS)])
    with torch.no_grad():
        scores = model.score(inputs)
    torch.testing.assert_close(scores, torch.tensor([math.log(a.prob) for a in answers]), atol=1e-5, rtol=0)
    with pytest.raises(InputError, match="not one of"):
        model.prepare(images[:1], [Target("answer", "purple", question="what color?")])


def test_vilt_raster_order_changes_nothing_but_the_columns(models, images):
    """Our path (all patches, put back in raster order) gives the logits of transformers' own ViLT forward, for
    photos of two shapes padded into one batch (pixel_mask) as for one square batch."""
    model = models["vilt"]
    q = model._questions(QUESTIONS, 16)
    batch = model._processed(images)
    assert batch["pixel_mask"].min() == 0                # the two photos differ in shape: one is padded
    pixels = model._explain_pixels(images)
    with torch.no_grad():
        ours, _ = model._forward(batch["pixel_values"], q["input_ids"], q["attention_mask"],
                                 pixel_mask=batch["pixel_mask"])
        theirs = model.model(**q, **batch).logits
        torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=0)
        ours, _ = model._forward(pixels, q["input_ids"], q["attention_mask"])
        theirs = model.model(**q, pixel_values=pixels, pixel_mask=torch.ones(2, 32, 32, dtype=torch.long)).logits
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=0)


@pytest.mark.parametrize("name", ANSWERERS)
def test_answer_attention_lies_on_the_patch_grid(models, images, name):
    model = models[name]
    inputs = model.prepare(images, [Target("answer", "red", question=QUESTIONS[0]),
                                    Target("answer", "no", question=QUESTIONS[1])])
    assert inputs.text_tokens[0][:3] == ["[CLS]", "what", "color"]
    attn = model.attention(inputs)
    T = max(len(t) for t in inputs.text_tokens)
    assert attn.shape == (2, 2, 2, T, GRID)
    assert torch.isfinite(attn).all()
    torch.testing.assert_close(attn.sum(-1), torch.ones(2, 2, 2, T), atol=1e-3, rtol=0)


def test_tasks_a_model_does_not_do_are_input_errors(models, images):
    with pytest.raises(InputError, match="does not answer"):
        models["git"].answer(images[:1], ["what?"])
    with pytest.raises(InputError, match="does not caption"):
        models["vilt"].caption(images[:1])
    with pytest.raises(InputError, match="empty"):
        models["blip-vqa"].answer(images[:1], ["  "])


# --- the differentiable surface ---------------------------------------------------------------------------------
TARGETS = {"blip-vqa": Target("answer", "red", question=QUESTIONS[0]),
           "vilt": Target("answer", "red", question=QUESTIONS[0])}


@pytest.mark.parametrize("name", CAPTIONERS + ANSWERERS)
def test_score_gradient_reaches_pixels_and_handles(models, images, name):
    model = models[name]
    target = TARGETS.get(name, Target("caption", "a red cat"))
    inputs = model.prepare(images, [target, target])
    seen = {}
    hooks = [model.image_embedding.register_forward_hook(lambda m, a, out: seen.setdefault("image", out)),
             model.text_embedding.register_forward_hook(lambda m, a, out: seen.setdefault("text", out))]
    pixels = inputs.pixels.clone().requires_grad_(True)
    try:
        model.score(inputs, pixels=pixels).sum().backward()
    finally:
        for h in hooks:
            h.remove()
    assert torch.isfinite(pixels.grad).all() and pixels.grad.abs().sum() > 0
    assert seen["image"].shape[:2] == (2, GRID) and seen["text"].shape[0] == 2
    with torch.no_grad():                # a Captum-style batch of k·B pixel rows reuses the prepared text
        assert model.score(inputs, pixels=inputs.pixels.repeat(3, 1, 1, 1)).shape == (6,)


# --- where weights are looked for -------------------------------------------------------------------------------
def test_missing_hub_weights_fail_fast_with_directions():
    from mmdemo.models.hub import load_model

    start = time.perf_counter()
    with pytest.raises(WeightsMissingError, match="Salesforce/blip-image-captioning-base"):
        mmdemo.load("blip-caption")
    with pytest.raises(WeightsMissingError) as err:
        load_model("blip-caption")
    assert time.perf_counter() - start < 5
    message = str(err.value)
    assert "\n" not in message and "hf download Salesforce/blip-image-captioning-base" in message
    assert "HF_HUB_OFFLINE" in message and "MMDEMO_ALLOW_DOWNLOAD=1" in message and "local folder" in message
    with pytest.raises(WeightsMissingError, match="MMDEMO_VIT_BERT_PATH"):
        load_model("vit-bert")


def test_download_opt_in_counts_as_available_unless_offline(monkeypatch):
    from mmdemo.models.hub import missing_message, weights_available

    monkeypatch.setenv("MMDEMO_ALLOW_DOWNLOAD", "1")            # HF_HUB_OFFLINE=1 (module fixture) still wins
    assert weights_available("blip-caption") is False and "HF_HUB_OFFLINE is set" in missing_message("blip-caption")
    monkeypatch.delenv("HF_HUB_OFFLINE")                        # nothing is fetched: this only checks the flags
    assert weights_available("blip-caption") is True and weights_available("vit-bert") is False


def test_listing_models_imports_no_torch():
    code = "import sys, mmdemo; mmdemo.list_models(); print('torch' in sys.modules, 'transformers' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         cwd=Path(__file__).resolve().parent.parent)
    assert out.stdout.split() == ["False", "False"], out.stderr


def test_models_listed_unavailable_without_weights():
    entries = {m.name: m for m in mmdemo.list_models()}
    for name in ("blip-caption", "blip-caption-large", "blip-vqa", "vilt-vqa", "git-caption", "vit-gpt2", "vit-bert"):
        assert name in entries and not entries[name].available()


def test_cli_lists_hub_models(tmp_path):
    env = {**os.environ, "HF_HOME": str(tmp_path), "HF_HUB_OFFLINE": "1"}
    out = subprocess.run([sys.executable, "-m", "mmdemo", "models", "--json"], capture_output=True, text=True,
                         env=env, timeout=60, cwd=Path(__file__).resolve().parent.parent)
    assert out.returncode == 0, out.stderr
    rows = {r["name"]: r for r in json.loads(out.stdout)}
    assert rows["blip-caption"]["available"] is False and rows["vilt-vqa"]["tasks"] == ["vqa"]
    assert "torch" not in out.stderr


def test_hub_id_loads_from_the_local_cache(folders, tmp_path, monkeypatch):
    """A cached snapshot (the layout huggingface_hub writes) loads by registered name and by hub id, offline."""
    snapshot = tmp_path / "hub" / "models--Salesforce--blip-image-captioning-base" / "snapshots" / "abc123"
    snapshot.mkdir(parents=True)
    for f in folders["blip-caption"].iterdir():
        (snapshot / f.name).write_bytes(f.read_bytes())
    (snapshot.parent.parent / "refs").mkdir()
    (snapshot.parent.parent / "refs" / "main").write_text("abc123")
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    entry = {m.name: m for m in mmdemo.list_models()}["blip-caption"]
    assert entry.available()
    model = mmdemo.load("blip-caption", device="cpu")
    assert model.info.name == "blip-caption" and model.info.revision == "abc123"
    assert model.info.weights == "Salesforce/blip-image-captioning-base"
    assert type(mmdemo.load("Salesforce/blip-image-captioning-base")).__name__ == "BlipCaptioner"


def test_vit_bert_entry_follows_its_env_variable(folders, monkeypatch):
    monkeypatch.setenv("MMDEMO_VIT_BERT_PATH", str(folders["vit-bert"]))
    entry = {m.name: m for m in mmdemo.list_models()}["vit-bert"]
    assert entry.available()
    model = mmdemo.load("vit-bert", device="cpu")
    assert model.info.name == "vit-bert" and model.caption([Image.new("RGB", (20, 20))], Decoding(max_new_tokens=3))
