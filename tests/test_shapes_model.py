"""The embedded shapes models through the common protocol, on tiny random nets built here."""
import math

import numpy as np
import pytest
import torch
from PIL import Image

from mmdemo import Answer, Caption, InputError, Target
from mmdemo.models.base import Decoding
from mmdemo.models.shapes.net import ShapesConfig, ShapesNet
from mmdemo.models.shapes.model import ShapesModel
from mmdemo.models.shapes.tokenizer import build_tokenizer, decode, vocabulary
from mmdemo.models.shapes import weights
from mmdemo.world.views import random_view
from mmdemo.world.vocab import ANSWERS

FUSIONS = ("early", "cross", "late")


def tiny(fusion: str, seed: int = 0, readout: bool = False) -> ShapesModel:
    torch.manual_seed(seed)
    cfg = ShapesConfig(fusion=fusion, dim=32, heads=2, image_layers=1, fusion_layers=2,
                       vocab_size=len(vocabulary()), n_answers=len(ANSWERS), readout=readout)
    return ShapesModel(ShapesNet(cfg), name=f"tiny-{fusion}")


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(0)
    return [random_view(rng)[1] for _ in range(3)]


def test_tokenizer_round_trip_and_word_pieces():
    tok = build_tokenizer()
    enc = tok.encode("How many Circles are there?")
    assert enc.tokens == ["[CLS]", "how", "many", "circle", "##s", "are", "there", "?", "[SEP]"]
    assert decode(enc.ids) == ["how", "many", "circles", "are", "there", "?"]
    assert tok.encode("what is a zebra").tokens[-2] == "[UNK]"


@pytest.mark.parametrize("fusion", FUSIONS)
def test_caption_and_answer_types(fusion, images):
    model = tiny(fusion)
    caps = model.caption(images, Decoding(max_new_tokens=5))
    assert len(caps) == 3 and all(isinstance(c, Caption) for c in caps)
    for c in caps:
        assert 1 <= len(c.tokens) <= 5
        assert all(0 < p <= 1 for _, p in c.tokens)
    answers = model.answer(images, ["what color is the circle?", "how many stars are there", "where is it?"], top_k=3)
    for a in answers:
        assert isinstance(a, Answer) and a.answer in ANSWERS and len(a.top_k) == 3
        assert a.top_k[0] == (a.answer, a.prob)
        assert a.top_k[0][1] >= a.top_k[1][1] >= a.top_k[2][1]
    assert model.info.fusion == fusion and model.info.patch_grid == (8, 8)


@pytest.mark.parametrize("fusion", FUSIONS)
def test_teacher_forced_score_equals_generation_log_probs(fusion, images):
    model = tiny(fusion)
    caps = model.caption(images, Decoding(max_new_tokens=6))
    inputs = model.prepare(images, [Target("caption", c.text) for c in caps])
    scores = model.score(inputs)
    expected = torch.tensor([sum(math.log(p) for _, p in c.tokens) for c in caps])
    assert torch.allclose(scores.detach(), expected, atol=1e-4)
    # one token given its prefix
    one = model.score(model.prepare(images[:1], [Target("token", caps[0].text, token=1)]))
    assert one.item() == pytest.approx(math.log(caps[0].tokens[1][1]), abs=1e-4)


@pytest.mark.parametrize("fusion", FUSIONS)
def test_answer_score_is_log_prob_and_differentiable(fusion, images):
    model = tiny(fusion)
    q = "what color is the circle?"
    a = model.answer(images[:1], [q], top_k=len(ANSWERS))[0]
    inputs = model.prepare(images[:1], [Target("answer", "red", question=q)])
    pixels = inputs.pixels.clone().requires_grad_(True)
    s = model.score(inputs, pixels=pixels)
    assert s.item() == pytest.approx(math.log(dict(a.top_k)["red"]), abs=1e-5)
    s.sum().backward()
    assert torch.isfinite(pixels.grad).all() and pixels.grad.abs().sum() > 0


@pytest.mark.parametrize("fusion", FUSIONS)
def test_attention_rows_are_distributions_over_the_patch_grid(fusion, images):
    model = tiny(fusion)
    inputs = model.prepare(images[:2], [Target("answer", "yes", question="is there a red star?")] * 2)
    att = model.attention(inputs)
    L, B, H, T, P = att.shape
    assert (B, P) == (2, 64) and H == 2 and L == model.info.attention_layers
    assert torch.isfinite(att).all()
    assert torch.allclose(att.sum(-1), torch.ones(L, B, H, T), atol=1e-4)


def test_score_expands_batches_step_major(images):
    model = tiny("cross")
    inputs = model.prepare(images[:2], [Target("answer", "red", question="what color is the star?"),
                                         Target("answer", "blue", question="what color is the circle?")])
    single = model.score(inputs).detach()
    expanded = model.score(inputs, pixels=inputs.pixels.repeat(3, 1, 1, 1)).detach()   # Captum: step-major
    assert torch.allclose(expanded.view(3, 2), single[None].expand(3, 2), atol=1e-5)


def test_any_image_size_and_batching_is_consistent(images):
    model = tiny("cross")
    odd = [Image.new("RGB", (17, 301), "white"), images[0].resize((500, 90))]
    assert len(model.answer(odd, ["how many objects are there?"] * 2)) == 2
    batched = model.answer(images, ["how many objects are there?"] * 3)
    single = [model.answer([im], ["how many objects are there?"])[0] for im in images]
    assert [a.answer for a in batched] == [a.answer for a in single]
    assert all(abs(a.prob - b.prob) < 1e-5 for a, b in zip(batched, single))


def test_decoding_settings(images):
    model = tiny("cross")
    greedy = model.caption(images[:1], Decoding(max_new_tokens=4))[0]
    beam = model.caption(images[:1], Decoding("beam", 4, beams=3))[0]
    s1 = model.caption(images[:1], Decoding("nucleus", 4, top_p=0.9, seed=3))[0]
    s2 = model.caption(images[:1], Decoding("nucleus", 4, top_p=0.9, seed=3))[0]
    assert s1 == s2                                    # seeded sampling repeats
    score = lambda c: sum(math.log(p) for _, p in c.tokens)  # noqa: E731
    if len(beam.tokens) == len(greedy.tokens):         # same length: beam never scores below greedy
        assert score(beam) >= score(greedy) - 1e-6


def test_bad_inputs_give_clear_errors(images):
    model = tiny("cross")
    with pytest.raises(InputError, match="empty"):
        model.answer(images[:1], ["   "])
    with pytest.raises(InputError, match="limit is 500"):
        model.answer(images[:1], ["why " * 300])
    with pytest.raises(InputError, match="2 questions"):
        model.answer(images[:1], ["a?", "b?"])
    with pytest.raises(InputError, match="not an answer this model knows"):
        model.prepare(images[:1], [Target("answer", "giraffe", question="what is it?")])
    with pytest.raises(InputError, match="out of range"):
        model.prepare(images[:1], [Target("token", "a small red circle", token=9)])


def test_weights_round_trip(tmp_path, images):
    model = tiny("early", seed=3)
    weights.save(model.net, tmp_path / "m", meta={"note": "test"})
    again = ShapesModel(weights.load_net(tmp_path / "m"), name="again")
    q = ["is there a blue square?"]
    assert model.answer(images[:1], q)[0].prob == pytest.approx(again.answer(images[:1], q)[0].prob, abs=1e-6)
    assert len(weights.revision(tmp_path / "m")) == 12


@pytest.mark.parametrize("fusion", ("early", "cross"))
def test_coordinate_readout_starts_silent_and_reads_where_words_look(fusion, images):
    from mmdemo.models.shapes.blocks import grid_coords

    plain, with_readout = tiny(fusion, seed=5), tiny(fusion, seed=5, readout=True)
    missing, unexpected = with_readout.net.load_state_dict(plain.net.state_dict(), strict=False)
    assert missing and all("coord_out" in k for k in missing) and not unexpected
    q = ["is the red circle above the blue star?"] * 2
    a, b = plain.answer(images[:2], q, top_k=3), with_readout.answer(images[:2], q, top_k=3)
    assert [x.answer for x in a] == [x.answer for x in b]
    assert [x.prob for x in a] == pytest.approx([x.prob for x in b], abs=1e-5)
    # patch centres, raster order: first patch top left, last bottom right, x varies fastest
    c = grid_coords(8)
    assert c.shape == (64, 2) and c[0].tolist() == pytest.approx([-0.875, -0.875]) and c[1, 0] > c[0, 0]
    assert c[-1].tolist() == pytest.approx([0.875, 0.875])
    # once the readout has weights, the fused word states depend on where the words looked
    net = with_readout.net
    image, ids = net.encode_image(with_readout.pixels(images[:2])), with_readout.question_ids(q)
    with torch.no_grad():
        before = net.text_states(image, ids, causal=False)
        for m in net.modules():
            if getattr(m, "coord_out", None) is not None:
                torch.nn.init.normal_(m.coord_out.weight, std=1.0)
        after = net.text_states(image, ids, causal=False)
    assert (after - before).abs().max() > 1e-3


def test_readout_adds_the_coordinates_a_head_attends_to():
    from mmdemo.models.shapes.blocks import Attention, grid_coords

    torch.manual_seed(0)
    att = Attention(8, heads=2, readout=True)
    torch.nn.init.normal_(att.coord_out.weight)
    x, ctx, coords = torch.randn(1, 3, 8), torch.randn(1, 4, 8), grid_coords(2)          # 4 keys on a 2×2 grid
    mask = torch.zeros(1, 1, 3, 4, dtype=torch.bool)
    mask[..., 0, 3] = mask[..., 1, 1] = True                  # query 0 may see key 3 only, query 1 key 1 only
    mask[..., 2, :] = True                                    # query 2 sees every key
    with torch.no_grad():
        got = att(x, ctx, mask, key_coords=coords)
        plain = att(x, ctx, mask)                              # no coordinates: no readout
        att.record = True
        att(x, ctx, mask, key_coords=coords)
    where = att.weights @ coords                                                          # (1, h, 3, 2)
    torch.testing.assert_close(where[0, :, 0], coords[3].expand(2, 2))                  # both heads: that key
    torch.testing.assert_close(where[0, :, 1], coords[1].expand(2, 2))
    expected = plain + att.coord_out(where.transpose(1, 2).reshape(1, 3, 4))
    torch.testing.assert_close(got, expected)


def test_training_can_start_from_another_fusion(tmp_path):
    from mmdemo.train.shapes import _load_init

    weights.save(tiny("cross", seed=1).net, tmp_path / "cross", meta={})
    early = tiny("early", seed=2, readout=True)
    fresh = _load_init(early.net, tmp_path / "cross")
    assert fresh and all("coord_out" in k or "modality" in k for k in fresh), fresh
    source = weights.load_net(tmp_path / "cross")
    assert torch.equal(early.net.patch_embed.pos, source.patch_embed.pos)
    assert torch.equal(early.net.word_embed.weight, source.word_embed.weight)
    late = tiny("late", seed=3)
    assert any("pool" in k for k in _load_init(late.net, tmp_path / "cross"))
    other = tiny("cross", seed=4)
    other.net.word_embed = torch.nn.Embedding(7, 32)          # a model that does not fit
    with pytest.raises(ValueError, match="does not fit"):
        _load_init(other.net, tmp_path / "cross")


def test_explain_inputs_tile_step_major_and_refuse_other_row_counts(images):
    model = tiny("cross")
    inputs = model.prepare(images[:2], [Target("answer", "yes", question="is there a red star?"),
                                        Target("answer", "no", question="is there a blue circle?")])
    assert inputs.tiled(2) is inputs
    t = inputs.tiled(6)
    assert t.pixels.shape[0] == 6 and [x.text for x in t.targets] == ["yes", "no"] * 3
    for j in range(3):                        # step j holds items 0, 1 in order
        assert torch.equal(t.pixels[2 * j:2 * j + 2], inputs.pixels)
        assert torch.equal(t.extra["ids"][2 * j:2 * j + 2], inputs.extra["ids"])
    assert t.extra["causal"] is False
    with pytest.raises(InputError, match="not a multiple of the 2"):
        inputs.tiled(5)


def test_cross_attention_reuses_keys_only_for_the_same_unchanged_context():
    from mmdemo.models.shapes.blocks import Attention, grid_coords

    torch.manual_seed(0)
    att = Attention(8, heads=2, readout=True).eval()
    x, a, b, coords = torch.randn(1, 3, 8), torch.randn(1, 4, 8), torch.randn(1, 4, 8), grid_coords(2)
    with torch.no_grad():
        first = att(x, a, key_coords=coords)
        assert att(x, a, key_coords=coords).equal(first)                 # reused
        other = att(x, b, key_coords=coords)
        b.mul_(2)                                                          # modified in place: not reused
        changed = att(x, b, key_coords=coords)
    with torch.enable_grad():
        fresh = [att(x, c, key_coords=coords) for c in (a, b / 2, b)]
    torch.testing.assert_close(first, fresh[0])
    torch.testing.assert_close(other, fresh[1])
    torch.testing.assert_close(changed, fresh[2])
