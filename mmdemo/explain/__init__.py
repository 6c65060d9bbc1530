"""Explanations: attention maps and Captum attributions on the patch grid, modality share, faithfulness.

    from mmdemo.explain import explain, available_methods
    e = explain(model, image, Target("answer", "red", question="what color is the circle?"), method="ig")
    e.grid            # (h, w) relevance in [0, 1] on the model's patch grid; e.upsampled at the image's size

Every method is one class in its own file with one verb, `Method(model).attribute(inputs) -> (B, h, w)`, written
once against the model protocol (`prepare`, `score`, `attention`, `image_embedding`, `text_embedding`).
Names load on first use, so `mmdemo.cli` (imported by every CLI call) pulls in neither torch nor Captum.
"""
from __future__ import annotations

import importlib
from typing import Any

_PUBLIC = {
    "METHODS": "._registry", "available_methods": "._registry", "method_for": "._registry",
    "MapMethod": "._method", "CACHE": ".engine", "cache_key": ".engine", "explain": ".engine", "model_lock": ".engine",
    "Explanation": ".explanation", "own_target": ".targets", "explain_tokens": ".sheet",
    "iter_tokens": ".sheet", "sheet_to_dict": ".sheet",
    "modality_share": ".modality", "evaluate_explanations": ".evaluate",
    "evaluate_caption_words": ".caption_words",
    "format_caption_words": ".caption_words",
    **{name: ".faithfulness" for name in ("chance", "coverage", "deletion_insertion", "faithfulness_table", "mass_inside",
                                          "pointing_game", "random_map", "randomization_check", "randomized_copy")},
}
__all__ = sorted(_PUBLIC)


def __getattr__(name: str) -> Any:
    if name not in _PUBLIC:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from ._registry import load_all

    load_all()
    value = getattr(importlib.import_module(_PUBLIC[name], __name__), name)
    globals()[name] = value
    return value
