"""Correct tab: fix the model's caption (or answer), save it with who fixed it, see the word diff, and work
through a queue of uploaded images."""
from __future__ import annotations

from typing import Any

import gradio as gr

from ..access import Access
from ..errors import MmdemoError
from .common import Shared, handler, plain

DIFF_COLORS = {"removed": "#f8b4b4", "added": "#a7e3b1"}
_DIFF_CLASS = {"equal": None, "delete": "removed", "insert": "added"}


def build(shared: Shared) -> gr.Markdown:
    """Build the tab; returns the running-count Markdown (the app refreshes it on load)."""
    service = shared.service
    rules = Access.from_settings()          # with OAuth on, the logged-in user is the annotator (login: app header)
    oauth = rules.oauth
    count = gr.Markdown(elem_id="correct-count")
    with gr.Row():
        task = gr.Radio([("Caption", "caption"), ("Answer", "vqa")], value="caption", label="Correct the model's",
                        scale=1)
    output = gr.Textbox(label="Model output", interactive=False, elem_id="correct-output")
    question = gr.Textbox(label="Question (answers only)", visible=False, elem_id="correct-question")
    corrected = gr.Textbox(label="Your correction", lines=2, elem_id="correct-text",
                           placeholder="edit the model's words into what the image shows")
    with gr.Row():
        annotator = gr.Textbox(label="Annotator", max_lines=1, scale=1, elem_id="correct-annotator",
                               visible=not oauth)   # with logins, the saved name is the logged-in user's
        note = gr.Textbox(label="Note (optional)", max_lines=1, scale=2)
    save = gr.Button("Save correction", variant="primary", elem_id="correct-save")
    diff = gr.HighlightedText(label="Word diff (red: the model's words you removed, green: yours)",
                              color_map=DIFF_COLORS, show_legend=True, show_inline_category=False,
                              interactive=False, elem_id="correct-diff")
    with gr.Accordion("Saved (what the `save_correction` API returns)", open=False):
        saved = gr.JSON(label="saved correction")

    with gr.Accordion("Review queue: caption and correct a folder of images", open=False):
        files = gr.File(file_count="multiple", file_types=["image"], label="Images to review",
                        elem_id="correct-queue-files")
        with gr.Row():
            next_button = gr.Button("Next image", elem_id="correct-next")
            status = gr.Markdown("No queue yet: upload images above.")
    queue = gr.State([])

    @handler
    def save_correction(image: Any, model: str, task: str, model_output: str, question: str, corrected: str,
                        annotator: str, note: str, caption_state: dict | None,
                        profile: gr.OAuthProfile | None) -> dict[str, Any]:
        """Save a corrected caption (task "caption") or answer ("vqa"). Returns {id, count, diff: [{op, text}]}.
        With logins on, only a logged-in user may save, and that user is recorded (`annotator` is ignored)."""
        who = rules.annotator(profile.username if profile is not None else None, annotator)
        decoding = None
        if task == "caption" and caption_state and caption_state.get("caption") == model_output:
            decoding = caption_state.get("decoding")
        out = service.save_correction(image, model_output or None, corrected, model_name=model, task=task,
                                      question=question if task == "vqa" else None, annotator=who,
                                      note=note or None, decoding=decoding)
        return out.to_dict()

    def show_saved(result: dict[str, Any] | None):
        if not result:
            return None, gr.update()
        return ([(op["text"] + " ", _DIFF_CLASS[op["op"]]) for op in result["diff"]],
                _count_text(result["count"]))

    def fill(task: str, caption_state: dict | None, answer_state: dict | None):
        state = caption_state if task == "caption" else answer_state
        text = (state or {}).get("caption" if task == "caption" else "answer") or ""
        q = (answer_state or {}).get("question", "") if task == "vqa" else ""
        return text, text, gr.update(value=q, visible=task == "vqa")

    @handler
    def enqueue(paths: list[str] | None):
        paths = list(paths or [])
        return paths, f"{len(paths)} image(s) in the queue — press **Next image**."

    @handler
    def next_image(paths: list[str], model: str):
        """Take the next image from the queue, caption it, and put it up for correction."""
        if not paths:
            raise gr.Error("the queue is empty: upload images to review first", print_exception=False)
        path, rest = paths[0], paths[1:]
        result = service.caption(path, model).to_dict()
        left = f"{len(rest)} image(s) left in the queue." if rest else "That was the last image in the queue."
        return path, rest, left, result, "caption", result["caption"], result["caption"]

    inputs = [shared.image, shared.model, task, output, question, corrected, annotator, note, shared.caption_state]
    save.click(save_correction, inputs, [saved], api_name="save_correction", concurrency_id="store").success(
        show_saved, [saved], [diff, count], api_visibility="private", api_name="show_saved",
        show_progress="hidden")
    fill_inputs = [task, shared.caption_state, shared.answer_state]
    for trigger in (task.change, shared.caption_state.change, shared.answer_state.change):
        trigger(fill, fill_inputs, [output, corrected, question], api_visibility="private",
                api_name="fill_correction", show_progress="hidden")
    files.upload(enqueue, [files], [queue, status], api_visibility="private", api_name="enqueue")
    next_button.click(next_image, [queue, shared.model],
                      [shared.image, queue, status, shared.caption_state, task, output, corrected],
                      api_visibility="private", api_name="next_image", concurrency_id="model")
    return count


def _count_text(n: int) -> str:
    return f"**{n:,}** correction{'s' if n != 1 else ''} saved so far."


def count_text(service) -> str:
    """The running count for the tab's header; a store that cannot be read says so instead of failing the page."""
    try:
        return _count_text(service.count())
    except MmdemoError as e:  # the page must load even when the store is broken
        return f"The corrections store cannot be read right now: {plain(e)}"
    except Exception as e:  # noqa: BLE001
        return f"The corrections store cannot be read right now ({type(e).__name__})."
