"""Drawing, kept apart from computing: heatmap overlays, token highlights, deletion/insertion and modality plots.

No model code and no GUI: matplotlib figures are built on the Agg canvas (no pyplot, no display needed)."""
from __future__ import annotations

import html
from typing import Any, Sequence

import numpy as np
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image


def overlay(image: Image.Image, map: np.ndarray, cmap: str = "jet", alpha: float = 0.5) -> Image.Image:
    """The map (any size: patch grid or image size; values scaled to its max) coloured with `cmap` and blended
    over the image at `alpha`. Returns an RGB image of the image's own size."""
    rgb = image.convert("RGB")
    W, H = rgb.size
    m = np.nan_to_num(np.asarray(map, dtype=np.float32))
    if m.ndim != 2:
        raise ValueError(f"a map is 2-D, got shape {m.shape}")
    if m.shape != (H, W):
        m = np.asarray(Image.fromarray(m, mode="F").resize((W, H), Image.BILINEAR))
    lo, hi = float(m.min(initial=0)), float(m.max(initial=0))
    m = np.clip(m / hi, 0, 1) if hi > 0 and lo >= 0 else (m - lo) / (hi - lo) if hi > lo else np.zeros_like(m)
    colour = colormaps[cmap](m)[..., :3]                                    # (H, W, 3) in [0, 1]
    base = np.asarray(rgb, dtype=np.float32) / 255
    out = (1 - alpha) * base + alpha * colour
    return Image.fromarray(np.round(np.clip(out, 0, 1) * 255).astype(np.uint8))


def token_spans(tokens: Sequence[tuple[str, float]]) -> list[tuple[str, float]]:
    """(token, score) scaled to [-1, 1] by the largest |score|: what gradio's HighlightedText takes."""
    top = max((abs(float(s)) for _, s in tokens), default=0.0)
    return [(str(t), float(s) / top if top > 0 else 0.0) for t, s in tokens]


def token_highlights(tokens: Sequence[tuple[str, float]]) -> str:
    """Safe HTML: each token (escaped) in a span, red for support, blue against, opacity by |score|."""
    parts = []
    for tok, s in token_spans(tokens):
        rgb = "220,40,40" if s >= 0 else "40,90,220"
        parts.append(f'<span class="tok" title="{s:+.3f}" style="background: rgba({rgb},{abs(s):.3f}); '
                     f'padding: 0 2px; border-radius: 3px">{html.escape(tok)}</span>')
    return '<div class="token-highlights">' + " ".join(parts) + "</div>"


def plot_curves(result: dict[str, Any], title: str | None = None) -> Figure:
    """Deletion and insertion curves (as returned by explain.deletion_insertion), random baseline dashed."""
    fig = _figure(7.0, 3.0)
    x = result["fractions"]
    for i, kind in enumerate(("deletion", "insertion")):
        ax = fig.add_subplot(1, 2, i + 1)
        ax.plot(x, result[kind], color="C0", label=f"map (AUC {result[f'{kind}_auc']:.3f})")
        if "random" in result:
            rnd = result["random"]
            ax.plot(x, rnd[kind], color="0.5", ls="--", label=f"random (AUC {rnd[f'{kind}_auc']:.3f})")
        ax.set_title(kind)
        ax.set_xlabel("fraction of patches " + ("removed" if kind == "deletion" else "inserted"))
        ax.set_ylabel("probability of the target")
        ax.set_xlim(0, 1)
        ax.set_ylim(bottom=0)
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_modality(share: dict[str, Any], title: str | None = None) -> Figure:
    """One stacked bar: the image's and the text's share of the prediction (MM-SHAP), and the words' values."""
    words = share.get("text") or []
    fig = _figure(6.0, 2.4 if words else 1.4)
    ax = fig.add_subplot(2 if words else 1, 1, 1)
    img, txt = float(share["image_share"]), float(share["text_share"])
    ax.barh([0], [img], color="C1", label=f"image {img:.0%}")
    ax.barh([0], [txt], left=[img], color="C0", label=f"text {txt:.0%}")
    ax.set_xlim(0, 1)
    ax.set_yticks([])
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.25), ncol=2, fontsize=8, frameon=False)
    if words:
        wx = fig.add_subplot(2, 1, 2)
        vals = [v for _, v in words]
        wx.bar(range(len(words)), vals, color=["C3" if v >= 0 else "C0" for v in vals])
        wx.set_xticks(range(len(words)), [t for t, _ in words], fontsize=8)
        wx.axhline(0, color="0.3", lw=0.5)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def _figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig
