"""Caption words: the runner-up words recorded beside each token, and `eval-explain --target caption-words`."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from mmdemo.models.base import Caption, Decoding
from mmdemo.world.render import render
from mmdemo.world.scene import sample_scene
from test_explain import tiny

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


def test_caption_without_alternatives_keeps_its_json():
    assert Caption("a cat", [("a", 0.5), ("cat", 0.25)]).to_dict() == {
        "caption": "a cat", "tokens": [{"token": "a", "prob": 0.5}, {"token": "cat", "prob": 0.25}]}
