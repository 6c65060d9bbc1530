"""The registry of explanation methods: small named units, looked up by name; an unknown name lists what exists."""
from __future__ import annotations

import importlib

from ..errors import InputError
from ..models.base import VLModel
from ._method import MapMethod

METHODS: dict[str, type[MapMethod]] = {}
MODULES = ("attention", "gradattn", "rollout", "relevance", "ig", "ig_pixels", "saliency", "inputxgrad", "gradcam",
           "occlusion", "shapley", "text_ig")          # one method each, in the order they are listed


def load_all() -> dict[str, type[MapMethod]]:
    """Import every method module (each registers itself); returns METHODS."""
    for name in MODULES:
        importlib.import_module(f"{__package__}.methods.{name}")
    return METHODS


def register(cls: type[MapMethod]) -> type[MapMethod]:
    if cls.name in METHODS:
        raise ValueError(f"explanation method {cls.name!r} is registered twice")
    METHODS[cls.name] = cls
    return cls


def available_methods(model: VLModel) -> list[str]:
    """The methods this model can run, in registry order."""
    load_all()
    offered = model.explain_methods
    return [name for name, cls in METHODS.items() if cls.supports(model) and (offered is None or name in offered)]


def method_for(name: str, model: VLModel) -> MapMethod:
    cls = load_all().get(name)
    if cls is None:
        raise InputError(f"unknown explanation method {name!r}; known: {', '.join(METHODS)}")
    if name not in available_methods(model):
        raise InputError(f"{model.info.name!r} cannot run {name!r}; it can run: {', '.join(available_methods(model))}")
    return cls(model)
