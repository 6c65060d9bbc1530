"""The embedded shapes models: registered here without importing torch."""
from ..registry import ModelEntry, register
from .weights import has_weights, model_dir

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
