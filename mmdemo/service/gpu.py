"""Model calls the way ZeroGPU runs them: plain, picklable arguments in, plain results out.

On a Hugging Face Space with a GPU, `spaces.GPU` runs a decorated function in a forked worker and sends its
arguments there pickled. So models are loaded once, in the main process, and published here under a key; the
decorated functions take that key (text), the image as a uint8 array, and plain settings, and find the model in
the worker's inherited copy of `_MODELS`. Models on the CPU (the embedded ones) are called directly: a GPU
allocation would only slow them down. Without `spaces` or a GPU, every call is direct."""
from __future__ import annotations

import os
import threading
from typing import Any, Callable

import numpy as np

from ..models.base import Answer, Caption, Decoding, Target, VLModel

DURATION = {"caption": 60, "answer": 30, "explain": 120, "modality": 120, "sheet": 300}   # seconds ZeroGPU reserves per call

_MODELS: dict[str, VLModel] = {}
_GUARD = threading.Lock()


def publish(model: VLModel) -> str:
    """The key the GPU functions find this model under (the same key every time for one model object)."""
    key = f"{model.info.name}@{id(model):x}"
    with _GUARD:
        _MODELS.setdefault(key, model)
    return key


def _model(key: str) -> VLModel:
    try:
        return _MODELS[key]
    except KeyError:
        raise RuntimeError(f"model {key} was not loaded before the worker started") from None


def _image(pixels: np.ndarray):
    from PIL import Image

    return Image.fromarray(np.asarray(pixels, dtype=np.uint8), "RGB")


# --- what runs where: the plain functions, one per kind of call ------------------------------------------------
def run_caption(key: str, pixels: np.ndarray, decoding: dict[str, Any]) -> Caption:
    return _model(key).caption([_image(pixels)], Decoding.from_dict(decoding))[0]


def run_answer(key: str, pixels: np.ndarray, question: str, top_k: int) -> Answer:
    return _model(key).answer([_image(pixels)], [question], top_k=top_k)[0]


def run_explain(key: str, pixels: np.ndarray, target: Target, method: str, options: dict[str, Any]) -> Any:
    from ..explain import explain

    return explain(_model(key), _image(pixels), target, method=method, **options)


def run_sheet(key: str, pixels: np.ndarray, caption: str, method: str, options: dict[str, Any]) -> list[Any]:
    from ..explain import iter_tokens

    return list(iter_tokens(_model(key), _image(pixels), caption, method, **options))


def run_modality(key: str, pixels: np.ndarray, target: Target) -> dict[str, Any]:
    from ..explain import modality_share

    return dict(modality_share(_model(key), _image(pixels), target))


PLAIN: dict[str, Callable[..., Any]] = {"caption": run_caption, "answer": run_answer, "explain": run_explain,
                                        "modality": run_modality, "sheet": run_sheet}


def _decorated() -> dict[str, Callable[..., Any]]:
    """`spaces.GPU(fn, duration=…)` for each kind on a Space with a GPU (ZeroGPU included); {} everywhere else."""
    try:
        import spaces  # type: ignore[import-not-found]
    except ImportError:
        return {}
    if not os.environ.get("SPACES_ZERO_GPU"):
        import torch

        if not torch.cuda.is_available():
            return {}
    return {kind: spaces.GPU(fn, duration=DURATION[kind]) for kind, fn in PLAIN.items()}


_GPU: dict[str, Callable[..., Any]] | None = None


def on_gpu(model: VLModel) -> bool:
    """Whether calls to this model go through the GPU functions: it sits on a CUDA device (or ZeroGPU will move
    it there, which `spaces` does for models loaded onto "cuda" at start-up)."""
    return model.info.device.startswith("cuda")


def call(kind: str, model: VLModel, image: Any, *args: Any) -> Any:
    """Run one call of `kind` (caption, answer, explain, modality, sheet) on `model` with plain arguments."""
    global _GPU
    key, pixels = publish(model), np.asarray(image.convert("RGB"), dtype=np.uint8)
    if on_gpu(model):
        if _GPU is None:
            _GPU = _decorated()
        fn = _GPU.get(kind, PLAIN[kind])
    else:
        fn = PLAIN[kind]
    return fn(key, pixels, *args)
