"""The shipped weights meet their bars on held-out scenes never seen in training (seeds disjoint from training)."""
import numpy as np
import pytest

import mmdemo
from helpers import require_weights
from mmdemo.train.evaluate import evaluate, held_out, mention_f1

# (overall VQA, every question type, caption mention F1, caption exact match): shapes-cross holds the issue's
# bars; the other variants are held to regression guards below what their model cards report on 1,000 scenes.
BARS = {
    "shapes-cross": (0.97, 0.90, 0.97, 0.80),   # 200 scenes here: 0.995, lowest type relation 0.936
    "shapes-early": (0.97, 0.90, 0.97, 0.80),   # 200 scenes here: 0.990, relation 0.944 (0.866 on 1,000)
    "shapes-late": (0.70, 0.20, 0.80, 0.65),    # 200 scenes here: 0.764, where 0.265, F1 0.878, exact 0.805
}
FLOORS = {"shapes-early": {"relation": 0.80}}   # per-type exceptions to a model's bar


def test_late_fusion_cannot_say_where_or_compare(report):
    """Joined only at the head through one pooled image vector, late fusion counts well but cannot locate."""
    name, r = report
    if name != "shapes-late":
        pytest.skip("a late-fusion property")
    by = r["vqa_by_type"]
    assert by["count_all"] > 0.9 and by["count_shape"] > 0.9
    assert by["where"] < 0.5 and by["relation"] < 0.75


@pytest.fixture(scope="module", params=sorted(BARS))
def report(request):
    require_weights(request.param)
    model = mmdemo.load(request.param, device="cpu")
    return request.param, evaluate(model, n=200, seed=1, variations=True, progress=False)


def test_vqa_and_caption_bars_on_varied_drawings(report):
    name, r = report
    overall, per_type, f1, exact = BARS[name]
    assert r["vqa_accuracy"] >= overall, r
    floors = FLOORS.get(name, {})
    low = {t: a for t, a in r["vqa_by_type"].items() if a < floors.get(t, per_type)}
    assert not low, f"{name}: question types below {per_type}: {low}"
    assert r["mention_f1"] >= f1 and r["caption_exact"] >= exact, r


def test_plain_scenes_too():
    require_weights("shapes-cross")
    r = evaluate(mmdemo.load("shapes-cross", device="cpu"), n=100, seed=2, variations=False, progress=False)
    assert r["vqa_accuracy"] >= 0.95 and r["mention_f1"] >= 0.95, r


def test_held_out_scenes_differ_from_training_views():
    from mmdemo.train.data import _chunk
    from mmdemo.train.shapes import TRAIN_SEED

    _, _, _, train_scenes = _chunk((TRAIN_SEED, 0, 20, 64, 8, True))
    test_scenes = [s for s, _, _ in held_out(20, seed=1)]
    key = lambda s: tuple((o.shape, o.color, round(o.center[0], 3)) for o in s.objects)  # noqa: E731
    assert not {key(s) for s in train_scenes} & {key(s) for s in test_scenes}


def test_mention_f1_known_values():
    assert mention_f1("a large red circle", "a large red circle") == 1.0
    assert mention_f1("a small red circle", "a large red circle") == 0.0
    assert mention_f1("a large red circle to the left of a small blue star", "a large red circle") == pytest.approx(2 / 3)
    assert np.isclose(mention_f1("", ""), 1.0)
