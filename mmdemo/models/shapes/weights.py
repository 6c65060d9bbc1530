"""Shapes model folders: model.safetensors + config.json + tokenizer.json + README.md (the model card)."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

from ...config import ASSETS

MODELS_DIR = ASSETS / "models"


def model_dir(name: str) -> Path:
    return MODELS_DIR / name


def has_weights(folder: Path) -> bool:
    return (folder / "model.safetensors").is_file() and (folder / "config.json").is_file()


def is_shapes_folder(folder: Path) -> bool:
    """Does this folder hold a shapes model (weights, and a config.json with the ShapesNet settings)?"""
    if not has_weights(folder):
        return False
    try:
        config = json.loads((folder / "config.json").read_text())
    except (OSError, ValueError):
        return False
    return isinstance(config, dict) and isinstance(config.get("config"), dict) and "fusion" in config["config"]


def revision(folder: Path) -> str:
    """First 12 hex digits of the SHA-256 of the weights file: changes whenever the weights do."""
    h = hashlib.sha256((folder / "model.safetensors").read_bytes())
    return h.hexdigest()[:12]


def save(net, folder: Path, meta: dict) -> None:
    """Write weights (fp32 safetensors), config and tokenizer; `meta` goes into config.json under 'training'."""
    from safetensors.torch import save_file

    from .tokenizer import build_tokenizer

    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}
    save_file(state, str(folder / "model.safetensors"))
    (folder / "config.json").write_text(json.dumps({"config": net.cfg.to_dict(), "training": meta}, indent=2))
    build_tokenizer(extra=net.cfg.extra_words).save(str(folder / "tokenizer.json"))


def load_net(folder: Path, device: str = "cpu"):
    """ShapesNet with the folder's weights, in eval mode."""
    from safetensors.torch import load_file

    from .net import ShapesConfig, ShapesNet

    cfg = ShapesConfig(**json.loads((folder / "config.json").read_text())["config"])
    net = ShapesNet(cfg)
    net.load_state_dict(load_file(str(folder / "model.safetensors"), device="cpu"))
    return net.to(device).eval()
