"""`explain(model, image, target, method)`: one method, one image, one target -> an Explanation, cached."""
from __future__ import annotations

import inspect
import threading
import time
from contextlib import contextmanager, nullcontext
from typing import Any, Iterator

import numpy as np
import torch
from PIL import Image

from ..errors import InputError
from ..images import content_hash
from ..models.base import Target, VLModel
from ._cache import LRU, freeze
from ._forward import contrasts_itself, prepare, word_features
from ._registry import method_for
from .explanation import Explanation, relevance, upsample

CACHE = LRU()
SIGNS = ("positive", "absolute")
_LOCKS: dict[int, threading.RLock] = {}
_LOCKS_LOCK = threading.Lock()


def model_lock(model: VLModel) -> threading.RLock:
    """One lock per model object. Explanations hook the model's modules (Captum's layer methods, the text gate,
    attention recording) for the length of a call, so two explanations of one model must not overlap; a caller
    that also runs plain forward passes from other threads should hold this lock around them too."""
    with _LOCKS_LOCK:
        return _LOCKS.setdefault(id(model), threading.RLock())


@contextmanager
def gradients(model: VLModel | None = None) -> Iterator[None]:
    """Autograd on, even when the caller runs under torch.inference_mode (as the UI's handlers do); with a model,
    also that model's lock."""
    with (model_lock(model) if model is not None else nullcontext()), torch.inference_mode(False), torch.enable_grad():
        yield


def model_key(model: VLModel) -> tuple:
    """A model by name and weights revision; a model without a revision (built in memory) by its identity."""
    info = model.info
    return (info.name, info.revision) if info.revision else (info.name, "id", id(model))


def explain(model: VLModel, image: Image.Image, target: Target, method: str = "attention", *,
            sign: str = "positive", cache: bool = True, **options: Any) -> Explanation:
    """Explain `target` (an answer, a caption, or one caption token) for `image` with `method` (see METHODS).

    `options` go to the method (e.g. steps=64, baseline="blur", layer=-1); `sign` chooses how the signed map
    becomes the drawn one ("positive" or "absolute")."""
    if not isinstance(target, Target):
        raise InputError(f"target must be an mmdemo.Target, not {type(target).__name__}")
    if sign not in SIGNS:
        raise InputError(f"sign must be one of {', '.join(SIGNS)}, not {sign!r}")
    unit = method_for(method, model)
    _check_options(unit, options)
    check_contrast(unit, target)
    key = cache_key(model, image, target, method, sign=sign, **options)
    if cache and (hit := CACHE.get(key)) is not None:
        return hit
    started = time.perf_counter()
    with gradients(model):
        inputs = prepare(model, [image], [target])
        if contrasts_itself(inputs):      # log p(w) - log p(w): zero whatever the image; no rounding noise drawn
            out = torch.zeros(1, len(word_features(inputs)[0])) if unit.output == "text" else \
                torch.zeros(1, *model.info.patch_grid)
        else:
            out = unit.attribute(inputs, **options)
    h, w = model.info.patch_grid
    text = None
    if unit.output == "text":
        values = out[0].detach().float().cpu().tolist()
        text = [(tok, float(v)) for (_, tok), v in zip(word_features(inputs)[0], values)]
        raw = np.zeros((h, w), dtype=np.float32)
    else:
        raw = out[0].detach().float().cpu().numpy().reshape(h, w)
    grid = relevance(raw, sign)
    result = Explanation(method, target, grid, upsample(grid, image.size), time.perf_counter() - started, text, raw)
    if cache:
        CACHE.put(key, result)
    return result


def cache_key(model: VLModel, image: Image.Image, target: Target, what: str, **options: Any) -> tuple:
    """(image content, model, target, method, options): what an explanation depends on."""
    return (content_hash(image), model_key(model), target, what, freeze(options))


def check_contrast(unit, target: Target) -> None:
    """A contrastive target needs a method that follows the score."""
    if target.contrast is not None and not unit.contrastive:
        from ._registry import METHODS, available_methods
        able = [n for n in available_methods(unit.model) if METHODS[n].contrastive and METHODS[n].output == unit.output]
        raise InputError(f"method {unit.name!r} cannot explain a contrast (it does not follow the score); "
                         f"use one of: {', '.join(able)}")


def _check_options(unit, options: dict[str, Any]) -> None:
    params = inspect.signature(unit.attribute).parameters
    known = [p for p, v in params.items() if v.kind is inspect.Parameter.KEYWORD_ONLY]
    unknown = sorted(set(options) - set(known))
    if unknown:
        takes = f"it takes {', '.join(known)}" if known else "it takes no options"
        raise InputError(f"method {unit.name!r} has no option {', '.join(unknown)}; {takes}")
