"""`explain_tokens(model, image, caption, method)`: one map per caption token (a sheet), token by token.

Methods that read every token's map off one pass (`MapMethod.attribute_rows`: attention, and relevance on the hub
captioners, whose one scored pass keeps its graph for a backward pass per token) pay for one pass; the others run
per token, each reusing what does not depend on the token (the image encoded once, see `models.fusion`). Every
map goes to the explanation cache under its token's own key, so a later `explain` of one token is a hit. `on_token`
sees each map as it is made (progress, streaming) and stops the sheet by returning False; `iter_tokens` hands the
maps out one at a time, computing each when it is asked for (what the app streams, and stops when a user cancels).
"""
from __future__ import annotations

import time
from typing import Any, Callable, Iterator, NamedTuple

import numpy as np
from PIL import Image

from ..errors import InputError
from ..models.base import Target, VLModel
from ._forward import word_features
from ._registry import method_for
from ._rows import term_count
from .engine import CACHE, SIGNS, _check_options, cache_key, explain, gradients
from .explanation import Explanation, relevance, upsample

OnToken = Callable[[int, int, Explanation], "bool | None"]   # (index, count, map) -> False to stop


class TokenMap(NamedTuple):
    index: int                  # the token's position among the caption's tokens (the model's own split)
    count: int                  # how many tokens the caption has
    token: str                  # the token as the model reads it
    explanation: Explanation


def explain_tokens(model: VLModel, image: Image.Image, caption: str, method: str = "attention", *,
                   sign: str = "positive", cache: bool = True, on_token: OnToken | None = None,
                   **options: Any) -> list[Explanation]:
    """Token i's explanation for i = 0 … n-1 over `caption` as the model splits it (the tokens a token target
    names: its words, without [CLS] or [SEP]).
    Stopped early by `on_token` returning False: the maps made so far."""
    out: list[Explanation] = []
    for i, n, _, e in iter_tokens(model, image, caption, method, sign=sign, cache=cache, **options):
        out.append(e)
        if on_token is not None and on_token(i, n, e) is False:
            break
    return out


def iter_tokens(model: VLModel, image: Image.Image, caption: str, method: str = "attention", *,
                sign: str = "positive", cache: bool = True, **options: Any) -> Iterator[TokenMap]:
    """TokenMap(i, n, token, token i's explanation) for i = 0 … n-1, each made when asked for: stop iterating (or
    close the iterator) and no further map is computed. Checks its arguments before the first map."""
    if not isinstance(caption, str) or not caption.strip():
        raise InputError("the caption to explain is empty")
    if sign not in SIGNS:
        raise InputError(f"sign must be one of {', '.join(SIGNS)}, not {sign!r}")
    unit = method_for(method, model)
    _check_options(unit, options)
    whole = Target("caption", caption)
    with gradients(model):
        inputs = model.prepare([image], [whole])
    n = int(term_count(inputs)[0])                  # the caption's tokens a token target may name
    words = [t for _, t in word_features(inputs)[0]]
    labels = words if len(words) == n else list(inputs.text_tokens[0][:n])
    return _tokens(model, image, caption, method, unit, inputs, labels, sign, cache, options)


def _tokens(model, image, caption, method, unit, inputs, labels, sign, cache, options):
    n = len(labels)
    targets = [Target("token", caption, token=i) for i in range(n)]
    keys = [cache_key(model, image, t, method, sign=sign, **options) for t in targets]
    hits = [CACHE.get(k) if cache else None for k in keys]
    rows = None
    if any(h is None for h in hits):
        started = time.perf_counter()
        with gradients(model):
            rows = unit.attribute_rows(inputs, **options)                      # (1, T, h, w) or None
        each = (time.perf_counter() - started) / n if rows is not None else 0.0
    for i, (target, key, hit) in enumerate(zip(targets, keys, hits)):
        if hit is not None:
            e = hit
        elif rows is not None:
            raw = rows[0, i if rows.shape[1] > 1 else 0].detach().float().cpu().numpy()   # one row: late fusion
            grid = relevance(raw, sign)
            e = Explanation(method, target, grid, upsample(grid, image.size), each, None, raw)
            if cache:
                CACHE.put(key, e)
        else:
            e = explain(model, image, target, method, sign=sign, cache=cache, **options)
        yield TokenMap(i, n, labels[i], e)


def sheet_to_dict(sheet: list[Explanation]) -> dict[str, Any]:
    """The sheet as plain data: per token its text and map (rounded), and the seconds it took in all."""
    return {"tokens": [{"token": e.target.token, "map": np.round(e.grid, 4).tolist(), "seconds": round(e.seconds, 4)}
                       for e in sheet], "seconds": round(sum(e.seconds for e in sheet), 4)}
