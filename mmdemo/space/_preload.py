"""The files each registered hub checkpoint needs, for `preload_from_hub` (so a build fetches no unused weights).

One weight file per repository (safetensors where the repository has it, else the PyTorch bin), the config, the
image processor's and the tokenizer's files: what `from_pretrained` reads for that family. TensorFlow / Flax weights
and duplicate formats are left out.
"""
from __future__ import annotations

_BERT_TOKENIZER = ("special_tokens_map.json", "tokenizer.json", "tokenizer_config.json", "vocab.txt")
_GPT2_TOKENIZER = ("merges.txt", "special_tokens_map.json", "tokenizer.json", "tokenizer_config.json", "vocab.json")


def _files(weights: str, tokenizer: tuple[str, ...]) -> tuple[str, ...]:
    return ("config.json", weights, "preprocessor_config.json", *tokenizer)


PRELOAD_FILES: dict[str, tuple[str, ...]] = {
    "Salesforce/blip-image-captioning-base": _files("model.safetensors", _BERT_TOKENIZER),
    "Salesforce/blip-image-captioning-large": _files("model.safetensors", _BERT_TOKENIZER),
    "Salesforce/blip-vqa-base": _files("model.safetensors", _BERT_TOKENIZER),
    "dandelin/vilt-b32-finetuned-vqa": _files("pytorch_model.bin", _BERT_TOKENIZER),
    "microsoft/git-base-coco": _files("pytorch_model.bin", _BERT_TOKENIZER),
    "nlpconnect/vit-gpt2-image-captioning": _files("pytorch_model.bin", _GPT2_TOKENIZER),
}


def preload_entry(repo: str) -> str:
    """One `preload_from_hub` line: "org/name file1,file2,…" (the whole repository when its files are not listed)."""
    files = PRELOAD_FILES.get(repo)
    return f"{repo} {','.join(files)}" if files else repo
