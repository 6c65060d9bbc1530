"""photo-lite: real photos with no download. An ImageNet EfficientNet-Lite0 and a MiniLM sentence encoder, both
shipped inside PyPI packages, joined at the decision (late fusion). Registered here without importing torch.

    import mmdemo
    model = mmdemo.load("photo-lite")
    model.caption([image])[0].text          # "a photo of an Egyptian cat, in the center, mostly brown"
    model.answer([image], ["is there a cat?"])[0].answer
"""
from ..registry import ModelEntry, register
from ._sources import available, describe, missing_message

NAME = "photo-lite"
SUMMARY = ("real photos, no download: ImageNet EfficientNet-Lite0 + MiniLM, late fusion; names the 1000 ImageNet "
           "classes with where and what colour; answers only the questions it can ground")

register(ModelEntry(name=NAME, tasks=("caption", "vqa"), fusion="late", summary=SUMMARY,
                    factory="mmdemo.models.photo.model:load", weights=available, source=describe(),
                    missing=missing_message))

__all__ = ["NAME", "SUMMARY", "PhotoModel", "load"]


def __getattr__(attr: str):
    """`PhotoModel` and `load` import torch, so they are looked up only when used."""
    if attr in ("PhotoModel", "load"):
        from . import model
        return getattr(model, attr)
    raise AttributeError(f"module {__name__!r} has no attribute {attr!r}")
