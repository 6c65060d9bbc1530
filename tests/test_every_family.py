"""Every model family through every public path: `python -m mmdemo caption|ask|explain … --model NAME_OR_FOLDER
--json` and the app's /caption, /ask and /explain endpoints — the embedded shapes models, photo-lite, and tiny random
BLIP caption, BLIP VQA, ViLT, GIT, ViT-GPT2 and ViT+BERT checkpoints saved with `save_pretrained`."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import mmdemo
from helpers import serve
from mmdemo.explain import available_methods
from mmdemo.models.registry import get_entry
from tiny_hub import BUILDERS

ROOT = Path(__file__).resolve().parent.parent
EMBEDDED = ["shapes-cross", "shapes-early", "shapes-late", "photo-lite"]
IMAGE = ROOT / "assets" / "examples" / "scene-1.png"
QUESTION = "what color is the square?"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """name -> the --model argument: a registered name, or a tiny checkpoint folder."""
    root = tmp_path_factory.mktemp("tiny_hub_every_family")
    out = {name: name for name in EMBEDDED if get_entry(name).available()}
    for name, build in BUILDERS.items():
        build(root / name)
        out[name] = str(root / name / "model" if name == "vit-bert" else root / name)
    return out


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    home = tmp_path_factory.mktemp("hf_home")
    return {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(home), "PYTHONPATH": str(ROOT),
            "MMDEMO_DATA_DIR": str(tmp_path_factory.mktemp("data")), "OMP_NUM_THREADS": "1"}


def cli(env, *args):
    proc = subprocess.run([sys.executable, "-m", "mmdemo", *args], capture_output=True, text=True, timeout=180,
                          env=env, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


@pytest.mark.parametrize("name", EMBEDDED + list(BUILDERS))
def test_the_cli_runs_every_family(models, env, tmp_path, name):
    if name not in models:
        pytest.skip(f"{name}'s weights are not on this machine")
    arg = models[name]
    model = mmdemo.load(arg)
    if "caption" in model.info.tasks:
        cap = cli(env, "caption", str(IMAGE), "--model", arg, "--max-new-tokens", "6", "--json")
        assert set(cap) == {"model", "caption", "tokens", "seconds"}
        assert cap["caption"] == model.caption([mmdemo.load_image(IMAGE)], mmdemo.Decoding(max_new_tokens=6))[0].text
        assert all(0 <= t["prob"] <= 1 for t in cap["tokens"])
    if "vqa" in model.info.tasks:
        ans = cli(env, "ask", str(IMAGE), QUESTION, "--model", arg, "--top-k", "2", "--json")
        assert set(ans) == {"model", "question", "answer", "prob", "top_k", "seconds"}
        assert ans["answer"] == ans["top_k"][0]["answer"] and len(ans["top_k"]) <= 2
    method = available_methods(model)[0]
    extra = ["--question", QUESTION] if "caption" not in model.info.tasks else ["--token", "0"]
    exp = cli(env, "explain", str(IMAGE), *extra, "--model", arg, "--method", method,
              "--out", str(tmp_path / "map.png"), "--json")
    h, w = model.info.patch_grid
    assert exp["method"] == method and exp["grid"] == [h, w] and len(exp["map"]) == h
    assert (tmp_path / "map.png").is_file()
    if "caption" in model.info.tasks and cap["caption"].strip():          # every token's map: the sheet
        sheet = cli(env, "explain", str(IMAGE), "--target", cap["caption"], "--all-tokens", "--model", arg,
                    "--method", method, "--out", str(tmp_path / "sheet.png"), "--json")
        assert [t["token"] for t in sheet["tokens"]] == list(range(len(sheet["tokens"]))) and sheet["tokens"]
        assert all(t["text"] and len(t["map"]) == h and Path(t["out"]).is_file() for t in sheet["tokens"])


def test_the_app_serves_every_family(models, env, monkeypatch):
    gradio_client = pytest.importorskip("gradio_client")
    from mmdemo.service import Service

    monkeypatch.setenv("MMDEMO_DATA_DIR", env["MMDEMO_DATA_DIR"])
    monkeypatch.delenv("MMDEMO_DATABASE_URL", raising=False)
    loaded = {name: mmdemo.load(arg) for name, arg in models.items()}
    demo, url = serve(Service(preloaded=loaded))
    image = gradio_client.handle_file(str(IMAGE))
    try:
        client = gradio_client.Client(url, verbose=False)
        for name, model in loaded.items():
            method = available_methods(model)[0]
            if "caption" in model.info.tasks:
                cap = client.predict(image, name, "greedy", 6, 3, 0.9, 1.0, -1, api_name="/caption")
                assert cap["model"] == model.info.name and isinstance(cap["caption"], str), name
                if cap["caption"].strip():
                    _, info = client.predict(image, name, cap["caption"], 0, method, 0.5, "jet", api_name="/explain")
                    assert info["grid"] == list(model.info.patch_grid), name
                    gallery, status = client.predict(image, name, cap["caption"], method, 0.5, "jet",
                                                     api_name="/explain_sheet")
                    assert gallery and status.startswith(f"{method}: all {len(gallery)} of {len(gallery)}"), name
            if "vqa" in model.info.tasks:
                ans = client.predict(image, QUESTION, name, 3, api_name="/ask")
                assert ans["model"] == model.info.name and ans["answer"] == ans["top_k"][0]["answer"], name
    finally:
        demo.close()
