"""What every tab shares: the image input, error handling, safe text, and small value converters."""
from __future__ import annotations

import functools
import html
import io
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, TypeVar

import gradio as gr

from ..config import settings
from ..errors import ImageError, MmdemoError
from ..images import load_image
from ..service import Service

log = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])
CMAPS = ("jet", "viridis", "inferno", "magma", "plasma", "turbo", "gray")


class ImageInput(gr.Image):
    """gr.Image whose upload is decoded by `mmdemo.images.load_image`: handlers get an RGB PIL image.

    gr.Image opens every upload with PIL before the handler runs, so a non-image, a truncated file or a
    decompression bomb fails inside Gradio with a bare "Error". This one goes through the project's one door
    for images, which says what was wrong (naming the file as the user called it) as a gr.Error.
    """

    is_template = True  # drawn by gr.Image's frontend

    def preprocess(self, payload: Any) -> Any:  # type: ignore[override]
        if payload is None:
            return None
        url = getattr(payload, "url", None)
        try:
            if url and url.startswith("data:"):
                import base64

                return load_image(base64.b64decode(url.split(",", 1)[-1]))
            if getattr(payload, "path", None) is None:
                raise ImageError("the image upload arrived without a file")
            limit = settings().max_upload_bytes
            with open(payload.path, "rb") as f:
                stream = io.BytesIO(f.read(limit + 1))
            stream.name = Path(getattr(payload, "orig_name", None) or payload.path).name
            return load_image(stream)
        except ImageError as e:
            raise gr.Error(str(e), print_exception=False) from None
        except OSError as e:
            raise gr.Error(f"the upload cannot be read: {e.strerror or e}", print_exception=False) from None


def handler(fn: F) -> F:
    """Wrap an event handler: MmdemoError → gr.Error with its message; anything else → a short
    gr.Error (the traceback goes to the server log, never to the user)."""

    @functools.wraps(fn)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except Exception as e:
            raise _for_user(fn, e) from None

    return wrapped  # type: ignore[return-value]


def stream_handler(fn: F) -> F:
    """`handler` for a generator (a streamed output): the same errors, raised while it runs. When the user stops
    the event, Gradio closes the generator, and `fn`'s own generator is closed with it (no further work)."""

    @functools.wraps(fn)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        try:
            yield from fn(*args, **kwargs)
        except Exception as e:
            raise _for_user(fn, e) from None

    return wrapped  # type: ignore[return-value]


def _for_user(fn: Callable[..., Any], e: Exception) -> gr.Error:
    if isinstance(e, gr.Error):
        return e
    if isinstance(e, MmdemoError):
        return gr.Error(str(e) or type(e).__name__, print_exception=False)
    log.error("unexpected error in %s", fn.__name__, exc_info=e)     # a bug: log it whole, tell the user briefly
    return gr.Error(f"something went wrong on the server ({type(e).__name__}); the app is still running "
                    "— please try again or report it", print_exception=False)


_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|~>])")


def image_methods(service: Service, model: str | None = None) -> list[tuple[str, str]]:
    """(label, name) of the model's image-map methods, each label with the time a map took when measured on this
    kind of device ("ig (~5 s)", from assets/timings.json); [] when the model cannot load or explanations are
    not installed (the map section stays hidden)."""
    from ..explain.timings import labelled

    try:
        names = service.methods(model, output="image")
        info = service.info(model)
    except Exception:  # no model yet, or the explain engine is not installed
        return []
    return labelled(info["name"], names, info.get("device") or "cpu")


def plain(text: Any) -> str:
    """Text safe to put inside Markdown: HTML escaped, Markdown punctuation backslash-escaped."""
    return _MD_SPECIAL.sub(r"\\\1", html.escape(str(text), quote=True))


def probability_highlights(tokens: list[dict[str, Any]] | list[tuple[str, float]]) -> list[tuple[str, float]]:
    """Caption tokens for gr.HighlightedText: (token + space, probability) — darker means more confident."""
    out = []
    for i, item in enumerate(tokens):
        token, prob = (item["token"], item["prob"]) if isinstance(item, dict) else item
        out.append((token + ("" if i == len(tokens) - 1 else " "), round(float(prob), 3)))
    return out


def signed_highlights(tokens: list[tuple[str, float]] | None) -> list[tuple[str, float]] | None:
    """Attribution scores scaled to [-1, 1] by the largest magnitude (viz.token_spans), for gr.HighlightedText."""
    from ..viz import token_spans

    if not tokens:
        return None
    return [(t + " ", round(s, 3)) for t, s in token_spans(tokens)]


def top_k_label(top_k: list[dict[str, Any]]) -> dict[str, float]:
    """[{"answer", "prob"}] → {answer: prob} for gr.Label."""
    return {str(row["answer"]): float(row["prob"]) for row in top_k}


def overlay(image: Any, heatmap: Any, cmap: str, alpha: float) -> Any:
    """The heat map drawn over the image (viz.overlay), at the image's own size."""
    from ..viz import overlay as draw

    if cmap not in CMAPS:
        raise gr.Error(f"colour map must be one of {', '.join(CMAPS)}", print_exception=False)
    try:
        alpha = min(max(float(alpha), 0.0), 1.0)
    except (TypeError, ValueError):
        raise gr.Error(f"opacity must be a number between 0 and 1, not {alpha!r}", print_exception=False) from None
    return draw(image, heatmap, cmap=cmap, alpha=alpha)


def explanation_json(explanation: Any, model: str, target: dict[str, Any]) -> dict[str, Any]:
    """The explain CLI's JSON: model, method, target, grid size, the map on the patch grid (max 1), seconds."""
    import numpy as np

    grid = np.asarray(explanation.grid, dtype=float)
    peak = float(np.nanmax(grid)) if grid.size else 0.0
    scaled = grid / peak if peak > 0 else grid
    text = getattr(explanation, "text", None)
    return {"model": model, "method": explanation.method, "target": target, "grid": list(grid.shape),
            "map": np.round(scaled, 4).tolist(), "seconds": round(float(explanation.seconds), 4),
            "text": None if text is None else [{"token": str(t), "score": float(s)} for t, s in text]}


@dataclass
class Shared:
    """Components more than one tab reads or writes."""
    service: Service
    image: ImageInput                   # the image every tab works on
    model: gr.Dropdown                  # the chosen model
    question: gr.Textbox                # the Ask tab's question (examples fill it)
    caption_state: gr.State             # this user's latest caption result (dict) or None
    answer_state: gr.State              # this user's latest answer result (dict) or None
    caption_text: gr.Textbox            # the latest caption, as plain text


def model_cards() -> list[tuple[str, str]]:
    """(model name, README text) for every model folder under assets/models/ that has a card."""
    from ..config import ASSETS

    cards = []
    for readme in sorted((ASSETS / "models").glob("*/README.md")):
        try:
            cards.append((readme.parent.name, readme.read_text(encoding="utf-8")))
        except OSError:
            continue
    return cards
