"""The shapes world: sampler, renderer, captions, questions — the contract other tools rely on."""
import re

import numpy as np
import pytest

from mmdemo.world.language import all_questions, caption, sample_question
from mmdemo.world.render import render
from mmdemo.world.scene import MIN_X_GAP, sample_scene
from mmdemo.world.views import patch_labels, random_view
from mmdemo.world.vocab import ANSWERS, COLORS, POSITIONS, QUESTION_TYPES, SHAPES, SIZES

MENTION = rf"a ({'|'.join(SIZES)}) ({'|'.join(COLORS)}) ({'|'.join(SHAPES)})"


def test_sampler_is_seeded_and_respects_counts():
    a, b = sample_scene(5, 128), sample_scene(5, 128)
    assert [(o.shape, o.color, o.size, o.center) for o in a.objects] == \
           [(o.shape, o.color, o.size, o.center) for o in b.objects]
    counts = {len(sample_scene(s, 128).objects) for s in range(200)}
    assert counts == {1, 2, 3, 4}


@pytest.mark.parametrize("seed", range(30))
def test_objects_do_not_overlap_and_stay_inside(seed):
    scene = sample_scene(seed, 160, 120)
    image = render(scene)
    assert image.size == (160, 120) and image.mode == "RGB"
    masks = np.stack(scene.masks)
    assert masks.sum(0).max() <= 1, "objects overlap"
    assert all(m.any() for m in masks)
    for o in scene.objects:
        x0, y0, x1, y1 = o.bbox
        assert x0 >= 0 and y0 >= 0 and x1 <= 160 and y1 <= 120
    xs = sorted(o.center[0] for o in scene.objects)
    assert all(b - a >= MIN_X_GAP * 160 for a, b in zip(xs, xs[1:]))


def test_object_pixels_have_their_color():
    scene = sample_scene(3, 200, n_objects=3)
    image = np.asarray(render(scene, noise=0)).astype(int)
    background = np.array(scene.background)
    for o, m in zip(scene.objects, scene.masks):
        inside = image[m].mean(0)
        assert np.abs(inside - np.array(o.rgb)).max() < 25
        assert np.abs(inside - background).max() > 60


def test_caption_names_every_object_left_to_right():
    for seed in range(50):
        scene = sample_scene(seed, 128)
        text = caption(scene)
        found = re.findall(MENTION, text)
        assert [" ".join(f) for f in found] == [o.name for o in scene.left_to_right()]
        if len(scene.objects) == 2:
            assert " to the left of " in text
    one = sample_scene(0, 128, n_objects=1)
    assert re.fullmatch(MENTION, caption(one))


def test_every_answer_is_in_the_vocabulary_and_types_are_covered():
    seen = set()
    for seed in range(100):
        scene = sample_scene(seed, 128)
        for q in all_questions(scene):
            assert q.answer in ANSWERS, q
            assert q.text == q.text.lower() and q.text.endswith("?")
            seen.add(q.type)
    assert seen == set(QUESTION_TYPES)


def test_known_answers_on_a_hand_checked_scene():
    scene = sample_scene(11, 128, n_objects=2)
    a, b = scene.left_to_right()
    qs = {q.text: q for q in all_questions(scene)}
    assert qs["how many objects are there?"].answer == "2"
    if (a.color, a.shape) != (b.color, b.shape):
        q = qs[f"is the {a.color} {a.shape} left of the {b.color} {b.shape}?"]
        assert q.answer == "yes" and set(q.evidence) == {scene.objects.index(a), scene.objects.index(b)}
        assert qs[f"is the {b.color} {b.shape} left of the {a.color} {a.shape}?"].answer == "no"
    n_shape = sum(o.shape == a.shape for o in scene.objects)
    assert qs[f"how many {a.shape}s are there?"].answer == str(n_shape)
    assert qs[f"is there a {a.color} {a.shape}?"].answer == "yes"


def test_where_uses_the_3x3_grid():
    scene = sample_scene(2, 300, n_objects=1)
    o = scene.objects[0]
    o.center = (40.0, 260.0)
    assert scene.position(o) == "bottom left"
    o.center = (150.0, 150.0)
    assert scene.position(o) == "center"
    assert set(POSITIONS) >= {scene.position(o)}


def test_questions_with_specific_objects_record_evidence():
    rng = np.random.default_rng(0)
    for seed in range(40):
        scene = sample_scene(seed, 128)
        q = sample_question(scene, rng)
        if q.type in ("color", "shape", "size", "where"):
            assert len(q.evidence) == 1
            o = scene.objects[q.evidence[0]]
            assert o.color in q.text or o.shape in q.text


def test_sampled_yes_no_questions_are_balanced():
    rng = np.random.default_rng(1)
    answers = [sample_question(sample_scene(s, 128), rng, "exists").answer for s in range(400)]
    assert 0.4 < answers.count("yes") / len(answers) < 0.6


def test_views_vary_size_and_patch_labels_match_masks():
    rng = np.random.default_rng(4)
    sizes = set()
    for _ in range(10):
        scene, image = random_view(rng)
        sizes.add(image.size)
        assert image.size == (scene.width, scene.height)
        labels = patch_labels(scene, 8)
        assert labels.shape == (64, 3)
        assert (labels[:, 0] > 0).sum() >= 1            # at least one patch is covered by an object
        assert ((labels > 0).all(1) | (labels == 0).all(1)).all()
    assert len(sizes) > 5
