"""The hub models mmdemo names, and the family lookup from a checkpoint's config.json (no torch here)."""
from __future__ import annotations

import importlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...errors import UnknownModelError

VIT_BERT_ENV = "MMDEMO_VIT_BERT_PATH"


@dataclass(frozen=True)
class Family:
    """How to open one kind of checkpoint: which adapter class, what it does, how it fuses image and text."""
    adapter: str                        # "module:Class" relative to this package, imported only when loading
    tasks: tuple[str, ...]
    fusion: str
    label: str                          # a few words for listings

    def adapter_class(self) -> type:
        module, _, cls = self.adapter.partition(":")
        return getattr(importlib.import_module(f"{__package__}.{module}"), cls)


BLIP_CAPTION = Family("blip:BlipCaptioner", ("caption",), "cross", "BLIP captioner")
BLIP_VQA = Family("blip:BlipAnswerer", ("vqa",), "cross", "BLIP question answerer")
VILT_VQA = Family("vilt:ViltAnswerer", ("vqa",), "early", "ViLT question answerer")
GIT_CAPTION = Family("git:GitCaptioner", ("caption",), "early", "GIT captioner")
ENCODER_DECODER = Family("encoder_decoder:EncoderDecoderCaptioner", ("caption",), "encoder-decoder",
                         "vision encoder-decoder captioner")

# config.json "architectures"[0] first (BLIP captioning and VQA share model_type "blip"), then "model_type"
BY_ARCHITECTURE = {
    "BlipForConditionalGeneration": BLIP_CAPTION,
    "BlipForQuestionAnswering": BLIP_VQA,
    "ViltForQuestionAnswering": VILT_VQA,
    "GitForCausalLM": GIT_CAPTION,
    "VisionEncoderDecoderModel": ENCODER_DECODER,
}
BY_MODEL_TYPE = {
    "blip": BLIP_CAPTION,
    "vilt": VILT_VQA,
    "git": GIT_CAPTION,
    "vision-encoder-decoder": ENCODER_DECODER,
}


@dataclass(frozen=True)
class HubSpec:
    """One registered hub model: a short name for a hub id (or, for vit-bert, a folder named by an env variable)."""
    name: str
    repo: str | None                    # hub id; None: only a local folder (VIT_BERT_ENV)
    family: Family
    summary: str


CATALOGUE: tuple[HubSpec, ...] = (
    HubSpec("blip-caption", "Salesforce/blip-image-captioning-base", BLIP_CAPTION,
            "BLIP base captioner (ViT-B/16 + BERT decoder, cross-attention), COCO"),
    HubSpec("blip-caption-large", "Salesforce/blip-image-captioning-large", BLIP_CAPTION,
            "BLIP large captioner (ViT-L/16 + BERT decoder, cross-attention), COCO"),
    HubSpec("blip-vqa", "Salesforce/blip-vqa-base", BLIP_VQA,
            "BLIP base VQA: question encoder cross-attends to the image, answer decoder"),
    HubSpec("vilt-vqa", "dandelin/vilt-b32-finetuned-vqa", VILT_VQA,
            "ViLT-B/32 VQAv2: patches and words in one transformer (single stream)"),
    HubSpec("git-caption", "microsoft/git-base-coco", GIT_CAPTION,
            "GIT base captioner: CLIP image tokens prefixed to a text decoder, COCO"),
    HubSpec("vit-gpt2", "nlpconnect/vit-gpt2-image-captioning", ENCODER_DECODER,
            "ViT encoder + GPT-2 decoder with cross-attention (VisionEncoderDecoder), COCO"),
    HubSpec("vit-bert", None, ENCODER_DECODER,
            f"ViT encoder + BERT decoder (VisionEncoderDecoder) from a local folder in ${VIT_BERT_ENV}"),
)
BY_NAME = {s.name: s for s in CATALOGUE}
BY_REPO = {s.repo: s for s in CATALOGUE if s.repo}


def family_of(config: dict[str, Any], where: str) -> Family:
    """The adapter family for a checkpoint's config.json; UnknownModelError when no adapter fits."""
    for arch in config.get("architectures") or ():
        if arch in BY_ARCHITECTURE:
            return BY_ARCHITECTURE[arch]
    family = BY_MODEL_TYPE.get(config.get("model_type", ""))
    if family is None:
        known = ", ".join(sorted(BY_MODEL_TYPE))
        raise UnknownModelError(f"{where} holds a {config.get('model_type') or 'model of unknown type'!r} checkpoint "
                                f"({', '.join(config.get('architectures') or ()) or 'no architectures'}); "
                                f"hub adapters open model types: {known}")
    return family


def read_config(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise UnknownModelError(f"cannot read {path}: {e}") from None
