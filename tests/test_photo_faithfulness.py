"""photo-lite's explanations on real photos: deleting the patches Grad-CAM or IG rank first lowers the probability of
the photo's class faster than deleting them in random order (lower deletion AUC), on every bundled photo.

The class explained is the one the photo shows (questions.json's answers to "what is this?"): the model's own top
label when it is one of those, else the first of them (rocket.jpg: "missile", where the model's top-1 is "drilling
platform"; astronaut.jpg: "crash helmet", where it is "bobsled"). Slow: about 5 s per photo on one busy core."""
from __future__ import annotations

import pytest
import torch

from helpers import require_weights
from mmdemo.config import ASSETS
from mmdemo.images import load_image
from mmdemo.models.base import Target

pytestmark = pytest.mark.slow
torch.set_num_threads(1)
PHOTOS = sorted(p.name for p in (ASSETS / "photos").glob("*.jpg"))
STEPS = 7                       # points on the deletion curve: every 7 of the 49 patches
IG_STEPS = 8


@pytest.fixture(scope="module")
def model():
    require_weights("photo-lite")
    import mmdemo

    return mmdemo.load("photo-lite", device="cpu")


def shown_class(model, photo: str, image) -> Target:
    from mmdemo.models.photo.evaluate import items

    gold = next(it for it in items() if it.photo == photo and it.form == "what")
    top = model.answer([image], [gold.question])[0].answer
    label = top if top in gold.answers else gold.answers[0]
    return Target("answer", label, question=gold.question)


@pytest.mark.parametrize("photo", PHOTOS)
def test_gradcam_and_ig_beat_a_random_map_at_deletion(model, photo):
    explain_mod = pytest.importorskip("mmdemo.explain")
    image = load_image(ASSETS / "photos" / photo)
    target = shown_class(model, photo, image)
    cam = explain_mod.explain(model, image, target, "gradcam", cache=False)
    ig = explain_mod.explain(model, image, target, "ig", cache=False, steps=IG_STEPS)
    by_cam = explain_mod.deletion_insertion(model, image, target, cam.raw, steps=STEPS, random_maps=3)
    by_ig = explain_mod.deletion_insertion(model, image, target, ig.raw, steps=STEPS, random_maps=0)
    random = by_cam["random"]["deletion_auc"]
    assert by_cam["deletion_auc"] < random, (target.text, by_cam["deletion_auc"], random)
    assert by_ig["deletion_auc"] < random, (target.text, by_ig["deletion_auc"], random)
