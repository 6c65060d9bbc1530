"""Ask tab: a question → the answer with its top-k, question words shaded by attribution, the answer's map,
and how much of the answer came from the image and how much from the question."""
from __future__ import annotations

from typing import Any

import gradio as gr

from ..models.base import Target
from .common import (CMAPS, Shared, explanation_json, handler, image_methods, overlay, signed_highlights,
                     top_k_label)


def build(shared: Shared) -> None:
    service = shared.service
    methods = image_methods(service)                   # (label with the measured time, name)
    shared.question.render()
    with gr.Row():
        top_k = gr.Slider(1, 10, value=5, step=1, label="Top-k answers", scale=1)
        ask_button = gr.Button("Ask", variant="primary", elem_id="ask-button", scale=1)
    answers = gr.Label(label="Answer and its top-k probabilities", num_top_classes=10, elem_id="ask-answer")
    with gr.Accordion("Result as JSON (what the `ask` API returns)", open=False):
        result = gr.JSON(label="ask result")

    with gr.Group(visible=bool(methods)):
        with gr.Row():
            answer = gr.Dropdown(choices=[], value=None, allow_custom_value=True, label="Explain the answer",
                                 info="the predicted one, or any other", elem_id="ask-explain-answer")
            method = gr.Dropdown(methods, value=methods[0][1] if methods else None, allow_custom_value=True,
                                 label="Method", info="with the time one map took on this model, where measured")
            opacity = gr.Slider(0.0, 1.0, value=0.5, step=0.05, label="Opacity")
            cmap = gr.Dropdown(list(CMAPS), value="jet", label="Colour map")
        with gr.Row():
            heatmap = gr.Image(label="Where the model looked for this answer", type="pil", interactive=False,
                               elem_id="ask-map", format="png")
            with gr.Column():
                words = gr.HighlightedText(label="Question words by attribution (red: for the answer, blue: against)",
                                           show_legend=False, show_inline_category=False, interactive=False,
                                           elem_id="ask-words")
                gr.Markdown("**Modality share**: how much of the answer came from the image and how much from "
                            "the question (MM-SHAP), and each word's part")
                share = gr.Plot(show_label=False, elem_id="ask-modality")
        with gr.Accordion("Map as JSON (what the `explain_answer` API returns)", open=False):
            map_json = gr.JSON(label="explanation")

    @handler
    def ask(image: Any, question: str, model: str, top_k: float) -> dict[str, Any]:
        """Answer a question. Returns {model, question, answer, prob, top_k: [{answer, prob}], seconds, image_hash}."""
        return service.ask(image, question, model, top_k=top_k).to_dict()

    def show(result: dict[str, Any] | None):
        if not result:
            return None, gr.update(choices=[], value=None), None
        choices = [row["answer"] for row in result["top_k"]]
        return top_k_label(result["top_k"]), gr.update(choices=choices, value=result["answer"]), result

    @handler
    def explain_answer(image: Any, model: str, question: str, answer: str, method: str, opacity: float,
                       cmap: str):
        """Map of an answer (any answer the model knows) to a question. Returns (overlay image, JSON,
        question-word attributions)."""
        if image is None or not (answer or "").strip() or not (question or "").strip():
            return None, None, None
        target = Target("answer", answer.strip(), question=question)
        exp = service.explain(image, target, model, method=method)
        words = exp.text
        text_methods = service.methods(model, output="text")
        if words is None and text_methods:
            words = service.explain(image, target, model, method=text_methods[0]).text
        return (overlay(image, exp.upsampled, cmap, opacity),
                explanation_json(exp, model, {"kind": "answer", "text": target.text, "question": target.question}),
                signed_highlights(words))

    @handler
    def modality(image: Any, model: str, question: str, answer: str) -> dict[str, float]:
        """How much of the answer comes from the image and how much from the question (MM-SHAP). Returns
        {image_share, text_share, text: [[word, value]], seconds}."""
        if image is None or not (answer or "").strip() or not (question or "").strip():
            raise gr.Error("ask a question first", print_exception=False)
        shares = service.modality(image, Target("answer", answer.strip(), question=question), model)
        return {k: shares[k] for k in ("image_share", "text_share", "text", "seconds") if k in shares}

    def share_plot(shares: dict[str, Any] | None):
        if not shares:
            return None
        from ..viz import plot_modality

        words = [(str(t).replace("$", r"\$"), v) for t, v in shares.get("text") or []]   # "$" would start mathtext
        return plot_modality({**shares, "text": words})

    shares = gr.JSON(visible=False)
    inputs = [shared.image, shared.question, shared.model, top_k]
    asked = gr.on([ask_button.click, shared.question.submit], ask, inputs, [result], api_name="ask",
                  concurrency_id="model")
    asked.success(show, [result], [answers, answer, shared.answer_state], api_visibility="private",
                  api_name="show_answer", show_progress="hidden")
    gr.on([answer.change, method.change, opacity.release, cmap.change], explain_answer,
          [shared.image, shared.model, shared.question, answer, method, opacity, cmap], [heatmap, map_json, words],
          api_name="explain_answer", concurrency_id="model", trigger_mode="always_last")
    if methods:
        answer.change(modality, [shared.image, shared.model, shared.question, answer], [shares],
                      api_name="modality", concurrency_id="model", trigger_mode="always_last").success(
            share_plot, [shares], [share], api_visibility="private", api_name="show_modality",
            show_progress="hidden")
    shared.image.change(lambda: (None, None, None, None), None, [answers, heatmap, words, share],
                        api_visibility="private", api_name="clear_answer", show_progress="hidden")

    def follow(model: str):
        """The chosen model's methods in the picker."""
        choices = image_methods(service, model)
        return gr.update(choices=choices, value=choices[0][1] if choices else None)

    shared.model.change(follow, [shared.model], [method], api_visibility="private", api_name="ask_controls",
                        show_progress="hidden")

