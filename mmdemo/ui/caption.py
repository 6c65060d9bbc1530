"""Caption tab: decoding controls, the caption as tokens shaded by probability, a token's map, a method grid."""
from __future__ import annotations

from typing import Any

import gradio as gr

from ..models.base import MAX_NEW_TOKENS, STRATEGIES, Decoding, Target
from .common import CMAPS, Shared, explanation_json, handler, overlay, probability_highlights


def build(shared: Shared) -> None:
    service = shared.service
    methods = _methods(service)
    with gr.Row() as decoding_row:
        strategy = gr.Radio(list(STRATEGIES), value="greedy", label="Decoding", scale=2)
        max_tokens = gr.Slider(1, MAX_NEW_TOKENS, value=24, step=1, label="Max tokens", scale=2)
    with gr.Accordion("Beam and nucleus settings", open=False) as decoding_more:
        with gr.Row():
            num_beams = gr.Slider(2, 8, value=3, step=1, label="Beams (beam search)")
            top_p = gr.Slider(0.05, 1.0, value=0.9, step=0.05, label="Top-p (nucleus)")
            temperature = gr.Slider(0.05, 2.0, value=1.0, step=0.05, label="Temperature (nucleus)")
            seed = gr.Number(-1, precision=0, label="Seed (nucleus; -1: random)")
    run = gr.Button("Caption", variant="primary", elem_id="caption-button")
    tokens = gr.HighlightedText(label="Caption — darker words were more probable; click a word to see where "
                                "the model looked", show_legend=False, show_inline_category=False, interactive=False,
                                elem_id="caption-tokens")
    shared.caption_text.render()
    with gr.Accordion("Result as JSON (what the `caption` API returns)", open=False):
        result = gr.JSON(label="caption result")

    with gr.Group(visible=bool(methods)):
        with gr.Row():
            token = gr.Dropdown(choices=[], value=None, allow_custom_value=True, label="Token",
                                info="click a word above, or pick it here", elem_id="caption-token")
            method = gr.Dropdown(methods, value=methods[0] if methods else None, allow_custom_value=True,
                                 label="Method", elem_id="caption-method")
            opacity = gr.Slider(0.0, 1.0, value=0.5, step=0.05, label="Opacity")
            cmap = gr.Dropdown(list(CMAPS), value="jet", label="Colour map")
        heatmap = gr.Image(label="Where the model looked for this token", type="pil", interactive=False,
                           elem_id="caption-map", format="png")
        with gr.Accordion("Map as JSON (what the `explain` API returns)", open=False):
            map_json = gr.JSON(label="explanation")
        grid_button = gr.Button("Compare every method for this token")
        grid = gr.Gallery(label="Methods side by side", columns=4, height="auto", elem_id="caption-grid")

    @handler
    def caption(image: Any, model: str, strategy: str, max_tokens: float, num_beams: float, top_p: float,
                temperature: float, seed: float | None) -> dict[str, Any]:
        """Caption the image. Returns {model, caption, tokens: [{token, prob}], seconds, decoding, image_hash}."""
        decoding = Decoding(strategy=strategy, max_new_tokens=max_tokens, beams=num_beams, top_p=top_p,
                            temperature=temperature, seed=seed)
        return service.caption(image, model, decoding).to_dict()

    def show(result: dict[str, Any] | None):
        if not result:
            return None, "", gr.update(choices=[], value=None), None
        words = [t["token"] for t in result["tokens"]]
        choices = [(f"{i}: {w}", i) for i, w in enumerate(words)]
        return (probability_highlights(result["tokens"]), result["caption"],
                gr.update(choices=choices, value=0 if words else None), result)

    @handler
    def explain(image: Any, model: str, caption_text: str, token: Any, method: str, opacity: float, cmap: str):
        """Map of one caption token (token index; -1 or empty: the whole caption). Returns (overlay image, JSON)."""
        if image is None or not (caption_text or "").strip():
            return None, None
        target = _caption_target(caption_text, token)
        exp = service.explain(image, target, model, method=method)
        return (overlay(image, exp.upsampled, cmap, opacity),
                explanation_json(exp, model, {"kind": target.kind, "text": target.text, "token": target.token}))

    @handler
    def compare(image: Any, model: str, caption_text: str, token: Any, opacity: float, cmap: str):
        """Every method's map for one token, side by side. Returns a gallery of (image, method name)."""
        if image is None or not (caption_text or "").strip():
            raise gr.Error("caption the image first", print_exception=False)
        target = _caption_target(caption_text, token)
        out = []
        for name in service.methods(model, output="image"):
            exp = service.explain(image, target, model, method=name)
            out.append((overlay(image, exp.upsampled, cmap, opacity), f"{name} · {exp.seconds * 1000:.0f} ms"))
        return out

    def pick(evt: gr.SelectData):
        return evt.index if isinstance(evt.index, int) else (evt.index[0] if evt.index else 0)

    inputs = [shared.image, shared.model, strategy, max_tokens, num_beams, top_p, temperature, seed]
    run.click(caption, inputs, [result], api_name="caption", concurrency_id="model").success(
        show, [result], [tokens, shared.caption_text, token, shared.caption_state],
        api_visibility="private", api_name="show_caption", show_progress="hidden")
    tokens.select(pick, None, [token], api_visibility="private", api_name="pick_token", show_progress="hidden")
    explain_inputs = [shared.image, shared.model, shared.caption_text, token, method, opacity, cmap]
    gr.on([token.change, method.change, opacity.release, cmap.change], explain, explain_inputs,
          [heatmap, map_json], api_name="explain", concurrency_id="model", trigger_mode="always_last")
    grid_button.click(compare, [shared.image, shared.model, shared.caption_text, token, opacity, cmap], [grid],
                      api_name="compare_methods", concurrency_id="model")
    shared.image.change(lambda: (None, None, None, None), None, [tokens, heatmap, map_json, grid],
                        api_visibility="private", api_name="clear_caption", show_progress="hidden")

    def follow(model: str):
        """The chosen model's methods in the picker, and decoding controls only where they change its output."""
        names = _methods(service, model)
        honours = _honours(service, model)
        return (gr.update(choices=names, value=names[0] if names else None),
                gr.update(visible="strategy" in honours), gr.update(visible="strategy" in honours))

    shared.model.change(follow, [shared.model], [method, decoding_row, decoding_more], api_visibility="private",
                        api_name="caption_controls", show_progress="hidden")


def _caption_target(caption_text: str, token: Any) -> Target:
    if token in (None, "", -1, "-1"):
        return Target("caption", caption_text)
    try:
        index = int(float(str(token).split(":", 1)[0]))
    except ValueError:
        raise gr.Error(f"token must be a number (the word's position in the caption), not {token!r}",
                       print_exception=False) from None
    if index < 0:
        return Target("caption", caption_text)
    return Target("token", caption_text, token=index)


def _methods(service, model: str | None = None) -> list[str]:
    try:
        return service.methods(model, output="image")
    except Exception:  # no model yet, or the explain engine is not installed: the map section stays hidden
        return []


def _honours(service, model: str | None) -> tuple[str, ...]:
    try:
        return tuple(service.model(model).honours)
    except Exception:  # the model cannot load: its error shows on the first request
        return ()
