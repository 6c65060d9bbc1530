"""Caption tab: decoding controls, the caption as tokens shaded by probability, a token's map, a method grid, and
every token's map streamed one by one (with progress, and a Stop)."""
from __future__ import annotations

import time
from typing import Any

import gradio as gr

from ..explain import trust
from ..models.base import MAX_NEW_TOKENS, STRATEGIES, Decoding, Target
from .common import (CMAPS, Shared, explanation_json, handler, image_methods, overlay, probability_highlights,
                     stream_handler)


def build(shared: Shared) -> None:
    service = shared.service
    methods = image_methods(service)                   # (label with the measured time, name)
    default_method = _default_method(service, None, [name for _, name in methods])
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
            method = gr.Dropdown(methods, value=default_method, allow_custom_value=True, label="Method",
                                 info="with the time one map took on this model, where measured",
                                 elem_id="caption-method")
            contrast = gr.Dropdown(choices=[NO_CONTRAST], value="", allow_custom_value=True,
                                   label="Why this word and not …",
                                   info="the model's runner-up words at this step: the map then shows what "
                                        "favours the word over that one", elem_id="caption-contrast")
            opacity = gr.Slider(0.0, 1.0, value=0.5, step=0.05, label="Opacity")
            cmap = gr.Dropdown(list(CMAPS), value="jet", label="Colour map")
        heatmap = gr.Image(label="Where the model looked for this token", type="pil", interactive=False,
                           elem_id="caption-map", format="png")
        trust_line = gr.Markdown(elem_id="caption-trust")
        with gr.Accordion("Map as JSON (what the `explain` API returns)", open=False):
            map_json = gr.JSON(label="explanation")
        grid_button = gr.Button("Compare every method for this token")
        grid = gr.Gallery(label="Methods side by side", columns=4, height="auto", elem_id="caption-grid")
        with gr.Row():
            sheet_button = gr.Button("Map every word with this method", elem_id="caption-sheet-button")
            stop_button = gr.Button("Stop", variant="stop", elem_id="caption-sheet-stop")
        sheet_status = gr.Markdown(elem_id="caption-sheet-status")
        sheet = gr.Gallery(label="Every word's map, as each is made", columns=6, height="auto",
                           elem_id="caption-sheet")

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
    def explain(image: Any, model: str, caption_text: str, token: Any, method: str, opacity: float, cmap: str,
                contrast: str | None = None):
        """Map of one caption token (token index; -1 or empty: the whole caption), optionally against a contrast
        word (log p(token) - log p(contrast) under the same prefix). Returns (overlay image, JSON); the JSON's
        "measured" is the method's measured pointing rate for this kind of word on this model (or null)."""
        if image is None or not (caption_text or "").strip():
            return None, None
        target = _caption_target(caption_text, token, contrast)
        exp = service.explain(image, target, model, method=method)
        about = {"kind": target.kind, "text": target.text, "token": target.token}
        if target.contrast is not None:
            about["contrast"] = target.contrast
        payload = explanation_json(exp, model, about)
        word = _word(caption_text, target.token)
        payload["measured"] = (trust.measured(model, method, word, target.contrast is not None)
                               if target.kind == "token" else None)
        return overlay(image, exp.upsampled, cmap, opacity), payload

    def show_trust(payload: dict[str, Any] | None) -> str:
        if not payload:
            return ""
        return trust.describe(payload.get("measured"))

    def runner_ups(result: dict[str, Any] | None, token: Any, model: str):
        """The model's runner-up words for the chosen token (the word itself left out), as contrast choices; the
        default is none, or the best same-kind runner-up where contrastive maps measured best for this model."""
        choices, value = [NO_CONTRAST], ""
        index = _index(token)
        rows = (result or {}).get("tokens") or []
        if index is not None and 0 <= index < len(rows):
            word = rows[index]["token"]
            alts = [a for a in rows[index].get("alternatives", []) if a["token"] != word]
            choices += [(f"{a['token']} ({a['prob']:.0%})", a["token"]) for a in alts]
            best = trust.recommended(model)
            kind = trust.word_kind(word)
            if best and best.get("variant") == "contrastive" and kind:
                value = next((a["token"] for a in alts if trust.word_kind(a["token"]) == kind), "")
        return gr.update(choices=choices, value=value)

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

    @stream_handler
    def explain_sheet(image: Any, model: str, caption_text: str, method: str, opacity: float, cmap: str,
                      progress: gr.Progress = gr.Progress()):
        """Every caption token's map with `method`, streamed: one (gallery, status) after each map. The gallery
        holds (overlay, "index: token") per token so far; Stop (or a client's cancel) ends it between two maps."""
        if image is None or not (caption_text or "").strip():
            raise gr.Error("caption the image first", print_exception=False)
        started, shown = time.perf_counter(), []
        for item in service.explain_tokens(image, caption_text, model, method):
            shown.append((overlay(image, item.explanation.upsampled, cmap, opacity), f"{item.index}: {item.token}"))
            progress((item.index + 1, item.count), desc=f"{method} maps", unit="tokens")
            done = item.index + 1 == item.count
            yield shown, (f"{method}: {'all ' if done else ''}{item.index + 1} of {item.count} tokens in "
                          f"{time.perf_counter() - started:.1f} s")

    def pick(evt: gr.SelectData):
        return evt.index if isinstance(evt.index, int) else (evt.index[0] if evt.index else 0)

    inputs = [shared.image, shared.model, strategy, max_tokens, num_beams, top_p, temperature, seed]
    run.click(caption, inputs, [result], api_name="caption", concurrency_id="model").success(
        show, [result], [tokens, shared.caption_text, token, shared.caption_state],
        api_visibility="private", api_name="show_caption", show_progress="hidden")
    tokens.select(pick, None, [token], api_visibility="private", api_name="pick_token", show_progress="hidden")
    token.change(runner_ups, [shared.caption_state, token, shared.model], [contrast], api_visibility="private",
                 api_name="runner_ups", show_progress="hidden")
    explain_inputs = [shared.image, shared.model, shared.caption_text, token, method, opacity, cmap, contrast]
    gr.on([token.change, method.change, opacity.release, cmap.change, contrast.change], explain, explain_inputs,
          [heatmap, map_json], api_name="explain", concurrency_id="model", trigger_mode="always_last").then(
        show_trust, [map_json], [trust_line], api_visibility="private", api_name="show_trust",
        show_progress="hidden")
    sheet_event = sheet_button.click(explain_sheet, [shared.image, shared.model, shared.caption_text, method, opacity,
                                                     cmap], [sheet, sheet_status], api_name="explain_sheet",
                                     concurrency_id="model")
    stop_button.click(None, None, None, cancels=[sheet_event], api_visibility="private", api_name="stop_sheet")
    grid_button.click(compare, [shared.image, shared.model, shared.caption_text, token, opacity, cmap], [grid],
                      api_name="compare_methods", concurrency_id="model")
    shared.image.change(lambda: (None, None, None, None, None, ""), None,
                        [tokens, heatmap, map_json, grid, sheet, sheet_status],
                        api_visibility="private", api_name="clear_caption", show_progress="hidden")

    def follow(model: str):
        """The chosen model's methods in the picker, and decoding controls only where they change its output."""
        choices = image_methods(service, model)
        honours = _honours(service, model)
        names = [name for _, name in choices]
        return (gr.update(choices=choices, value=_default_method(service, model, names)),
                gr.update(visible="strategy" in honours), gr.update(visible="strategy" in honours))

    shared.model.change(follow, [shared.model], [method, decoding_row, decoding_more], api_visibility="private",
                        api_name="caption_controls", show_progress="hidden")


NO_CONTRAST = ("nothing (plain map)", "")


def _index(token: Any) -> int | None:
    if token in (None, "", -1, "-1"):
        return None
    try:
        index = int(float(str(token).split(":", 1)[0]))
    except ValueError:
        raise gr.Error(f"token must be a number (the word's position in the caption), not {token!r}",
                       print_exception=False) from None
    return index if index >= 0 else None


def _caption_target(caption_text: str, token: Any, contrast: str | None = None) -> Target:
    index = _index(token)
    contrast = (contrast or "").strip() or None
    if index is None:
        if contrast:
            raise gr.Error("pick a word to contrast", print_exception=False)
        return Target("caption", caption_text)
    return Target("token", caption_text, token=index, contrast=contrast)


def _word(caption_text: str, index: int | None) -> str | None:
    """The caption's word at `index` as the shapes captions split (words and , . ?), for the measured rates."""
    import re

    words = re.findall(r"[\w']+|[^\w\s]", caption_text or "")
    return words[index] if index is not None and 0 <= index < len(words) else None


def _default_method(service, model: str | None, names: list[str]) -> str | None:
    """The method whose caption-word maps measured best on this model (its card's results), else the first."""
    if not names:
        return None
    try:
        name = model or service.default_model()
    except Exception:  # no model configured yet
        name = None
    best = trust.recommended(name) if isinstance(name, str) else None
    return best["method"] if best and best.get("method") in names else names[0]


def _honours(service, model: str | None) -> tuple[str, ...]:
    try:
        return tuple(service.model(model).honours)
    except Exception:  # the model cannot load: its error shows on the first request
        return ()
