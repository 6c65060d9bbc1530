"""What several test files share: tiny models, the example scenes, odd images, and the app served on a free port.
(Fixtures live in conftest.py; these are plain functions.)"""
from __future__ import annotations

import io
import json
import os
import socket
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest
from PIL import Image

from mmdemo.config import ASSETS
from mmdemo.models.registry import get_entry

EXAMPLES = ASSETS / "examples"
TRAINED = get_entry("shapes-cross").available()
CHROMIUM = os.environ.get("MMDEMO_CHROMIUM", "/usr/lib/chromium/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
BROWSER_TIMEOUT_MS = 30_000


def playwright_or_skip():
    """playwright.sync_api, or skip the calling test module (no Debian Chromium, or no playwright package)."""
    if not Path(CHROMIUM).is_file():
        pytest.skip(f"no Chromium at {CHROMIUM}: run `bash .ci/browser.sh` (Debian package `chromium`) to install it",
                    allow_module_level=True)
    return pytest.importorskip("playwright.sync_api", reason="the playwright Python package is not installed")


def require_weights(name: str) -> None:
    """Skip when a shipped model's weights are absent, except in CI where they must be there."""
    if not get_entry(name).available():
        if os.environ.get("CI") == "true":
            pytest.fail(f"{name} weights (or the packages that carry them) are missing in CI")
        pytest.skip(f"{name} weights not trained yet")


def tiny_model(name: str = "shapes-cross", fusion: str = "cross", seed: int = 0, *, scaled: bool = False):
    """A randomly initialised, tiny shapes model (no weights needed): right types, meaningless answers.

    scaled: weights drawn at 1/sqrt(fan-in) (the training init, std 0.02, leaves the image almost no say in a
    random net's output; explanation tests want the image to matter)."""
    import torch

    from mmdemo.models.shapes.model import ShapesModel
    from mmdemo.models.shapes.net import ShapesConfig, ShapesNet
    from mmdemo.models.shapes.tokenizer import vocabulary
    from mmdemo.world.vocab import ANSWERS

    torch.manual_seed(seed)
    cfg = ShapesConfig(fusion=fusion, dim=32, heads=2, vocab_size=len(vocabulary()), n_answers=len(ANSWERS))
    net = ShapesNet(cfg)
    if scaled:
        with torch.no_grad():
            for p in net.parameters():
                if p.dim() >= 2:
                    p.normal_(0, p[0].numel() ** -0.5)
    return ShapesModel(net, name=name)


def tiny(fusion: str, seed: int = 0):
    """A tiny shapes model of this fusion at the training init's scale for explanations (`tiny_model(scaled=True)`)."""
    return tiny_model(f"tiny-{fusion}", fusion, seed, scaled=True)


def tiny_models() -> dict:
    """Tiny random early, cross and late models under the registered names (for the app without weights)."""
    return {f"shapes-{f}": tiny_model(f"shapes-{f}", f, seed=i) for i, f in enumerate(("early", "cross", "late"))}


def example(i: int = 1) -> dict:
    """Row i (1-based) of assets/examples/examples.json, with its absolute path."""
    rows = json.loads((EXAMPLES / "examples.json").read_text())
    row = rows[i - 1]
    return {**row, "path": str(EXAMPLES / row["file"])}


def huge_png(width: int = 20_000, height: int = 20_000) -> bytes:
    """A small PNG whose header claims width×height pixels (a decompression bomb, cheaply)."""
    import struct
    import zlib

    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (255, 255, 255)).save(buf, format="PNG")
    data = bytearray(buf.getvalue())
    ihdr = data[12:29]                                   # b"IHDR" + 13 bytes of header
    ihdr[4:12] = struct.pack(">II", width, height)
    data[12:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(ihdr)) & 0xFFFFFFFF)
    return bytes(data)


def make_image(i: int, size: int = 12) -> np.ndarray:
    """A small RGB image, different for every i."""
    rng = np.random.default_rng(i)
    return rng.integers(0, 256, (size, size, 3), dtype=np.uint8)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(service):
    """Build and launch the app in a background thread (data folder: MMDEMO_DATA_DIR); returns (demo, url)."""
    from mmdemo.ui import build_app, launch_options

    demo = build_app(service)
    _, url, _ = demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", server_port=free_port(), quiet=True,
                            **launch_options())
    return demo, url


@contextmanager
def served_app(data_dir: Path, *, tiny: bool = not TRAINED) -> Iterator[str]:
    """The app with its data in `data_dir`, on the shipped weights, or on tiny random models (`tiny`, the default
    when the weights are not here)."""
    from mmdemo.service import Service

    mp = pytest.MonkeyPatch()
    mp.setenv("MMDEMO_DATA_DIR", str(data_dir))
    for name in ("MMDEMO_DATABASE_URL", "MMDEMO_MODELS", "SPACE_ID", "MMDEMO_HUB_DATASET", "HF_TOKEN"):
        mp.delenv(name, raising=False)
    service = Service(preloaded=tiny_models()) if tiny else Service()
    demo, url = serve(service)
    try:
        yield url
    finally:
        demo.close()
        service.close()
        mp.undo()


def run_processes(target, args: list[tuple], timeout: float) -> dict:
    """Start one spawned process per args tuple, all released together: each runs target(*args, barrier, results)
    and puts (worker, value, error or None) on `results`. Returns {worker: value}; a worker's error fails the test."""
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    barrier, results = ctx.Barrier(len(args)), ctx.Queue()
    procs = [ctx.Process(target=target, args=(*a, barrier, results)) for a in args]
    for p in procs:
        p.start()
    got = {}
    try:
        for _ in procs:
            worker, value, error = results.get(timeout=timeout)
            assert error is None, f"worker {worker}: {error}"
            got[worker] = value
    finally:
        for p in procs:
            p.join(timeout=30)
            if p.is_alive():
                p.kill()
    assert all(p.exitcode == 0 for p in procs)
    return got
