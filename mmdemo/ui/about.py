"""About tab: the model cards, and one paragraph per explanation method — what it shows, when not to trust it,
and how faithful it measures on this model."""
from __future__ import annotations

import gradio as gr

from .common import handler, model_cards

INTRO = """\
**mmdemo** captions images and answers questions about them with vision-language models, shows where a model
looked for each word and each answer, compares early, cross and late fusion, and keeps your corrections as a
dataset. The embedded `shapes-*` models were trained by this project on a synthetic world of circles, squares,
triangles and stars in six colours: they know nothing else, so a photo gets a shapes-world answer.
"""

METHOD_NOTES = {
    "attention": ("The model's own text→image attention weights for the target, averaged over layers and heads "
                  "(or one layer). Cheap: one forward pass.",
                  "Attention says where information was read, not whether it changed the answer; heads that "
                  "attend everywhere blur it, and late fusion has almost no text→image attention to show."),
    "gradattn": ("One fusion layer's text→image attention (the last by default), each head weighted by how much "
                 "the score depends on it ((∇A ⊙ A)⁺, Chefer et al.'s per-layer term).",
                 "Only one layer: evidence read earlier is not shown."),
    "rollout": ("Attention multiplied through the layers (Abnar & Zuidema 2020), so that mixing across tokens "
                "in earlier layers is accounted for. Single-stream (early-fusion) models only.",
                "Assumes attention is the only path between tokens and ignores the values and MLPs; maps grow "
                "flat in deep models."),
    "relevance": ("Attention weighted by its gradient, propagated through the layers (Chefer et al. 2021): "
                  "attention that matters for this target.",
                  "Gradients can be noisy for low-probability targets; compare with occlusion when they disagree."),
    "ig": ("Integrated Gradients on the patch embedding: the gradient averaged along a path from a baseline "
           "image, times the change. The attributions add up to the change in score (completeness).",
           "Depends on the baseline: parts of the image that look like the baseline get little credit even when "
           "they matter."),
    "ig-pixels": ("Integrated Gradients on the pixels, summed per patch.",
                  "As for ig, plus pixel noise: more steps give steadier maps."),
    "saliency": ("The absolute gradient of the score with respect to the pixels (Simonyan et al. 2014).",
                 "A local, first-order view: it shows what a tiny change would do, and saturates when the model "
                 "is confident."),
    "inputxgrad": ("The image's difference from the baseline (an empty canvas) times its gradient, summed per "
                   "patch: the first-order term of Integrated Gradients.",
                   "Inherits saliency's locality: it says what a small change would do, not what removing the "
                   "object would."),
    "gradcam": ("Grad-CAM: a vision layer's features weighted by their mean gradient (on the shapes models, "
                "the last image block's MLP activation; on photo-lite, the last conv stage).",
                "Coarse (the vision grid) and blind to what happens after fusion; on transformer tokens it "
                "localises poorly — check its pointing score below before reading much into it."),
    "occlusion": ("How much the score drops when each patch is replaced by the baseline, one window at a time.",
                  "Misses evidence that is spread over several patches (removing one leaves the rest), and the "
                  "baseline can itself look like an object."),
    "shapley": ("Shapley values of the patches, sampled over random orders of adding them to the baseline.",
                "Sampled: few samples give noisy maps; and like occlusion it depends on the baseline."),
    "text-ig": ("Integrated Gradients of each question or caption word from a zero embedding, the image held "
                "fixed: which words mattered.",
                "Says nothing about the image; a zero embedding is not a neutral word."),
}


CAPTION_WORDS = """\
**Caption words: which map to believe.** For a colour, size or shape word of a caption, the Caption tab shows
beside the map how often that method's map of that kind of word pointed at the word's own object on held-out
scenes (`eval-explain --target caption-words`, shipped with each model card), and starts with the map that
measured best for that model. On shapes-cross that is **contrastive saliency**: why this word and not the model's
most probable other word of the same kind (why *circle* and not *square*). It points at the word's own object
for 97 % of colour and 97 % of shape words (3,837 words of 500 held-out scenes). The plain attention map misses
shape words (74 %) because of how it is aggregated, not because of the model: it averages every fusion layer and
head, and
only the last layer points at the object (layers 0 and 1 hit it for a third to a half of the words); within that
layer the heads divide the work, two reading colour (they point at the object for every colour word and for
1–17 % of shape words) and one reading shape (96 % of shape words, 100 % of size words, 6 % of colour words).
A map of log p(word) alone also carries what the word owes to grammar and to the words before it; contrasting
it with the runner-up word keeps only the evidence that tells the two apart, which lies on the object
(`python benchmarks/bench_caption_word_heads.py --model shapes-cross`). A late-fusion model pools the image
before it reads any word, so its attention map is the same for every word: believe its gradient maps instead."""

FAITHFULNESS = ["method", "pointing game", "deletion AUC", "random deletion AUC", "insertion AUC",
                "random insertion AUC", "ms per map", "scenes"]


def build(service) -> None:
    gr.Markdown(INTRO)
    with gr.Accordion("Explanation methods", open=True):
        gr.Markdown(_methods_text(service))
        with gr.Row():
            measure = gr.Button("Measure faithfulness on the example scenes", elem_id="about-measure")
        scores = gr.Dataframe(headers=FAITHFULNESS, label="Faithfulness on the example scenes (default model): "
                              "pointing game (higher is better), deletion AUC (lower than random is better), "
                              "insertion AUC (higher than random is better)", interactive=False,
                              elem_id="about-faithfulness")
    for name, card in model_cards():
        with gr.Accordion(f"Model card: {name}", open=False):
            gr.Markdown(card)

    @handler
    def faithfulness():
        """Per method on the example scenes and their questions: pointing game, deletion and insertion AUC
        against random maps. Returns a table."""
        import pandas as pd

        return pd.DataFrame(service.faithfulness(), columns=FAITHFULNESS)

    measure.click(faithfulness, None, [scores], api_name="faithfulness", concurrency_id="model")


def _methods_text(service) -> str:
    try:
        methods = service.methods()
    except Exception:
        methods = []
    if not methods:
        return "Explanations are not available with the chosen model in this installation."
    try:
        from ..explain import METHODS

        summaries = {name: cls.summary for name, cls in METHODS.items()}
    except ImportError:
        summaries = {}
    parts = []
    for name in methods:
        shows, caveat = METHOD_NOTES.get(name, (summaries.get(name, ""), ""))
        parts.append(f"**{name}** — {shows}" + (f" *Do not trust it when:* {caveat}" if caveat else ""))
    parts.append(CAPTION_WORDS)
    parts.append("A map is worth trusting when removing its most relevant patches first lowers the model's "
                 "score faster than removing random ones (deletion AUC below random) and adding them first "
                 "raises it faster (insertion AUC above random); on shapes scenes it should also point at the "
                 "object the question is about (pointing game). Measure it below.")
    return "\n\n".join(parts)
