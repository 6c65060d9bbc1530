"""Photos are told apart from shapes-world scenes, and the service suggests the photo model for them."""
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mmdemo.service import Service

PHOTO_MODEL = "photo-lite"
from mmdemo.world.detect import looks_like_scene
from mmdemo.world.views import random_view

ASSETS = Path(__file__).resolve().parent.parent / "assets"
PHOTOS = sorted((ASSETS / "photos").glob("*.jpg"))


def test_every_drawing_of_the_world_looks_like_a_scene():
    rng = np.random.default_rng(0)
    assert all(looks_like_scene(random_view(rng)[1]) for _ in range(100))
    assert all(looks_like_scene(Image.open(p)) for p in (ASSETS / "examples").glob("*.png"))


@pytest.mark.parametrize("path", PHOTOS, ids=lambda p: p.name)
def test_bundled_photos_do_not(path):
    assert not looks_like_scene(Image.open(path))


def test_service_suggests_the_photo_model_for_photos_only():
    service = Service()
    offered = {c.name for c in service.models()}
    if PHOTO_MODEL not in offered or "shapes-cross" not in offered:
        pytest.skip("needs shapes-cross and photo-lite")
    assert service.suggest(PHOTOS[0], "shapes-cross") == PHOTO_MODEL
    assert service.suggest(ASSETS / "examples" / "scene-1.png", "shapes-cross") is None
    assert service.suggest(PHOTOS[0], PHOTO_MODEL) is None
