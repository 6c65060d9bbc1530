"""Drawing: overlays at the image's own size, escaped token highlights, plots on the Agg canvas."""
import io

import numpy as np
import pytest
from matplotlib.figure import Figure
from PIL import Image

from mmdemo import viz


@pytest.mark.parametrize("size", [(37, 23), (128, 128), (5, 300)])
def test_overlay_keeps_the_image_size(size):
    image = Image.new("RGB", size, (200, 200, 200))
    grid = np.arange(12, dtype=np.float32).reshape(3, 4)
    out = viz.overlay(image, grid)
    assert out.size == size and out.mode == "RGB"
    full = viz.overlay(image, np.ones(size[::-1]), cmap="viridis", alpha=0.3)
    assert full.size == size


def test_overlay_blends_by_alpha():
    image = Image.new("RGB", (8, 8), (10, 20, 30))
    m = np.zeros((2, 2))
    m[0, 0] = 1
    assert np.array_equal(np.asarray(viz.overlay(image, m, alpha=0.0)), np.asarray(image))
    hot = np.asarray(viz.overlay(image, m, cmap="gray", alpha=1.0))
    assert hot[0, 0].tolist() == [255, 255, 255] and hot[-1, -1].tolist() == [0, 0, 0]
    assert np.asarray(viz.overlay(image, np.zeros((2, 2)), alpha=0.5)).shape == (8, 8, 3)   # a blank map draws
    with pytest.raises(ValueError, match="2-D"):
        viz.overlay(image, np.zeros(4))


def test_token_highlights_escape_every_token():
    html = viz.token_highlights([("<script>alert(1)</script>", 1.0), ("a&b", -0.5), ('"q"', 0.0)])
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "a&amp;b" in html and "&quot;q&quot;" in html
    assert html.count('<span class="tok"') == 3
    spans = viz.token_spans([("a", 2.0), ("b", -4.0), ("c", 0.0)])
    assert spans == [("a", 0.5), ("b", -1.0), ("c", 0.0)]
    assert viz.token_spans([("a", 0.0)]) == [("a", 0.0)] and viz.token_highlights([]).startswith("<div")


def test_plots_are_agg_figures():
    curves = {"fractions": [0, 0.5, 1], "deletion": [0.9, 0.3, 0.1], "insertion": [0.1, 0.6, 0.9],
              "deletion_auc": 0.4, "insertion_auc": 0.55,
              "random": {"deletion": [0.9, 0.5, 0.1], "insertion": [0.1, 0.5, 0.9], "deletion_auc": 0.5,
                         "insertion_auc": 0.5}}
    share = {"image_share": 0.7, "text_share": 0.3, "text": [("what", 0.2), ("<b>", -0.1)]}
    for fig in (viz.plot_curves(curves, title="t"), viz.plot_modality(share),
                viz.plot_modality({"image_share": 1.0, "text_share": 0.0})):
        assert isinstance(fig, Figure)
        buf = io.BytesIO()
        fig.savefig(buf, format="png")
        assert Image.open(io.BytesIO(buf.getvalue())).size[0] > 100


def test_viz_imports_no_model_code():
    import subprocess
    import sys

    code = ("import sys, mmdemo.viz; "
            "print(any(m.startswith(('torch', 'captum', 'mmdemo.explain', 'gradio')) for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.strip() == "False", out.stderr
    source = open(viz.__file__).read()
    assert "import torch" not in source and "mmdemo.models" not in source and "from .models" not in source
