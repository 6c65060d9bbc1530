"""Explanation methods: wiring on a hand-made linear model with hand-computed values, IG completeness, every
method on every fusion variant of a tiny ShapesNet, batching layout, caching, faithfulness metrics."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from helpers import require_weights, tiny
from mmdemo.errors import InputError
from mmdemo.explain import (CACHE, METHODS, available_methods, deletion_insertion, explain, mass_inside,
                            method_for, modality_share, pointing_game, randomization_check)
from mmdemo.explain._forward import ScoreFunction, image_baseline
from mmdemo.models.base import ExplainInputs, ModelInfo, Target, VLModel
from mmdemo.world.render import render
from mmdemo.world.scene import sample_scene

torch.set_num_threads(1)
QUESTION = "what color is the circle?"


# --- a toy model whose gradients are known by hand ---------------------------------------------------------------
class PatchSums(nn.Module):
    """(B, 3, 4, 4) -> (B, 4, 3): per 2×2 patch (raster order), the sum of each channel."""

    def forward(self, pixels):
        B = pixels.shape[0]
        return pixels.reshape(B, 3, 2, 2, 2, 2).sum((3, 5)).flatten(2).transpose(1, 2)


class Toy(VLModel):
    """score = Σ_p,c V[p, c]·patchsum(p, c) + Σ_t u·e(word_t): linear in pixels, patch sums and word vectors."""

    V = torch.tensor([[1.0, -2.0, 0.5], [0.0, 3.0, 1.0], [-1.0, 0.0, 2.0], [0.25, 0.25, 0.25]])   # (P=4, 3)
    u = torch.tensor([1.0, -1.0, 2.0])

    def __init__(self):
        self.info = ModelInfo(name="toy", tasks=("vqa",), fusion="cross", input_size=(4, 4), patch_grid=(2, 2))
        self.sums = PatchSums()
        self.words = nn.Embedding(5, 3)
        with torch.no_grad():
            self.words.weight.copy_(torch.tensor([[0.0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 1]]))

    @property
    def vision_layer(self):
        return self.sums

    def caption(self, images, decoding=None):
        raise NotImplementedError

    def answer(self, images, questions, top_k=5):
        raise NotImplementedError

    def prepare(self, images, targets):
        pixels = torch.stack([torch.from_numpy(np.asarray(im, dtype=np.float32) / 255).permute(2, 0, 1)
                              for im in images])
        ids = torch.tensor([[1, 2, 3, 4]] * len(images))
        return ExplainInputs(pixels, list(targets), [["[CLS]", "red", "<b>", "x"]] * len(images), {"ids": ids})

    def score(self, inputs, *, pixels=None):
        pixels = inputs.pixels if pixels is None else pixels
        assert pixels.shape[0] == inputs.extra["ids"].shape[0], "the engine hands over matching batches"
        image = (self.sums(pixels) * self.V).sum((1, 2))
        return image + (self.words(inputs.extra["ids"]) @ self.u).sum(1)

    def attention(self, inputs):
        B = inputs.pixels.shape[0]
        att = torch.tensor([[0.1, 0.2, 0.3, 0.4], [0.4, 0.3, 0.2, 0.1], [0.25] * 4, [0.25] * 4])   # (T, P)
        return att.expand(1, B, 1, 4, 4)

    @property
    def image_embedding(self):
        return self.sums

    @property
    def text_embedding(self):
        return self.words


@pytest.fixture(scope="module")
def toy_image():
    px = np.arange(48, dtype=np.float32).reshape(4, 4, 3) * 5 % 251
    return Image.fromarray(px.astype(np.uint8))


def patch_sums(image) -> np.ndarray:
    x = np.asarray(image, dtype=np.float64) / 255                                 # (4, 4, 3)
    return np.array([x[r:r + 2, c:c + 2].sum((0, 1)) for r in (0, 2) for c in (0, 2)])   # (P, 3)


TOY_TARGET = Target("answer", "yes", question="q")


def test_toy_gradients_by_hand(toy_image):
    V, S = Toy.V.numpy(), patch_sums(toy_image)
    toy = Toy()
    raw = lambda m, **o: explain(toy, toy_image, TOY_TARGET, m, cache=False, **o).raw.reshape(-1)  # noqa: E731
    np.testing.assert_allclose(raw("saliency"), 4 * np.abs(V).sum(1), rtol=1e-5)          # 4 pixels per patch
    np.testing.assert_allclose(raw("inputxgrad", baseline="black"), (V * S).sum(1), rtol=1e-5)
    # by default the input is measured from the median colour (an empty canvas): 4 pixels of it per patch
    pixels = np.asarray(toy_image, dtype=np.float64).reshape(-1, 3) / 255
    median = np.sort(pixels, 0)[(len(pixels) - 1) // 2]                   # torch's median: the lower middle value
    np.testing.assert_allclose(raw("inputxgrad"), (V * (S - 4 * median)).sum(1), rtol=1e-5, atol=1e-7)
    # linear score, black baseline: IG = (x - 0) · gradient, exactly, on pixels and on the patch sums
    np.testing.assert_allclose(raw("ig-pixels", baseline="black", steps=4), (V * S).sum(1), rtol=1e-5)
    np.testing.assert_allclose(raw("ig", baseline="black", steps=4), (V * S).sum(1), rtol=1e-5)
    # removing a patch (additive model) costs exactly its share; Shapley values of an additive game are the same
    np.testing.assert_allclose(raw("occlusion", baseline="black"), (V * S).sum(1), rtol=1e-5)
    np.testing.assert_allclose(raw("shapley", baseline="black", samples=2), (V * S).sum(1), rtol=1e-5)
    # Grad-CAM on the patch sums: channel weights = mean gradient over patches
    np.testing.assert_allclose(raw("gradcam"), S @ V.mean(0), rtol=1e-5)
    # answers read the attention of row 0
    np.testing.assert_allclose(raw("attention"), [0.1, 0.2, 0.3, 0.4], rtol=1e-6)


def test_toy_text_attributions_by_hand(toy_image):
    e = explain(Toy(), toy_image, TOY_TARGET, "text-ig", steps=4)
    # words "red", "<b>", "x" (ids 2, 3, 4; [CLS] is kept): u·e(id) = -1, 2, 2
    assert [t for t, _ in e.text] == ["red", "<b>", "x"]
    np.testing.assert_allclose([s for _, s in e.text], [-1.0, 2.0, 2.0], rtol=1e-5)
    assert e.grid.shape == (2, 2) and not e.raw.any() and not e.grid.any()


def test_toy_deletion_beats_random(toy_image):
    toy = Toy()
    good = explain(toy, toy_image, TOY_TARGET, "inputxgrad", baseline="black").grid
    r = deletion_insertion(toy, toy_image, TOY_TARGET, good, baseline="black", random_maps=8)
    assert len(r["deletion"]) == len(r["insertion"]) == len(r["fractions"]) == 5
    assert r["deletion"][0] == pytest.approx(r["insertion"][-1])          # the whole image at both ends
    assert r["deletion_auc"] < r["random"]["deletion_auc"]
    assert r["insertion_auc"] > r["random"]["insertion_auc"]


# --- tiny ShapesNets ----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def scene_image():
    scene = sample_scene(np.random.default_rng(3), 96, 80, n_objects=2)
    return render(scene)


FAST = {"ig": {"steps": 8}, "ig-pixels": {"steps": 8}, "text-ig": {"steps": 8}, "shapley": {"samples": 1}}
TARGETS = [Target("answer", "red", question=QUESTION), Target("caption", "a large red circle"),
           Target("token", "a large red circle", token=2)]


@pytest.mark.parametrize("fusion", ["cross", "early", "late"])
def test_every_method_gives_a_finite_map_on_the_grid(fusion, scene_image):
    model = tiny(fusion)
    methods = available_methods(model)
    expected = {"cross": {"relevance"}, "early": {"rollout", "relevance"}, "late": set()}[fusion]
    assert {"rollout", "relevance"} & set(methods) == expected
    assert {"attention", "ig", "ig-pixels", "saliency", "inputxgrad", "gradcam", "occlusion", "shapley",
            "text-ig"} <= set(methods)
    for i, target in enumerate(TARGETS):
        for m in methods if i != 1 else ["attention", "ig", "relevance"] if "relevance" in methods else ["ig"]:
            e = explain(model, scene_image, target, m, cache=False, **FAST.get(m, {}))
            assert e.grid.shape == e.raw.shape == (8, 8), m
            assert e.upsampled.shape == (80, 96), m                                 # the image's own (H, W)
            assert np.isfinite(e.raw).all() and np.isfinite(e.upsampled).all(), m
            assert e.grid.min() >= 0 and e.upsampled.min() >= 0, m
            if METHODS[m].output == "image":
                assert e.grid.max() == pytest.approx(1.0) or not e.raw.any(), m
                assert e.text is None
            else:
                assert e.text and all(np.isfinite(s) for _, s in e.text)


@pytest.mark.parametrize("fusion", ["cross", "early", "late"])
def test_ig_completeness_tiny(fusion, scene_image):
    model = tiny(fusion, seed=1)
    for target in (Target("answer", "blue", question=QUESTION), Target("token", "a large red circle", token=1)):
        check_completeness(model, scene_image, target)


def check_completeness(model, image, target, steps=64):
    inputs = model.prepare([image], [target])
    fn = ScoreFunction(model, inputs)
    with torch.no_grad():
        gap = float(fn(inputs.pixels) - fn(image_baseline(inputs.pixels, "median")))
    total = float(method_for("ig", model).attribute(inputs, steps=steps).sum())
    assert abs(gap) > 1e-6, "the test needs an image that moves the score"
    assert total == pytest.approx(gap, rel=0.05), (total, gap)


def test_ig_completeness_trained(scene_image):
    require_weights("shapes-cross")
    import mmdemo

    model = mmdemo.load("shapes-cross", device="cpu")
    answer = model.answer([scene_image], [QUESTION])[0].answer
    check_completeness(model, scene_image, Target("answer", answer, question=QUESTION))
    caption = model.caption([scene_image])[0].text
    check_completeness(model, scene_image, Target("caption", caption))


@pytest.mark.parametrize("fusion", ["cross", "early"])
def test_batched_equals_one_by_one(fusion, scene_image):
    """Several items in one call (Captum's expanded layout, padded questions) give each item its own map;
    batching the steps changes nothing."""
    model = tiny(fusion, seed=2)
    other = render(sample_scene(np.random.default_rng(9), 64, n_objects=3))
    targets = [Target("answer", "red", question=QUESTION), Target("answer", "2", question="how many objects?")]
    both = model.prepare([scene_image, other], targets)
    for name, opts in [("ig", {"steps": 8}), ("occlusion", {}), ("saliency", {}), ("relevance", {}), ("rollout", {}),
                       ("attention", {}), ("text-ig", {"steps": 8})]:
        if name not in available_methods(model):
            continue
        unit = method_for(name, model)
        joint = unit.attribute(both, **opts)
        for b, (im, t) in enumerate(zip([scene_image, other], targets)):
            alone = unit.attribute(model.prepare([im], [t]), **opts)[0]
            n = alone.shape[0]
            torch.testing.assert_close(joint[b][:n], alone, rtol=1e-3, atol=1e-6, msg=name)
    one = method_for("ig", model).attribute(model.prepare([scene_image], targets[:1]), steps=8, internal_batch_size=1)
    many = method_for("ig", model).attribute(model.prepare([scene_image], targets[:1]), steps=8)
    torch.testing.assert_close(one, many, rtol=1e-4, atol=1e-7)


def test_randomisation_changes_the_maps(scene_image):
    model = tiny("cross", seed=4)
    target = Target("answer", "red", question=QUESTION)
    for method in ("ig", "attention", "gradcam"):
        r = randomization_check(model, scene_image, target, method, **({"steps": 16} if method == "ig" else {}))
        assert r["changed"], (method, r["spearman"], r["spearman_abs"])
        assert r["original"].shape == r["randomized"].shape == (8, 8)
    # the original model is untouched
    assert explain(model, scene_image, target, "ig", cache=False, steps=16).raw == pytest.approx(
        explain(model, scene_image, target, "ig", cache=False, steps=16).raw)


def test_randomisation_trained(scene_image):
    require_weights("shapes-cross")
    import mmdemo

    model = mmdemo.load("shapes-cross", device="cpu")
    target = Target("answer", model.answer([scene_image], [QUESTION])[0].answer, question=QUESTION)
    for method in ("ig", "attention", "relevance"):
        assert randomization_check(model, scene_image, target, method)["changed"], method


def test_modality_share(scene_image):
    model = tiny("early", seed=5)
    s = modality_share(model, scene_image, Target("answer", "red", question=QUESTION), samples=2)
    assert s["image_share"] + s["text_share"] == pytest.approx(1.0)
    assert 0 <= s["image_share"] <= 1
    assert [t for t, _ in s["text"]] == ["what", "color", "is", "the", "circle", "?"]
    assert np.asarray(s["image"]).shape == (4, 4)


def test_cache_hits_and_keys(scene_image):
    CACHE.clear()
    model = tiny("cross", seed=6)
    t = Target("answer", "red", question=QUESTION)
    a = explain(model, scene_image, t, "attention")
    assert explain(model, scene_image, t, "attention") is a
    assert explain(model, scene_image.copy(), t, "attention") is a                  # same pixels, same entry
    assert explain(model, scene_image, t, "attention", layer=0) is not a
    assert explain(tiny("cross", seed=7), scene_image, t, "attention") is not a     # same name, other weights
    assert explain(model, scene_image, Target("answer", "blue", question=QUESTION), "attention") is not a
    assert CACHE.hits == 2


def test_explanations_of_one_model_from_threads_do_not_mix(scene_image):
    """Explanations hook the model's modules while they run; concurrent calls on one model take turns."""
    from concurrent.futures import ThreadPoolExecutor

    model = tiny("early", seed=8)
    t = Target("answer", "red", question=QUESTION)
    jobs = [("ig", {"steps": 8}), ("text-ig", {"steps": 8}), ("gradcam", {}), ("relevance", {})] * 2
    serial = [explain(model, scene_image, t, m, cache=False, **o) for m, o in jobs]
    with ThreadPoolExecutor(4) as pool:
        threaded = list(pool.map(lambda job: explain(model, scene_image, t, job[0], cache=False, **job[1]), jobs))
    for a, b in zip(serial, threaded):
        np.testing.assert_allclose(a.raw, b.raw, rtol=1e-4, atol=1e-7)
        assert (a.text is None) == (b.text is None)


def test_bad_requests_are_input_errors(scene_image):
    model = tiny("cross")
    t = Target("answer", "red", question=QUESTION)
    with pytest.raises(InputError, match="unknown explanation method 'nope'; known: attention"):
        explain(model, scene_image, t, "nope")
    with pytest.raises(InputError, match="cannot run 'rollout'"):
        explain(model, scene_image, t, "rollout")
    with pytest.raises(InputError, match="no option stpes; it takes steps"):
        explain(model, scene_image, t, "ig", stpes=3)
    with pytest.raises(InputError, match="layer 7 does not exist"):
        explain(model, scene_image, t, "attention", layer=7)
    with pytest.raises(InputError, match="unknown baseline"):
        explain(model, scene_image, t, "occlusion", baseline="pink")


def test_pointing_game_and_mass_inside():
    mask = np.zeros((40, 40), dtype=bool)
    mask[0:10, 0:10] = True                                   # the top-left patch of a 4×4 grid
    hit = np.zeros((4, 4))
    hit[0, 0] = 1.0
    miss = np.zeros((4, 4))
    miss[3, 3] = 1.0
    assert pointing_game(hit, mask) and not pointing_game(miss, mask)
    assert not pointing_game(np.ones((4, 4)), mask)           # a flat map points nowhere
    assert pointing_game(miss, [mask, np.rot90(np.rot90(mask))])  # any evidence object counts
    half = np.zeros((4, 4))
    half[0, 0] = half[3, 3] = 1.0
    assert mass_inside(half, mask) == pytest.approx(0.5)
    assert mass_inside(hit, mask) == pytest.approx(1.0) and mass_inside(np.zeros((4, 4)), mask) == 0.0
