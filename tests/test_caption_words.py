"""Caption words: the runner-up words recorded beside each token, and `eval-explain --target caption-words`."""
from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch

from mmdemo.models.base import Caption, Decoding
from mmdemo.world.render import render
from mmdemo.world.scene import sample_scene
from helpers import tiny

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def scene_image():
    return render(sample_scene(np.random.default_rng(4), 96, 96, n_objects=2))


@pytest.mark.parametrize("decoding", [Decoding(), Decoding(strategy="beam", beams=3),
                                      Decoding(strategy="nucleus", seed=1)])
def test_captions_carry_runner_up_words(scene_image, decoding):
    model = tiny("cross", seed=2)
    cap = model.caption([scene_image], Decoding(**{**decoding.__dict__, "max_new_tokens": 6}))[0]
    assert len(cap.alternatives) == len(cap.tokens) > 0
    for (word, prob), alts in zip(cap.tokens, cap.alternatives):
        assert 1 <= len(alts) <= 5 and all(not a.startswith("[") for a, _ in alts)
        probs = [p for _, p in alts]
        assert probs == sorted(probs, reverse=True) and all(0 < p <= 1 for p in probs)
        if decoding.strategy == "greedy":                       # greedy picks the most probable word
            assert alts[0] == (word, pytest.approx(prob, rel=1e-5))
        elif word in dict(alts):
            assert dict(alts)[word] == pytest.approx(prob, rel=1e-5)
    rows = cap.to_dict()["tokens"]
    assert all(set(r) == {"token", "prob", "alternatives"} for r in rows)
    assert rows[0]["alternatives"][0].keys() == {"token", "prob"}


@pytest.mark.parametrize("family", ["blip-caption", "git", "vit-gpt2"])
@pytest.mark.parametrize("decoding", [Decoding(), Decoding(strategy="beam", beams=3)])
def test_hub_captions_carry_runner_up_words(tiny_hub_models, scene_image, family, decoding):
    model = tiny_hub_models[family]
    cap = model.caption([scene_image], Decoding(**{**decoding.__dict__, "max_new_tokens": 5}))[0]
    specials = set(model.tokenizer.all_special_tokens)
    assert len(cap.alternatives) == len(cap.tokens) > 0
    for (word, prob), alts in zip(cap.tokens, cap.alternatives):
        assert len(alts) == 5 and not any(a in specials for a, _ in alts)
        probs = [p for _, p in alts]
        assert probs == sorted(probs, reverse=True) and all(0 < p <= 1 for p in probs)
        if decoding.strategy == "greedy":                       # the chosen token is the most probable word
            assert alts[0] == (word, pytest.approx(prob, rel=1e-4))


def test_caption_without_alternatives_keeps_its_json():
    assert Caption("a cat", [("a", 0.5), ("cat", 0.25)]).to_dict() == {
        "caption": "a cat", "tokens": [{"token": "a", "prob": 0.5}, {"token": "cat", "prob": 0.25}]}


# --- eval-explain --target caption-words -----------------------------------------------------------------------
@pytest.fixture(scope="module")
def cross():
    from helpers import require_weights

    require_weights("shapes-cross")
    import mmdemo

    return mmdemo.load("shapes-cross", device="cpu")


def test_caption_words_name_their_own_objects(cross):
    from mmdemo.explain.caption_words import KINDS, caption_words
    from mmdemo.train.evaluate import held_out
    from mmdemo.world.language import caption

    words, stats = caption_words(cross, 3)
    scenes = list(held_out(3))
    assert stats["scenes"] == 3 and 0 < stats["captions_correct"] <= 1 and words
    for w in words:
        assert w.word in KINDS[w.kind] and w.contrast in KINDS[w.kind] and w.contrast != w.word
        assert re.findall(r"\w+|[^\w\s]", w.caption)[w.token] == w.word
        scene = next(s for s, _, _ in scenes if caption(s) == w.caption)
        obj = next(o for o, mask in zip(scene.objects, scene.masks) if np.array_equal(mask, w.mask))
        assert w.word == {"colour": obj.color, "shape": obj.shape, "size": obj.size}[w.kind]
        assert w.objects == len(scene.objects)


def test_eval_caption_words_cli_json(cross, capsys, monkeypatch, tmp_path):
    from mmdemo.cli import main

    monkeypatch.setattr("mmdemo.cli.explain.load_model", lambda args: cross)
    saved = tmp_path / "cw.json"
    code = main(["eval-explain", "--target", "caption-words", "--methods", "saliency,attention", "--n", "2",
                 "--contrast", "--json", "--save", str(saved)])
    out = capsys.readouterr()
    assert code == 0, out.err
    report = json.loads(out.out)
    assert json.loads(saved.read_text()) == report
    assert report["target"] == "caption-words" and report["scenes"] == 2 and report["words"] > 0
    assert set(report["variants"]) == {"plain", "contrastive"}
    assert set(report["variants"]["plain"]) == {"saliency", "attention"}
    assert set(report["variants"]["contrastive"]) == {"saliency"}              # attention does not follow the score
    row = report["variants"]["contrastive"]["saliency"]
    assert set(row["pointing_game"]) == {"colour", "shape", "size", "all"}
    assert all(v is None or 0 <= v <= 1 for v in row["pointing_game"].values())
    assert row["deletion_auc"] is None                                        # curves: plain maps only
    assert 0 < report["variants"]["plain"]["saliency"]["deletion_auc"] <= 1
    assert 0 < report["random"]["deletion_auc"] <= 1
    assert sum(report["words_by_kind"].values()) == report["words"]
    assert report["recommended"]["method"] in ("saliency", "attention")
    code = main(["eval-explain", "--target", "caption-words", "--methods", "saliency", "--n", "1"])
    out = capsys.readouterr()
    assert code == 0 and "saliency" in out.out and "colour" in out.out


@pytest.mark.parametrize("args, message", [
    (["--contrast"], "--contrast goes with --target caption-words"),
    (["--target", "caption-words", "--n", "0"], "at least 1"),
    (["--target", "caption-words", "--save", "/no/such/dir/x.json"], "does not exist"),
    (["--target", "caption-words", "--methods", "text-ig", "--n", "1"], "explains words"),
])
def test_eval_caption_words_bad_input(cross, capsys, monkeypatch, args, message):
    from mmdemo.cli import main

    monkeypatch.setattr("mmdemo.cli.explain.load_model", lambda args: cross)
    code = main(["eval-explain", *args])
    err = capsys.readouterr().err
    assert code == 2 and message in err and "Traceback" not in err


# --- the measured rates the app shows ---------------------------------------------------------------------------
def test_measured_rates_come_from_the_card(tmp_path, monkeypatch):
    from mmdemo.explain import trust

    report = {"scenes": 10, "words_by_kind": {"colour": 5, "shape": 5, "size": 5},
              "variants": {"plain": {"ig": {"pointing_game": {"colour": 0.9, "shape": 0.5, "size": None}}},
                           "contrastive": {"ig": {"pointing_game": {"colour": 1.0, "shape": 0.96, "size": 1.0}}}},
              "recommended": {"method": "ig", "variant": "contrastive"}}
    (tmp_path / "models" / "m").mkdir(parents=True)
    (tmp_path / "models" / "m" / trust.RESULTS_FILE).write_text(json.dumps(report))
    monkeypatch.setattr(trust, "ASSETS", tmp_path)
    assert trust.word_kind("Circles") == "shape" and trust.word_kind("red") == "colour" and trust.word_kind("a") is None
    got = trust.measured("m", "ig", "square", contrastive=True)
    assert got == {"method": "ig", "variant": "contrastive", "kind": "shape", "pointing": 0.96, "words": 5,
                   "scenes": 10}
    assert "96%" in trust.describe(got) and "contrastive ig" in trust.describe(got)
    assert trust.measured("m", "ig", "small") is None                   # not measured
    assert trust.measured("m", "ig", "left") is None                    # not an attribute word
    assert trust.measured("other", "ig", "red") is None and trust.measured("../m", "ig", "red") is None
    assert trust.recommended("m") == {"method": "ig", "variant": "contrastive"}
    assert "Not measured" in trust.describe(None)


def test_service_hands_back_runner_ups_and_explains_contrasts(tmp_path):
    from mmdemo.models.base import Target
    from mmdemo.service import Service
    from helpers import example, tiny_models

    service = Service(preloaded=tiny_models(), store_url=f"sqlite:///{tmp_path / 'c.db'}")
    try:
        out = service.caption(example(1)["path"], "shapes-cross", {"max_new_tokens": 5}).to_dict()
        row = out["tokens"][1]
        other = next(a["token"] for a in row["alternatives"] if a["token"] != row["token"])
        e = service.explain(example(1)["path"], Target("token", out["caption"], token=1, contrast=other),
                            "shapes-cross", method="saliency")
        assert e.target.contrast == other and np.isfinite(e.raw).all() and e.raw.any()
    finally:
        service.close()
