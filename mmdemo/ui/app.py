"""The whole app: a shared image and model picker beside one tab per task. `build_app()` → gr.Blocks."""
from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import Any

import gradio as gr

from ..config import ASSETS, settings
from ..service import Service
from ..world.examples import read_examples
from . import about, annotate, ask, caption, correct, dataset, fusion
from .common import ImageInput, Shared, handler, plain

log = logging.getLogger(__name__)

TITLE = "mmdemo — how vision-language models fuse image and text"
QUEUE_SIZE = 64                 # requests waiting per app; more are refused with "queue full"
CONCURRENCY = 2                 # events running at once per group (GRADIO_DEFAULT_CONCURRENCY_LIMIT overrides)
CSS = """
#caption-tokens span { cursor: pointer; }
"""


def build_app(service: Service | None = None, *, warm: bool = True) -> gr.Blocks:
    """The Gradio app over `service` (default: a fresh Service). `warm`: load the default model in the
    background so the first request does not wait for it."""
    service = service or Service()
    if os.environ.get("SPACE_ID"):     # ZeroGPU wants hub models loaded, onto their device, before the first call
        loaded = service.preload()
        if loaded:
            log.info("preloaded %s", ", ".join(loaded))
    choices = [c.name for c in service.models()]
    default = service.default_model()
    examples = read_examples()
    with gr.Blocks(title=TITLE) as demo:
        gr.Markdown(f"# {TITLE}\nPick an example or drop in an image, then caption it, ask about it, see where "
                    "the model looked, compare fusion strategies, and correct what it got wrong.")
        if settings().oauth:                # logins count: saving needs one, exports need an admin (mmdemo.access)
            gr.LoginButton(elem_id="login")
        shared = Shared(
            service=service,
            image=ImageInput(type="pil", sources=["upload", "clipboard", "webcam"], label="Image",
                             elem_id="image", height=320, render=False),
            model=gr.Dropdown(choices, value=default, allow_custom_value=True, label="Model", elem_id="model",
                              render=False),
            question=gr.Textbox(label="Question", placeholder="e.g. what color is the circle?",
                                elem_id="question", max_lines=2, render=False),
            caption_state=gr.State(None),
            answer_state=gr.State(None),
            caption_text=gr.Textbox(label="Caption as text", interactive=False, elem_id="caption-text",
                                    render=False),
        )
        with gr.Row():
            with gr.Column(scale=1, min_width=320):
                shared.image.render()
                shared.model.render()
                knows = gr.Markdown(_describe(service, default), elem_id="model-knows")
                if examples:
                    gr.Examples([[e["path"], e["question"]] for e in examples], [shared.image, shared.question],
                                example_labels=[f"{e['caption']} — {e['question']}" for e in examples],
                                label="Examples (shapes world): click one", cache_examples=False,
                                examples_per_page=8, api_visibility="private", api_name="load_example")
            with gr.Column(scale=2):
                with gr.Tabs():
                    with gr.Tab("Caption", id="caption"):
                        caption.build(shared)
                    with gr.Tab("Ask", id="ask"):
                        ask.build(shared)
                    with gr.Tab("Fusion lab", id="fusion"):
                        fusion.build(shared)
                    with gr.Tab("Correct", id="correct"):
                        count = correct.build(shared)
                    with gr.Tab("Dataset", id="dataset") as dataset_tab:
                        dataset.build(service, dataset_tab)
                    with gr.Tab("Annotate", id="annotate"):
                        annotate.build(service)
                    with gr.Tab("Review", id="review") as review_tab:
                        annotate.build_review(service, review_tab)
                    with gr.Tab("About", id="about"):
                        about.build(service)

        @handler
        def model_info(model: str) -> str:
            """What the chosen model can see, as one Markdown paragraph."""
            return _describe(service, model, strict=True)

        shared.model.change(model_info, [shared.model], [knows], api_name="model_info")

        @handler
        def image_hint(image: Any, model: str) -> str:
            """What the model knows, plus a suggestion when the image is outside its world."""
            text = _describe(service, model)
            better = service.suggest(image, model) if image is not None else None
            if better:
                text += (f"  \n**This looks like a photo**, not a shapes-world scene: {plain(model)} will describe "
                         f"it in shapes. Pick **{plain(better)}** in the model list for photos.")
            return text

        shared.image.change(image_hint, [shared.image, shared.model], [knows], api_name="image_hint",
                            show_progress="hidden")
        demo.load(lambda: correct.count_text(service), None, [count], api_visibility="private",
                  api_name="load_count", show_progress="hidden")
        demo.load(None, None, None, js=annotate.KEYS_JS, api_visibility="private", api_name="annotate_keys")
    demo.queue(max_size=QUEUE_SIZE, default_concurrency_limit=concurrency_limit())
    if warm and default:
        threading.Thread(target=_warm, args=(service, default), name="mmdemo-warm", daemon=True).start()
    return demo


def launch_options() -> dict[str, Any]:
    """What `launch()` needs besides the address (Gradio reads GRADIO_SERVER_NAME / _PORT itself): the upload
    limit, the example folder served, the data folder and database never served, the look."""
    cfg = settings()
    blocked = [str(cfg.data_dir.resolve())]
    url = cfg.database_url or ""
    if url.startswith("sqlite:///"):
        blocked.append(str(Path(url[len("sqlite:///"):]).resolve().parent))
    return {"max_file_size": cfg.max_upload_bytes, "allowed_paths": [str((ASSETS / "examples").resolve())],
            "blocked_paths": blocked, "css": CSS, "theme": gr.themes.Soft(), "footer_links": ["api"]}


def _describe(service: Service, model: str | None, *, strict: bool = False) -> str:
    if not model:
        return "**No model is available**: no model's weights are on this machine."
    try:
        knows = service.knows(model)
        summary = next((c.summary for c in service.models() if c.name == model), "")
    except Exception as e:  # the page must load even if a model cannot; the picker shows the error later
        if strict:
            raise
        log.warning("cannot describe %s: %s", model, e)
        return f"**{plain(model)}** could not be loaded: {plain(e)}"
    extra = f"  \n*{plain(summary)}*" if summary and summary != knows else ""
    return f"**What {plain(model)} knows:** {plain(knows)}{extra}"


def concurrency_limit() -> int | None:
    raw = os.environ.get("GRADIO_DEFAULT_CONCURRENCY_LIMIT")
    if raw:
        return None if raw.lower() == "none" else int(raw)
    return CONCURRENCY


def _warm(service: Service, model: str) -> None:
    try:
        service.warm(model)
    except Exception:  # a warm-up failure shows up, with its message, on the first real request
        log.exception("warming up %s failed", model)
