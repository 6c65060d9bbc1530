"""Pretrained Hugging Face models (BLIP, ViLT, GIT, ViT-GPT2, ViT+BERT) behind the mmdemo protocol.

Importing this package registers the short names in `_catalogue.CATALOGUE` and a resolver that opens any hub id or
local `save_pretrained` folder whose config.json names a known family. It imports neither torch nor transformers:
the adapters (`blip`, `vilt`, `git`, `encoder_decoder`) load only when a model is built.

    import mmdemo
    model = mmdemo.load("blip-caption")          # needs the weights in the HF cache (or MMDEMO_ALLOW_DOWNLOAD=1)
    model = mmdemo.load("path/to/saved/folder")  # family read from its config.json
"""
from __future__ import annotations

import os
from pathlib import Path

from ..registry import ModelEntry, add_resolver, register
from ._catalogue import BY_REPO, CATALOGUE, VIT_BERT_ENV, Family, HubSpec, family_of, read_config
from ._weights import cached_snapshot, is_hub_id, missing_message, weights_available

FACTORY = "mmdemo.models.hub._factory:load_model"

__all__ = ["CATALOGUE", "Family", "HubSpec", "assemble_vit_bert", "load_model", "missing_message",
           "weights_available"]


def _entry(name: str, family: Family | None, summary: str, source: str) -> ModelEntry:
    return ModelEntry(name=name, tasks=family.tasks if family else (), fusion=family.fusion if family else "",
                      summary=summary, factory=FACTORY, weights=lambda: weights_available(name), source=source,
                      missing=lambda: missing_message(name), remote=True)


def _resolve(name: str) -> ModelEntry:
    """A hub id or a local folder -> an entry; the family comes from its config.json when that is on this machine."""
    if is_hub_id(name):
        spec = BY_REPO.get(name)
        snapshot = cached_snapshot(name)
        if snapshot is not None:
            family = family_of(read_config(snapshot / "config.json"), where=name)
        else:                           # not cached: known ids still list their family; others learn it on load
            family = spec.family if spec else None
        summary = spec.summary if spec else (family.label if family else "hub model (config not cached here)")
        return _entry(name, family, summary, name)
    folder = Path(name).expanduser()
    config = folder / "config.json"
    family = family_of(read_config(config), where=str(folder)) if config.is_file() else None
    return _entry(name, family, f"{family.label if family else 'model'} from folder {folder}", str(folder.resolve()))


for _spec in CATALOGUE:
    register(_entry(_spec.name, _spec.family, _spec.summary,
                    _spec.repo or os.environ.get(VIT_BERT_ENV) or f"${VIT_BERT_ENV}"))
add_resolver(_resolve)


def __getattr__(attr: str):
    """`load_model` and `assemble_vit_bert` import torch, so they are looked up only when used."""
    if attr == "load_model":
        from ._factory import load_model
        return load_model
    if attr == "assemble_vit_bert":
        from .encoder_decoder import assemble_vit_bert
        return assemble_vit_bert
    raise AttributeError(f"module {__name__!r} has no attribute {attr!r}")
