"""Pretraining (masked words, image–text matching), the frozen ImageNet encoder, the training stages and the
transfer study, on tiny models and pools."""
import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from mmdemo.models.base import Decoding
from mmdemo.models.shapes import weights
from mmdemo.models.shapes.blocks import BackboneEmbed
from mmdemo.models.shapes.model import ShapesModel
from mmdemo.models.shapes.net import ShapesConfig, ShapesNet, itm_pairs, mask_words, pretrain_losses
from mmdemo.models.shapes.tokenizer import CLS, MASK, PAD, SEP, build_tokenizer, vocabulary
from mmdemo.train.config import TrainConfig
from mmdemo.train.shapes import run_name, train
from mmdemo.train.transfer import QUICK, accuracy, grounding, run_study, table, vqa_set
from mmdemo.world.views import random_view
from mmdemo.world.vocab import ANSWERS

ROOT = Path(__file__).resolve().parent.parent
V = len(vocabulary())


def tiny_cfg(fusion="cross", encoder="patch", **kw) -> ShapesConfig:
    return ShapesConfig(fusion=fusion, dim=32, heads=2, image_layers=1, fusion_layers=1, vocab_size=V,
                        n_answers=len(ANSWERS), readout=True, encoder=encoder,
                        image_size=224 if encoder != "patch" else 64, **kw)


def captions(n=6, seed=0):
    tok = build_tokenizer()
    rng = np.random.default_rng(seed)
    from mmdemo.world.language import caption

    rows = [tok.encode(caption(random_view(rng)[0])).ids for _ in range(n)]
    from mmdemo.models.shapes.preprocess import pad_ids

    return pad_ids(rows)


def test_mask_words_asks_only_words_and_at_least_one_per_caption():
    ids = captions(32)
    masked, targets = mask_words(ids, 0.15, torch.Generator().manual_seed(0), V)
    asked = targets != 0
    assert asked.any(1).all()                                          # every caption asks something
    assert not (asked & ((ids == PAD) | (ids == CLS) | (ids == SEP))).any()
    assert torch.equal(targets[asked], ids[asked])                     # the target is the original word
    assert torch.equal(masked[~asked], ids[~asked])                    # nothing else changes
    assert (masked[asked] == MASK).float().mean() > 0.6                # most asked words become [MASK]
    assert masked.max() < V
    again, _ = mask_words(ids, 0.15, torch.Generator().manual_seed(0), V)
    assert torch.equal(masked, again)                                  # seeded


def test_itm_pairs_swap_half_and_label_identical_captions_as_matches():
    ids = captions(64)
    paired, match = itm_pairs(ids, torch.Generator().manual_seed(1))
    same = (paired == ids).all(1)
    assert torch.equal(match.bool(), same)
    assert 0.3 < (1 - match.float().mean()) < 0.7                       # about half are mismatched
    twins = ids[:1].repeat(8, 1)                                       # every caption the same: all match
    assert itm_pairs(twins, torch.Generator().manual_seed(1))[1].all()


@pytest.mark.parametrize("fusion", ("early", "cross", "late"))
def test_pretraining_lowers_its_losses_on_a_small_batch(fusion):
    torch.manual_seed(0)
    net = ShapesNet(tiny_cfg(fusion))
    itm = torch.nn.Linear(net.answer_head[0].in_features, 2)
    rng = np.random.default_rng(0)
    from mmdemo.models.shapes.preprocess import to_pixels

    views = [random_view(rng) for _ in range(8)]
    pixels = torch.from_numpy(np.stack([to_pixels(im, 64) for _, im in views])).float() / 255
    tok = build_tokenizer()
    from mmdemo.models.shapes.preprocess import pad_ids
    from mmdemo.world.language import caption

    caps = pad_ids([tok.encode(caption(s)).ids for s, _ in views])
    opt = torch.optim.AdamW(list(net.parameters()) + list(itm.parameters()), lr=3e-3)
    net.train()

    def loss(seed):
        parts = pretrain_losses(net, itm, pixels, caps, torch.Generator().manual_seed(seed))
        return parts["mlm"] + parts["itm"]

    with torch.no_grad():
        before = np.mean([loss(s).item() for s in range(4)])
    for step in range(60):
        opt.zero_grad()
        loss(100 + step).backward()
        opt.step()
    with torch.no_grad():
        after = np.mean([loss(s).item() for s in range(4)])
    assert after < 0.7 * before


def test_imagenet_encoder_loads_the_package_weights_and_stays_frozen():
    from mmdemo.models.photo import _sources
    from mmdemo.models.efficientnet import build_classifier

    embed = BackboneEmbed(32, 224)
    embed.load_imagenet()
    reference = build_classifier(_sources.vision_weights())
    assert torch.equal(embed.backbone[0].weight, reference.conv_stem.weight)
    assert torch.equal(embed.backbone[2][-1][-1].bn3.running_mean, reference.blocks[-1][-1].bn3.running_mean)
    embed.train()
    assert not embed.backbone.training and embed.proj.training       # batch-norm statistics stay ImageNet's
    assert not any(p.requires_grad for p in embed.backbone.parameters())
    pixels = torch.rand(2, 3, 224, 224)
    feats = embed.features(pixels)
    assert feats.shape == (2, 49, 320)
    # the features are the classifier's own last-stage map, token by token in raster order
    ref = reference.blocks(reference.bn1(reference.conv_stem((pixels - 0.5) / 0.5)))
    assert torch.allclose(feats, ref.flatten(2).transpose(1, 2), atol=1e-5)


def test_a_shapes_model_on_the_imagenet_encoder_answers_captions_and_explains():
    torch.manual_seed(0)
    net = ShapesNet(tiny_cfg("cross", "efficientnet_lite0"))
    assert net.cfg.grid == 7 and net.patch_coords.shape == (49, 2)
    pixels = torch.rand(2, 3, 224, 224)
    with torch.no_grad():
        direct = net.encode_image(pixels)
        cached = net.encode_image(features=net.patch_embed.features(pixels).half())   # what a training pool stores
    assert direct.shape == (2, 49, 32)
    assert torch.allclose(direct, cached, atol=2e-2)
    model = ShapesModel(net, name="tiny-imagenet")
    image = Image.new("RGB", (90, 60), "white")
    assert model.info.patch_grid == (7, 7)
    assert model.answer([image], ["what color is the circle?"])[0].answer in ANSWERS
    assert isinstance(model.caption([image], Decoding(max_new_tokens=4))[0].text, str)
    from mmdemo import Target
    from mmdemo.explain import explain

    exp = explain(model, image, Target("answer", "circle", question="what shape is it?"), "ig", steps=4, cache=False)
    assert exp.grid.shape == (7, 7) and np.isfinite(exp.grid).all()


def test_unknown_encoder_and_stage_are_refused(tmp_path):
    with pytest.raises(ValueError, match="encoder"):
        ShapesConfig(encoder="resnet")
    with pytest.raises(ValueError, match="stage"):
        train(TrainConfig(stage="distill", run_dir=str(tmp_path)))
    with pytest.raises(ValueError, match="data_fraction"):
        train(TrainConfig(data_fraction=0, run_dir=str(tmp_path)))


def test_pretrain_then_finetune_on_a_share_of_the_data(tmp_path):
    common = dict(fusion="cross", steps=3, warmup=1, batch=4, questions=2, pool=16, run_dir=str(tmp_path),
                  eval_every=0, threads=1)
    pre = train(TrainConfig(stage="pretrain", **common), net_cfg=tiny_cfg(), resume=False)
    assert pre == tmp_path / "pretrained" / "shapes-cross-pretrain"
    meta = json.loads((pre / "config.json").read_text())["training"]
    assert meta["stage"] == "pretrain" and meta["steps"] == 3
    state = torch.load(tmp_path / "shapes-cross-pretrain" / "checkpoint.pt", weights_only=False)
    assert set(state["itm"]) == {"weight", "bias"} and state["step"] == 3     # resumable, ITM head included
    cfg = TrainConfig(stage="finetune", init=str(pre), data_fraction=0.25, tasks=("vqa",), out=str(tmp_path / "ft"),
                      **common)
    assert run_name(cfg) == "shapes-cross-shapes-cross-pretrain-tuned-data0.25"
    out = train(cfg, net_cfg=tiny_cfg(), resume=False)
    tuned, start = weights.load_net(out), weights.load_net(pre)
    assert not torch.equal(tuned.answer_head[0].weight, start.answer_head[0].weight)
    assert torch.equal(tuned.aux_head.weight, start.aux_head.weight)        # a loss left out trains nothing
    assert json.loads((out / "config.json").read_text())["training"]["data_fraction"] == 0.25


def test_imagenet_encoder_training_keeps_the_backbone_and_caches_features(tmp_path):
    common = dict(fusion="late", encoder="efficientnet_lite0", steps=2, warmup=1, batch=4, questions=1, pool=8,
                  run_dir=str(tmp_path), eval_every=0, threads=1)
    out = train(TrainConfig(stage="finetune", tasks=("vqa", "aux"), out=str(tmp_path / "m"), **common),
                net_cfg=tiny_cfg("late", "efficientnet_lite0"), resume=False)
    pool = torch.load(tmp_path / "pool-8-224-efficientnet_lite0.pt", weights_only=False)
    assert pool.features.shape == (8, 49, 320) and pool.features.dtype == torch.float16 and pool.pixels.numel() == 0
    reference = BackboneEmbed(32, 224)
    reference.load_imagenet()
    trained = weights.load_net(out).patch_embed.backbone.state_dict()
    assert all(torch.equal(v, trained[k]) for k, v in reference.backbone.state_dict().items())


def test_accuracy_counts_known_answers():
    data = vqa_set(6, seed=3)
    torch.manual_seed(0)
    net = ShapesNet(tiny_cfg())
    yes = ANSWERS.index("yes")
    with torch.no_grad():                       # an answer head that always says "yes"
        last = net.answer_head[-1]
        last.weight.zero_()
        last.bias.fill_(-10.0)
        last.bias[yes] = 10.0
    report = accuracy(net, data)
    truth = (data.answers == yes).float()
    assert report["questions"] == len(data.answers)
    assert report["vqa_accuracy"] == pytest.approx(truth.mean().item())
    for t, acc in report["vqa_by_type"].items():
        rows = [i for i, ty in enumerate(data.types) if ty == t]
        assert acc == pytest.approx(truth[rows].mean().item())


def test_grounding_counts_masked_words_by_kind():
    """A model that always says "red" gets colours right exactly when the hidden colour is red, never a shape."""
    torch.manual_seed(0)
    net = ShapesNet(tiny_cfg())
    red = vocabulary().index("red")
    real = net.word_logits
    asked_red = []

    def always_red(image, ids, causal):
        out = torch.zeros(*real(image, ids, causal=causal).shape)
        out[..., red] = 1.0
        asked_red.extend(ids.tolist())
        return out

    net.word_logits = always_red
    report = grounding(net, 40, seed=5)
    k = report["by_kind"]
    assert k["shape"] == 0 and k["size"] == 0 and 0 < k["colour"] < 1
    assert report["masked_word_accuracy"] == pytest.approx(
        k["colour"] * sum(1 for r in asked_red if MASK in r and _asks_colour(r)) / 40)


def _asks_colour(row):
    """Captions name objects 'a SIZE COLOUR SHAPE': a masked word right after a size word is a colour."""
    from mmdemo.world.vocab import SIZES

    return vocabulary()[row[row.index(MASK) - 1]] in SIZES


def test_transfer_study_runs_every_cell_and_resumes(tmp_path):
    settings = replace(QUICK, fusions=("late",), encoders=("patch",), eval_scenes=3)
    results = tmp_path / "transfer.json"
    done = run_study(settings, tmp_path / "work", results, progress=False)
    cells = done["cells"]
    assert len(cells) == 6                                             # 2 starts × 3 shares of the data
    assert {c["images"] for c in cells.values()} == {1, 2, 24}
    assert all(0 <= c["vqa_accuracy"] <= 1 for c in cells.values())
    assert (tmp_path / "work" / "pretrained" / "late-patch" / "model.safetensors").is_file()
    stamp = results.stat().st_mtime_ns
    again = run_study(settings, tmp_path / "work", results, progress=False)       # nothing left to run
    assert again["cells"] == cells and again["seconds"] == done["seconds"]
    md = table(again)
    assert md.count("\n") == 3 and "| patch stem (no prior) | late | MLM + ITM |" in md
    learned = again["pretraining"]["late-patch"]
    assert 0 <= learned["masked_word_accuracy"] <= 1 and set(learned["by_kind"]) <= {"colour", "shape", "size"}
    assert results.stat().st_mtime_ns >= stamp


def test_transfer_study_command_quick(tmp_path):
    r = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_transfer.py"), "--quick", "--threads", "1",
                        "--out", str(tmp_path / "out"), "--work", str(tmp_path / "work")],
                       capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    done = json.loads((tmp_path / "out" / "transfer.json").read_text())
    assert len(done["cells"]) == 2 * 3 * 2 * 3                         # encoders × fusions × starts × shares
    png = Image.open(tmp_path / "out" / "transfer.png")
    assert png.size[0] > png.size[1] > 200
    md = (tmp_path / "out" / "transfer.md").read_text()
    study, taught = md.split("What pretraining taught")
    assert study.count("EfficientNet-Lite0") == 6 and taught.count("EfficientNet-Lite0") == 3   # rows per table


def test_training_is_seeded(tmp_path):
    """The same recipe twice gives the same weights, bit for bit; another seed does not."""
    def run(folder, seed):
        cfg = TrainConfig(stage="pretrain", fusion="early", steps=2, warmup=1, batch=4, pool=8, seed=seed,
                          run_dir=str(tmp_path / "runs"), out=str(tmp_path / folder), eval_every=0, threads=1)
        return weights.load_net(train(cfg, net_cfg=tiny_cfg("early"), resume=False)).state_dict()

    a, b, c = run("a", 0), run("b", 0), run("c", 1)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)
