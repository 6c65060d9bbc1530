"""easy-VQA: question forms, growing a model's words and answers, and a fine-tune round trip on the real splits."""
import json
import subprocess
import sys

import pytest
import torch

from mmdemo.models.shapes import weights
from mmdemo.models.shapes.model import ShapesModel
from mmdemo.models.shapes.net import ShapesConfig, ShapesNet
from mmdemo.models.shapes.tokenizer import build_tokenizer, vocabulary
from mmdemo.train.easyvqa import adapt, kind, load_split
from mmdemo.world.vocab import ANSWERS


def tiny_net(seed: int = 0) -> ShapesNet:
    torch.manual_seed(seed)
    return ShapesNet(ShapesConfig(fusion="cross", dim=32, heads=2, image_layers=1, fusion_layers=1,
                                  vocab_size=len(vocabulary()), n_answers=len(ANSWERS))).eval()


def test_question_forms():
    assert kind("what is the blue shape?") == "shape"
    assert kind("what color is the shape?") == "color"
    assert kind("what is the color of the shape?") == "color"
    assert kind("does the image contain a rectangle?") == "yes/no"
    assert kind("is there a red shape in the image?") == "yes/no"
    assert kind("is there not a circle in the image?") == "yes/no"


def test_adapt_keeps_what_both_know_and_grows_the_rest():
    net = tiny_net()
    answers = ["circle", "teal", "rectangle", "yes", "red"]
    grown = adapt(net, ["does", "contain", "rectangle", "teal", "red"], answers)
    old_v = len(vocabulary())
    assert grown.cfg.extra_words == ("does", "contain", "rectangle", "teal") and grown.cfg.answers == tuple(answers)
    assert grown.word_embed.weight.shape[0] == old_v + 4
    assert torch.equal(grown.word_embed.weight[:old_v], net.word_embed.weight)
    last_new, last_old = grown.answer_head[-1], net.answer_head[-1]
    for i, a in enumerate(answers):
        if a in ANSWERS:
            assert torch.equal(last_new.weight[i], last_old.weight[ANSWERS.index(a)])
    assert torch.equal(grown.patch_embed.pos, net.patch_embed.pos)
    tok = build_tokenizer(extra=grown.cfg.extra_words)
    assert "[UNK]" not in tok.encode("does the image contain a teal rectangle?").tokens
    # the image pathway is untouched: same image tokens
    px = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(grown.encode_image(px), net.encode_image(px))


def test_splits_are_the_fixed_ones():
    test = load_split("test")
    assert len(test.questions) == len(test.answers) == len(test.image_index) == 9673
    assert test.pixels.shape == (1000, 3, 64, 64) and test.pixels.dtype == torch.uint8
    assert set(test.answers) <= {"circle", "green", "red", "gray", "yes", "teal", "black", "rectangle", "yellow",
                                 "triangle", "brown", "blue", "no"}


def test_cli_fine_tunes_saves_and_reports(tmp_path):
    weights.save(tiny_net(1), tmp_path / "tiny", meta={})
    out = tmp_path / "tuned"
    run = subprocess.run([sys.executable, "-m", "mmdemo", "easy-vqa", "--init", str(tmp_path / "tiny"), "--steps",
                          "3", "--limit", "256", "--batch", "32", "--threads", "1", "--out", str(out), "--json"],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)
    assert report["test"]["questions"] == 256 and 0 <= report["test"]["accuracy"] <= 1
    assert set(report["test"]["by_form"]) <= {"shape", "color", "yes/no"}
    assert json.loads((out / "easy-vqa.json").read_text()) == report
    model = ShapesModel(weights.load_net(out), name="tuned")
    assert "teal" in model.answers and len(model.answers) == 13
    from PIL import Image
    answer = model.answer([Image.new("RGB", (64, 64), "white")], ["does the image contain a teal rectangle?"])[0]
    assert answer.answer in model.answers


def test_cli_refuses_a_missing_model(tmp_path):
    run = subprocess.run([sys.executable, "-m", "mmdemo", "easy-vqa", "--init", str(tmp_path / "nope")],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 2 and "no shapes model" in run.stderr and "Traceback" not in run.stderr
