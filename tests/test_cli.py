"""The CLI contract: JSON shapes, and bad input → exit code 2 with one line on stderr."""
import io
import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from helpers import require_weights
from mmdemo.world.render import render
from mmdemo.world.scene import sample_scene


def run(*args, timeout=120):
    return subprocess.run([sys.executable, "-m", "mmdemo", *args], capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def scene_png(tmp_path_factory):
    path = tmp_path_factory.mktemp("img") / "scene.png"
    scene = sample_scene(0, 128, n_objects=1)
    render(scene).save(path)
    return path, scene


def test_models_json_lists_the_embedded_models():
    out = run("models", "--json")
    assert out.returncode == 0, out.stderr
    rows = json.loads(out.stdout)
    names = {r["name"] for r in rows}
    assert {"shapes-cross", "shapes-early", "shapes-late"} <= names
    for r in rows:
        assert set(r) >= {"name", "tasks", "fusion", "available"}
        assert isinstance(r["available"], bool)


@pytest.mark.parametrize("make, expect", [
    (lambda p: p.write_bytes(b""), "empty"),
    (lambda p: p.write_text("just some text, not a picture"), "not an image"),
    (lambda p: p.write_bytes(_jpeg()[:300]), "truncated or corrupt"),
])
def test_bad_images_exit_2_with_one_line(tmp_path, make, expect):
    path = tmp_path / "bad.jpg"
    make(path)
    for cmd in (["caption", str(path)], ["ask", str(path), "what color is the circle?"]):
        out = run(*cmd)
        assert out.returncode == 2
        lines = out.stderr.strip().splitlines()
        assert len(lines) == 1 and expect in lines[0] and "Traceback" not in out.stderr


def test_missing_file_unknown_model_empty_question(scene_png):
    path, _ = scene_png
    out = run("caption", "/no/such/file.png")
    assert out.returncode == 2 and "no such file" in out.stderr
    out = run("caption", str(path), "--model", "nope")
    assert out.returncode == 2 and "unknown model 'nope'" in out.stderr and "shapes-cross" in out.stderr
    out = run("ask", str(path), "   ")
    assert out.returncode == 2 and "question is empty" in out.stderr
    out = run("ask")
    assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1


def test_too_many_pixels(tmp_path, monkeypatch):
    path = tmp_path / "big.png"
    Image.new("RGB", (300, 300), "white").save(path)
    out = subprocess.run([sys.executable, "-m", "mmdemo", "caption", str(path)], capture_output=True, text=True,
                         env={**__import__("os").environ, "MMDEMO_MAX_PIXELS": "10000"})
    assert out.returncode == 2 and "the limit is" in out.stderr and "MMDEMO_MAX_PIXELS" in out.stderr


def test_caption_and_ask_json(scene_png):
    require_weights("shapes-cross")
    path, scene = scene_png
    out = run("caption", str(path), "--json")
    assert out.returncode == 0, out.stderr
    cap = json.loads(out.stdout)
    assert set(cap) == {"model", "caption", "tokens", "seconds"}
    assert cap["model"] == "shapes-cross"
    assert cap["caption"] == " ".join(t["token"] for t in cap["tokens"])
    assert all(0 < t["prob"] <= 1 for t in cap["tokens"])
    o = scene.objects[0]
    out = run("ask", str(path), f"what color is the {o.shape}?", "--json")
    ans = json.loads(out.stdout)
    assert set(ans) == {"model", "question", "answer", "prob", "top_k", "seconds"}
    assert ans["answer"] == o.color
    assert ans["top_k"][0] == {"answer": ans["answer"], "prob": ans["prob"]}


def _jpeg() -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(buf, "JPEG")
    return buf.getvalue()
