"""photo-lite: the pretrained photo model (EfficientNet-Lite0 + MiniLM, late fusion) on the bundled photos — labels,
captions that hedge, the question forms it grounds and the can't-answer reply, the labelled question set, and the
explanation surface (differentiable score, every listed method). Loads the model once for the module."""
from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from helpers import require_weights
from mmdemo.config import ASSETS
from mmdemo.errors import InputError
from mmdemo.images import load_image
from mmdemo.models.base import Target
from mmdemo.models.photo.questions import parse
from mmdemo.models.efficientnet import pair_state_dict
from mmdemo.models.photo.vocabulary import join, load_vocabulary, named_spans, words
from mmdemo.models.photo.wording import Hedges, caption_text, caption_tokens

torch.set_num_threads(1)
PHOTOS = ASSETS / "photos"
CATS = {"Egyptian cat", "tabby cat", "tiger cat", "Persian cat", "Siamese cat"}
HELMETS = {"crash helmet", "football helmet"}
# photo -> (labels that match what it shows, how many of the top labels must include one)
LABELS = {
    "chelsea.jpg": (CATS, 1),
    "coffee.jpg": ({"espresso", "cup", "coffee mug"}, 1),
    "cameraman.jpg": ({"tripod"}, 1),
    "shuttle.jpg": ({"space shuttle"}, 1),
    "helmet.jpg": (HELMETS, 1),
    "grace_hopper.jpg": ({"military uniform"}, 1),
    "rocket.jpg": ({"missile", "projectile"}, 5),           # top-1 is "drilling platform": the launch towers
    "astronaut.jpg": (HELMETS, 5),                           # ImageNet has no astronaut; her helmet is in the top 5
    "cat_and_coffee.jpg": (CATS, 5),
    "helmet_and_cat.jpg": (CATS, 5),
}
TEST_SPLIT_BAR = 0.75           # measured 0.83 (30/36) on the test photos; see assets/models/photo-lite/README.md


@pytest.fixture(scope="module")
def model():
    require_weights("photo-lite")
    import mmdemo

    return mmdemo.load("photo-lite", device="cpu")


@pytest.fixture(scope="module")
def photos():
    return {p.name: load_image(p) for p in sorted(PHOTOS.glob("*.jpg"))}


# --- registration and weights --------------------------------------------------------------------------------
def test_registered_late_fusion_without_importing_torch():
    code = ("import sys; from mmdemo.models.registry import get_entry; e = get_entry('photo-lite'); "
            "print(e.fusion, ','.join(e.tasks), e.available(), 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out[:2] == ["late", "caption,vqa"]
    assert out[3] == "False"


def test_state_dict_is_paired_in_order_and_every_shape_checked():
    source = {"_conv_stem.weight": torch.ones(2, 3), "_fc.bias": torch.zeros(4)}
    paired = pair_state_dict(source, {"conv_stem.weight": torch.empty(2, 3), "classifier.bias": torch.empty(4)})
    assert list(paired) == ["conv_stem.weight", "classifier.bias"] and paired["conv_stem.weight"].sum() == 6
    with pytest.raises(ValueError, match="shape mismatch"):
        pair_state_dict(source, {"conv_stem.weight": torch.empty(3, 2), "classifier.bias": torch.empty(4)})
    with pytest.raises(ValueError, match="2 tensors"):
        pair_state_dict(source, {"conv_stem.weight": torch.empty(2, 3)})


def test_info_says_what_it_can_and_cannot_know(model):
    info = model.info
    assert (info.fusion, info.tasks, info.input_size, info.patch_grid) == ("late", ("caption", "vqa"), (224, 224),
                                                                          (7, 7))
    assert "1000 ImageNet" in info.knows and "no class for people" in info.knows and len(info.revision) == 12


# --- labels and captions -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(LABELS))
def test_imagenet_labels_match_what_the_photo_shows(model, photos, name):
    expected, within = LABELS[name]
    top = model.answer([photos[name]], ["what is this?"], top_k=within)[0].top_k
    assert expected & {label for label, _ in top}, f"{name}: top {within} are {top}"


def test_any_image_size_and_mode(model):
    images = [Image.new("RGB", (5, 3), (200, 30, 30)), Image.new("L", (1000, 40), 128),
              Image.new("RGBA", (64, 300), (10, 200, 10, 100)), Image.new("P", (33, 33))]
    assert model.pixels(images).shape == (4, 3, 224, 224)
    for c in model.caption(images):
        assert c.text and all(0 < p <= 1 for _, p in c.tokens)


def test_caption_names_the_cat_with_place_colour_and_token_probabilities(model, photos):
    cap = model.caption([photos["chelsea.jpg"]])[0]
    assert cap.text.startswith("a photo of an Egyptian cat") and "center" in cap.text
    assert [t for t, _ in cap.tokens] == words(cap.text) and join(words(cap.text)) == cap.text
    p_cat = model.answer([photos["chelsea.jpg"]], ["what is this?"])[0].prob
    assert dict(cap.tokens)["cat"] == pytest.approx(p_cat, abs=1e-5)
    assert all(0 < p <= 1 for _, p in cap.tokens)


def test_caption_wording_hedges_by_confidence():
    place, colour = ("center", 0.5), ("brown", 0.6)
    sure = caption_text(caption_tokens([("tabby cat", 0.9), ("tiger cat", 0.05)], place, colour))
    assert sure == "a photo of a tabby cat, in the center, mostly brown"
    likely = caption_text(caption_tokens([("drilling platform", 0.45), ("missile", 0.2)], place, colour))
    assert likely.startswith("probably a drilling platform or a missile,")
    unsure = caption_text(caption_tokens([("bubble", 0.05), ("nematode worm", 0.04)], ("across", 0.9), colour))
    assert unsure.startswith("I am not sure what this is: perhaps a bubble or a nematode worm, across the picture")
    tight = Hedges(sure=0.95, likely=0.9, unsure=0.5, alternative=0.01)
    assert caption_text(caption_tokens([("cup", 0.6), ("espresso", 0.3)], place, colour, tight)).startswith(
        "perhaps a cup or an espresso")


def test_caption_of_a_non_photo_hedges(model):
    noise = Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8))
    text = model.caption([noise])[0].text
    assert not text.startswith("a photo of") and text.split()[0] in ("perhaps", "probably", "I")


# --- questions ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("question, form, subject", [
    ("What is this?", "what", None), ("what is in the picture", "what", None), ("Is there a cat?", "is-there", "cat"),
    ("Are there any dogs in the image?", "is-there", "dogs"), ("Is this a cup?", "is-there", "cup"),
    ("Where is the space shuttle?", "where", "space shuttle"), ("where is it?", "where", None),
    ("What color is the helmet?", "colour", "helmet"), ("What is the colour of the cup?", "colour", "cup"),
    ("How many cats are there?", None, None), ("What colour are the cat's eyes?", None, None),
    ("Is the cat left of the cup?", None, None), ("Why is the sky blue?", None, None)])
def test_question_forms(question, form, subject):
    p = parse(question)
    assert (p.form, p.subject) == (form, subject)
    if subject:
        assert p.text[p.start:p.end] == subject


def test_grounded_answers(model, photos):
    from mmdemo.models.photo.model import NOT_SEEN

    pairs = [("chelsea.jpg", "is there a cat?", "yes"), ("chelsea.jpg", "is there a dog?", "no"),
             ("chelsea.jpg", "is there a kitty?", "yes"), ("cat_and_coffee.jpg", "where is the cat?", "left"),
             ("cat_and_coffee.jpg", "where is the cup?", "right"), ("helmet_and_cat.jpg", "where is the cat?",
                                                                     "bottom right"),
             ("chelsea.jpg", "what colour is the cat?", "brown"), ("coffee.jpg", "where is the dog?", NOT_SEEN)]
    answers = model.answer([photos[p] for p, _, _ in pairs], [q for _, q, _ in pairs], top_k=3)
    for (photo, q, expected), a in zip(pairs, answers):
        assert a.answer == expected, (photo, q, a)
        assert a.top_k[0] == (a.answer, a.prob) and len(a.top_k) <= 3
        assert sum(p for _, p in a.top_k) <= 1 + 1e-6


@pytest.mark.parametrize("question", ["How many cats are there?", "Is the cat sleeping?", "What is the man doing?",
                                      "Describe the picture.", "Is there a person?", "What colour is the sky?",
                                      "Is there a unicorn?"])
def test_other_questions_get_the_cant_answer_reply(model, photos, question):
    from mmdemo.models.photo.model import CANT, CANT_PROB

    a = model.answer([photos["chelsea.jpg"]], [question])[0]
    assert a.answer.startswith(CANT) and a.prob == CANT_PROB <= 0.05 and a.top_k == [(a.answer, a.prob)]


def test_empty_question_is_an_input_error(model, photos):
    with pytest.raises(InputError, match="empty"):
        model.answer([photos["chelsea.jpg"]], ["  "])


def test_labelled_questions_on_the_test_photos(model):
    from mmdemo.models.photo.evaluate import evaluate, items

    chosen = items("test")
    assert len(chosen) >= 30 and len({it.photo for it in chosen}) == 5
    result = evaluate(model, chosen)
    assert result["accuracy"] >= TEST_SPLIT_BAR, [r for r in result["rows"] if not r["correct"]]
    assert result["per_form"]["cant"]["accuracy"] == 1.0          # never a made-up answer where it can't know


def test_labelled_set_is_big_enough():
    from mmdemo.models.photo.evaluate import items

    everything = items()
    assert len(everything) >= 40 and len({it.photo for it in everything}) >= 10
    assert {it.photo for it in everything} <= {p.name for p in PHOTOS.glob("*.jpg")}


# --- explanation surface -----------------------------------------------------------------------------------------
def test_vocabulary_reads_class_names_in_captions():
    vocab = load_vocabulary()
    spans = named_spans(vocab, "probably an Egyptian cat or a tiger cat, in the center, mostly orange")
    assert [vocab.entries[s.entry].text for s in spans] == ["egyptian cat", "tiger cat"]
    assert vocab.lookup("plane").classes == vocab.lookup("airplane").classes       # the aircraft, not the tool


def test_score_is_the_log_probability_the_answer_reports(model, photos):
    image = photos["chelsea.jpg"]
    questions = ["is there a cat?", "is there a dog?", "what is this?"]
    answers = model.answer([image] * 3, questions)
    targets = [Target("answer", a.answer, question=q) for a, q in zip(answers, questions)]
    with torch.no_grad():
        scores = model.score(model.prepare([image] * 3, targets))
    torch.testing.assert_close(scores, torch.tensor([math.log(a.prob) for a in answers]), atol=1e-4, rtol=0)
    cap = model.caption([image])[0]
    with torch.no_grad():
        s = model.score(model.prepare([image], [Target("caption", cap.text)]))
    assert float(s) == pytest.approx(math.log(dict(cap.tokens)["Egyptian"]), abs=1e-4)


def test_score_is_differentiable_and_takes_expanded_batches(model, photos):
    image = photos["cat_and_coffee.jpg"]
    targets = [Target("caption", "a photo of an espresso"), Target("answer", "yes", question="is there a cat?")]
    inputs = model.prepare([image, image], targets)
    pixels = inputs.pixels.detach().clone().requires_grad_(True)
    score = model.score(inputs, pixels=pixels)
    (grad,) = torch.autograd.grad(score.sum(), pixels)
    assert score.shape == (2,) and torch.isfinite(grad).all() and grad.abs().sum() > 0
    with torch.no_grad():
        tiled = model.score(inputs, pixels=torch.cat([inputs.pixels] * 3))      # step-major, Captum's layout
    torch.testing.assert_close(tiled, score.detach().repeat(3), atol=1e-5, rtol=0)


def test_prepare_refuses_targets_it_cannot_explain(model, photos):
    image = photos["chelsea.jpg"]
    for target, match in [(Target("caption", "a lovely afternoon"), "names no ImageNet class"),
                          (Target("answer", "3", question="how many cats are there?"), "can't answer"),
                          (Target("answer", "dragon", question="what is this?"), "not an ImageNet class"),
                          (Target("answer", "maybe", question="is there a cat?"), "yes or no"),
                          (Target("token", "a photo of a cat", token=9), "out of range")]:
        with pytest.raises(InputError, match=match):
            model.prepare([image], [target])


def test_attention_is_refused_with_a_clear_error(model, photos):
    inputs = model.prepare([photos["chelsea.jpg"]], [Target("caption", "a photo of a cat")])
    with pytest.raises(InputError, match="no attention.*gradcam"):
        model.attention(inputs)


CHEAP = {"ig": {"steps": 4}, "ig-pixels": {"steps": 4}, "text-ig": {"steps": 4}, "shapley": {"samples": 1}}


def test_every_listed_method_gives_finite_maps_at_the_image_size(model, photos):
    explain_mod = pytest.importorskip("mmdemo.explain")
    image = photos["cat_and_coffee.jpg"]                                       # 512 × 256: not square
    target = Target("answer", "yes", question="is there a cat?")
    methods = explain_mod.available_methods(model)
    assert {"gradcam", "ig", "occlusion", "saliency", "text-ig"} <= set(methods)
    assert not {"attention", "rollout", "relevance"} & set(methods)        # no image-text attention to show
    for method in methods:
        e = explain_mod.explain(model, image, target, method, cache=False, **CHEAP.get(method, {}))
        assert e.upsampled.shape == (image.height, image.width), method
        assert np.isfinite(e.upsampled).all() and np.isfinite(e.raw).all(), method
        if method == "text-ig":
            weights = dict(e.text)
            assert weights["cat"] > 0 and weights["is"] == weights["there"] == 0      # only X reaches the score


def test_gradcam_agrees_with_the_closed_form_map(model, photos):
    explain_mod = pytest.importorskip("mmdemo.explain")
    image = photos["coffee.jpg"]
    e = explain_mod.explain(model, image, Target("answer", "espresso", question="what is this?"), "gradcam",
                            cache=False)
    with torch.no_grad():
        features, logits = model.forward(model.pixels([image]))
        probs = logits.softmax(-1)
        onehot = torch.zeros_like(probs)
        onehot[0, model.vocab.lookup("espresso").classes[0]] = 1
        closed = model.cam(features, probs, onehot)[0].numpy()
    assert np.corrcoef(e.raw.ravel(), closed.ravel())[0, 1] > 0.99
