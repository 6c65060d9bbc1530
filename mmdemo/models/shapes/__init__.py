"""The embedded shapes models: registered here without importing torch."""
from __future__ import annotations

from pathlib import Path

from ..registry import ModelEntry, add_resolver, register
from .weights import has_weights, is_shapes_folder, model_dir

_SUMMARIES = {
    "cross": "shapes world; cross-attention fusion (two streams, LXMERT/BLIP style); embedded, no download",
    "early": "shapes world; early fusion (one stream over image and word tokens, VisualBERT/ViLT style); embedded",
    "late": "shapes world; late fusion (separate encoders joined at the output head); embedded",
}

for _fusion, _summary in _SUMMARIES.items():
    _name = f"shapes-{_fusion}"
    register(ModelEntry(
        name=_name, tasks=("caption", "vqa"), fusion=_fusion, summary=_summary,
        factory="mmdemo.models.shapes.model:load",
        weights=(lambda n=_name: has_weights(model_dir(n))), source=str(model_dir(_name)), domain="shapes"))


def _resolve(name: str) -> ModelEntry | None:
    """A shapes model folder anywhere (e.g. written by `mmdemo finetune`) -> an entry; anything else: None."""
    folder = Path(name).expanduser()
    if not is_shapes_folder(folder):
        return None
    import json

    fusion = json.loads((folder / "config.json").read_text())["config"]["fusion"]
    return ModelEntry(name=name, tasks=("caption", "vqa"), fusion=fusion, domain="shapes",
                      summary=f"shapes world; {fusion} fusion; model folder {folder}",
                      factory="mmdemo.models.shapes.model:load_folder",
                      weights=lambda: has_weights(folder), source=str(folder.resolve()))


add_resolver(_resolve, first=True)   # ahead of the hub's resolver, which would claim any folder
