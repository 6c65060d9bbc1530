"""A model family defined in this file only — registered, captioned, asked, explained with every method it
declares, through the Python API, the CLI (`$MMDEMO_FAMILIES` names this module) and the app — with no edit
anywhere else. If explain/, service/ or ui/ knew a family by name, this family would not work."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from mmdemo.models.base import Answer, Caption, Decoding, ExplainInputs, ModelInfo, Target, VLModel
from mmdemo.models.registry import ModelEntry, get_entry, register
from helpers import serve

NAME = "fake-rgb"
COLOURS = ("red", "green", "blue")
METHODS = ("attention", "ig", "saliency", "gradcam", "occlusion")
HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


class PatchMeans(nn.Module):
    """(B, 3, 4, 4) -> (B, 4, 3): each 2×2 patch's mean colour, raster order."""

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        B = pixels.shape[0]
        return pixels.reshape(B, 3, 2, 2, 2, 2).mean((3, 5)).flatten(2).transpose(1, 2)


class FakeRGB(VLModel):
    """Names the dominant colour. Answer logits: 8 × the mean colour over patches, weighted by attention from
    the question's words; a caption is "a <colour> image"."""

    explain_methods = METHODS

    def __init__(self):
        self.info = ModelInfo(name=NAME, tasks=("caption", "vqa"), fusion="cross", input_size=(4, 4),
                              patch_grid=(2, 2), revision="fake-1", knows="the dominant colour of an image")
        self.patches = PatchMeans()
        self.words = nn.Embedding(8, 3)
        with torch.no_grad():                           # the question's words look for red
            self.words.weight.copy_(torch.tensor([3.0, -1.0, -1.0]).expand(8, 3))

    def pixels(self, images) -> torch.Tensor:
        arrays = [np.asarray(im.convert("RGB").resize((4, 4)), dtype=np.float32) / 255 for im in images]
        return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2)                          # (B, 3, 4, 4)

    def _logits(self, pixels: torch.Tensor, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        tokens = self.patches(pixels)                                                         # (B, 4, 3)
        query = self.words(ids).mean(1)                                                       # (B, 3)
        att = torch.softmax((tokens * query[:, None]).sum(-1), -1)                            # (B, 4)
        return 8 * (att[..., None] * tokens).sum(1), att                                     # (B, 3), (B, 4)

    def caption(self, images, decoding: Decoding | None = None) -> list[Caption]:
        out = []
        for a in self.answer(images, ["what colour is it?"] * len(images)):
            out.append(Caption(f"a {a.answer} image", [("a", 1.0), (a.answer, a.prob), ("image", 1.0)]))
        return out

    def answer(self, images, questions, top_k: int = 5) -> list[Answer]:
        with torch.no_grad():
            logits, _ = self._logits(self.pixels(images), torch.ones(len(images), 2, dtype=torch.long))
        out = []
        for row in logits.softmax(-1):
            ranked = sorted(zip(COLOURS, row.tolist()), key=lambda x: -x[1])[:top_k]
            out.append(Answer(ranked[0][0], ranked[0][1], ranked))
        return out

    def prepare(self, images, targets) -> ExplainInputs:
        labels = []
        for t in targets:
            words = t.text.split()
            word = words[t.token] if t.kind == "token" else next((w for w in words if w in COLOURS), words[0])
            labels.append(COLOURS.index(word) if word in COLOURS else 0)
        B = len(images)
        return ExplainInputs(self.pixels(images), list(targets), [["colour", "?"]] * B,
                             {"ids": torch.ones(B, 2, dtype=torch.long), "label": torch.tensor(labels)})

    def score(self, inputs: ExplainInputs, *, pixels: torch.Tensor | None = None) -> torch.Tensor:
        pixels = inputs.pixels if pixels is None else pixels
        logits, _ = self._logits(pixels, inputs.extra["ids"])
        return logits.log_softmax(-1).gather(1, inputs.extra["label"][:, None])[:, 0]

    def attention(self, inputs: ExplainInputs) -> torch.Tensor:
        _, att = self._logits(inputs.pixels, inputs.extra["ids"])
        return att[None, :, None, None, :].expand(1, -1, 1, 2, -1)                              # (1, B, 1, T, 4)

    @property
    def image_embedding(self) -> nn.Module:
        return self.patches

    @property
    def text_embedding(self) -> nn.Module:
        return self.words


def build(name: str, device: str | None = None) -> FakeRGB:
    return FakeRGB()


try:
    get_entry(NAME)
except Exception:
    register(ModelEntry(NAME, ("caption", "vqa"), "cross", "a fake family from a test file", f"{__name__}:build",
                        lambda: True, domain="photos"))


# --- the tests ------------------------------------------------------------------------------------------------
def red_image(path: Path) -> Path:
    image = np.zeros((32, 32, 3), np.uint8)
    image[..., 0] = 220
    image[:16, :16] = (20, 20, 200)                     # one blue quarter: the map should avoid it for "red"
    Image.fromarray(image).save(path)
    return path


def test_python_api_runs_every_declared_method(tmp_path):
    import mmdemo
    from mmdemo.explain import available_methods, explain

    model = mmdemo.load(NAME)
    image = mmdemo.load_image(red_image(tmp_path / "red.png"))
    assert model.caption([image])[0].text == "a red image"
    assert model.answer([image], ["what colour?"])[0].answer == "red"
    assert available_methods(model) == list(METHODS)
    for method in METHODS:
        e = explain(model, image, Target("token", "a red image", token=1), method=method)
        assert e.grid.shape == (2, 2) and np.isfinite(e.grid).all() and e.grid.max() == pytest.approx(1.0)
        assert e.grid[0, 0] < e.grid.max(), f"{method}: the blue quarter is not where red is"


def run_cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "MMDEMO_FAMILIES": __name__, "PYTHONPATH": os.pathsep.join([str(HERE), str(ROOT)])}
    return subprocess.run([sys.executable, "-m", "mmdemo", *args], capture_output=True, text=True, timeout=120,
                          env=env, cwd=ROOT)


def test_cli_finds_the_family_and_runs_it(tmp_path):
    image = str(red_image(tmp_path / "red.png"))
    listed = run_cli("models", "--json")
    assert listed.returncode == 0, listed.stderr
    assert NAME in {row["name"] for row in json.loads(listed.stdout)}
    cap = run_cli("caption", image, "--model", NAME, "--json")
    assert cap.returncode == 0, cap.stderr
    assert json.loads(cap.stdout)["caption"] == "a red image"
    ans = run_cli("ask", image, "what colour is it?", "--model", NAME, "--json")
    assert ans.returncode == 0, ans.stderr
    assert json.loads(ans.stdout)["answer"] == "red"
    out = run_cli("explain", image, "--model", NAME, "--token", "1", "--method", "ig", "--out",
                  str(tmp_path / "map.png"), "--json")
    assert out.returncode == 0, out.stderr
    payload = json.loads(out.stdout)
    assert payload["grid"] == [2, 2] and (tmp_path / "map.png").is_file()
    refused = run_cli("explain", image, "--model", NAME, "--method", "relevance", "--out", str(tmp_path / "m.png"))
    assert refused.returncode == 2 and "relevance" in refused.stderr and len(refused.stderr.strip().splitlines()) == 1


def test_app_endpoints_serve_the_family(tmp_path, monkeypatch):
    gradio_client = pytest.importorskip("gradio_client")
    from mmdemo.service import Service

    monkeypatch.setenv("MMDEMO_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("MMDEMO_DATABASE_URL", raising=False)
    monkeypatch.setenv("MMDEMO_DEFAULT_MODEL", NAME)
    image = gradio_client.handle_file(str(red_image(tmp_path / "red.png")))
    demo, url = serve(Service())
    try:
        client = gradio_client.Client(url, verbose=False)
        out = client.predict(image, NAME, "greedy", 8, 3, 0.9, 1.0, -1, api_name="/caption")
        assert out["caption"] == "a red image" and out["decoding"] == {"strategy": "greedy", "max_new_tokens": 8}
        ans = client.predict(image, "what colour is it?", NAME, 3, api_name="/ask")
        assert ans["answer"] == "red" and len(ans["top_k"]) == 3
        for method in ("attention", "occlusion"):
            overlay, info = client.predict(image, NAME, out["caption"], 1, method, 0.5, "jet", api_name="/explain")
            assert info["method"] == method and info["grid"] == [2, 2] and Path(overlay).is_file()
    finally:
        demo.close()
