"""The explanation methods on photo-lite (EfficientNet-Lite0 + MiniLM, late fusion, weights from pip packages):
no attention to show, finite maps on its 7×7 grid for the gradient and perturbation methods, word attributions."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from helpers import require_weights
from mmdemo.config import ASSETS
from mmdemo.explain import available_methods, explain
from mmdemo.models.base import Target


@pytest.fixture(scope="module")
def photo():
    require_weights("photo-lite")
    import mmdemo

    return mmdemo.load("photo-lite", device="cpu")


def test_photo_lite_maps(photo):
    image = Image.open(ASSETS / "photos" / "chelsea.jpg").convert("RGB")
    methods = available_methods(photo)
    assert "attention" not in methods and "rollout" not in methods and "relevance" not in methods
    assert {"ig", "gradcam", "occlusion", "saliency", "text-ig"} <= set(methods)
    target = Target("answer", "yes", question="is there a cat?")
    for m, opts in [("gradcam", {}), ("ig", {"steps": 4}), ("saliency", {}), ("text-ig", {"steps": 4})]:
        e = explain(photo, image, target, m, cache=False, **opts)
        assert e.grid.shape == (7, 7) and e.upsampled.shape == (image.height, image.width)
        assert np.isfinite(e.raw).all() and e.grid.min() >= 0
    words = dict(e.text)
    assert set(words) == {"is", "there", "a", "cat"} and words["cat"] != 0
