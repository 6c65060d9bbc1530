"""Fusion lab: one image and one question through early, cross and late fusion side by side — answers,
maps, modality shares, and attention layer by layer."""
from __future__ import annotations

from typing import Any

import gradio as gr

from ..errors import InputError
from ..models.base import Target
from .common import Shared, handler, overlay

ABOUT = {                               # by fusion kind (ModelInfo.fusion)
    "early": "early — words and patches in one transformer (VisualBERT, ViLT)",
    "cross": "cross — the text stream cross-attends to the image (LXMERT, BLIP)",
    "late": "late — separate encoders, joined only at the answer head",
}
COLUMNS = ["model", "fusion", "answer", "probability", "image share", "text share"]


def build(shared: Shared) -> None:
    service = shared.service
    names = service.fusion_models()
    if not names:
        gr.Markdown("No shapes-world model that answers questions is on this machine; this tab compares the "
                    "early, cross and late fusion variants once their weights are in `assets/models/`.")
    else:
        fusions = {c.name: c.fusion for c in service.models("vqa")}
        gr.Markdown("The same image and question through each fusion strategy whose weights are here: "
                    + "; ".join(f"**{n}**: {ABOUT.get(fusions.get(n, ''), '')}" for n in names) + ".")
    methods = _methods(service, names)
    layers = _most_layers(service, names)
    with gr.Row():
        question = gr.Textbox(label="Question", value="how many objects are there?", scale=3,
                              elem_id="fusion-question")
        method = gr.Dropdown(methods, value=methods[0] if methods else None, allow_custom_value=True,
                             label="Method", scale=1)
        layer = gr.Slider(0, layers, value=0, step=1, label="Fusion layer (0: mean over layers; attention only)",
                          scale=2)
    run = gr.Button("Compare", variant="primary", elem_id="fusion-button", interactive=bool(names))
    gallery = gr.Gallery(label="Where each model looked for its answer", columns=3, height="auto",
                         elem_id="fusion-gallery")
    table = gr.Dataframe(headers=COLUMNS, label="Answers and modality shares", interactive=False,
                         elem_id="fusion-table")

    @handler
    def compare(image: Any, question: str, method: str, layer: float):
        """Every fusion variant on one question. Returns (gallery of (map, label), table rows)."""
        if image is None:
            raise gr.Error("pick or upload an image first", print_exception=False)
        picture = image
        if not names:
            raise gr.Error("no fusion variant is trained on this machine", print_exception=False)
        maps, rows = [], []
        for name in names:
            answered = service.ask(image, question, name, top_k=1)
            target = Target("answer", answered.answer, question=answered.question)
            options = {"layer": _layer_index(service, name, layer)} if method == "attention" and layer else {}
            row = [name, service.model(name).info.fusion, answered.answer, round(answered.prob, 4), None, None]
            label = f"{name}: {answered.answer} ({answered.prob:.0%})"
            if methods:
                try:
                    exp = service.explain(image, target, name, method=method, **options)
                    label += f" · layer {int(layer)}" if options else ""
                except InputError:  # this model has fewer fusion layers than the slider: show its mean
                    exp = service.explain(image, target, name, method=method)
                    label += " · mean over its layers"
                shares = service.modality(image, target, name)
                row[4], row[5] = round(shares["image_share"], 4), round(shares["text_share"], 4)
                label += f" · image {shares['image_share']:.0%} / text {shares['text_share']:.0%}"
                maps.append((overlay(picture, exp.upsampled, "jet", 0.5), label))
            else:
                maps.append((picture, label))
            rows.append(row)
        import pandas as pd

        return maps, pd.DataFrame(rows, columns=COLUMNS)

    gr.on([run.click, question.submit], compare, [shared.image, question, method, layer], [gallery, table],
          api_name="fusion", concurrency_id="model")


def _methods(service, names: list[str]) -> list[str]:
    if not names:
        return []
    try:
        common = None
        for name in names:
            found = service.methods(name, output="image")
            common = found if common is None else [m for m in common if m in found]
        return common or []
    except Exception:
        return []


def _layers(service, name: str) -> int:
    """How many layers of text -> image attention this model shows (its ModelInfo; 1 when it does not say)."""
    return max(1, int(service.model(name).info.attention_layers or 1))


def _most_layers(service, names: list[str]) -> int:
    return max([_layers(service, n) for n in names] or [1])


def _layer_index(service, name: str, layer: float) -> int:
    """Slider value 1..N → layer index 0..N-1, clipped to the layers this model has."""
    return min(int(layer), _layers(service, name)) - 1
