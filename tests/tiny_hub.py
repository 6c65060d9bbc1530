"""Tiny random checkpoints of the hub architectures (BLIP caption and VQA, ViLT, GIT, ViT-GPT2, ViT+BERT), saved with
`save_pretrained` the way the real ones are, for tests that load them through `mmdemo.load(folder)`.

Every builder takes the input size and patch of the vision side (small by default) and, optionally, the
`preprocessor_config.json` a real checkpoint publishes, written in place of the small default processor."""
from __future__ import annotations

import json
from pathlib import Path

import torch

ANSWERS = ["yes", "no", "red", "two"]
TINY = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2)
WORDS = "[PAD] [UNK] [CLS] [SEP] [MASK] [DEC] a the cat dog red blue on sits is what color yes no".split()


def bert_tokenizer(bos: str | None = None):
    """WordPiece over whole words; [DEC] is BLIP's start token, special everywhere (so it never round-trips as text)."""
    from transformers import BertTokenizer

    tok = BertTokenizer(vocab={w: i for i, w in enumerate(WORDS)})
    tok.add_special_tokens({"bos_token": bos} if bos else {"additional_special_tokens": ["[DEC]"]})
    return tok


def gpt2_tokenizer():
    """Byte-level BPE with no merges over a–z and space ('Ġ'): every character is one token, so text round-trips."""
    from transformers import GPT2Tokenizer

    vocab = {c: i for i, c in enumerate("abcdefghijklmnopqrstuvwxyzĠ")}
    vocab["<|endoftext|>"] = len(vocab)
    return GPT2Tokenizer(vocab=vocab, merges=[])


def write_preprocessor(folder: Path, config: dict) -> None:
    (folder / "preprocessor_config.json").write_text(json.dumps(config, indent=2))


def blip_config(image_size: int = 32, patch: int = 8):
    from transformers import BlipConfig

    text = dict(vocab_size=len(WORDS), max_position_embeddings=64, encoder_hidden_size=32, bos_token_id=5,
                pad_token_id=0, sep_token_id=3, eos_token_id=3, **TINY)
    return BlipConfig(vision_config=dict(image_size=image_size, patch_size=patch, **TINY), text_config=text,
                      projection_dim=32)


def _blip_processor(folder: Path, image_size: int, preprocessor: dict | None) -> None:
    from transformers import BlipImageProcessor, BlipProcessor

    if preprocessor:
        bert_tokenizer("[DEC]").save_pretrained(folder)
        write_preprocessor(folder, preprocessor)
    else:
        images = BlipImageProcessor(size={"height": image_size, "width": image_size})
        BlipProcessor(images, bert_tokenizer("[DEC]")).save_pretrained(folder)


def save_blip_caption(folder: Path, *, image_size: int = 32, patch: int = 8, preprocessor: dict | None = None) -> None:
    from transformers import BlipForConditionalGeneration

    torch.manual_seed(0)
    BlipForConditionalGeneration(blip_config(image_size, patch)).save_pretrained(folder)
    _blip_processor(folder, image_size, preprocessor)


def save_blip_vqa(folder: Path, *, image_size: int = 32, patch: int = 8, preprocessor: dict | None = None) -> None:
    from transformers import BlipForQuestionAnswering

    torch.manual_seed(0)
    model = BlipForQuestionAnswering(blip_config(image_size, patch))
    with torch.no_grad():               # make [SEP] likely so answers end (a random decoder rarely stops)
        model.text_decoder.cls.predictions.bias[3] += 4.0
    model.save_pretrained(folder)
    _blip_processor(folder, image_size, preprocessor)


def save_vilt(folder: Path, *, image_size: int = 32, patch: int = 8, preprocessor: dict | None = None) -> None:
    from transformers import ViltConfig, ViltForQuestionAnswering, ViltImageProcessor, ViltProcessor

    torch.manual_seed(0)
    config = ViltConfig(vocab_size=len(WORDS), max_position_embeddings=40, image_size=image_size, patch_size=patch,
                        num_labels=len(ANSWERS), id2label=dict(enumerate(ANSWERS)),
                        label2id={a: i for i, a in enumerate(ANSWERS)}, **TINY)
    ViltForQuestionAnswering(config).save_pretrained(folder)
    if preprocessor:
        bert_tokenizer().save_pretrained(folder)
        write_preprocessor(folder, preprocessor)
        return
    # size_divisor one patch: with the default 32, a 20×50 photo's short side would shrink to 0 px
    images = ViltImageProcessor(size={"shortest_edge": image_size}, size_divisor=patch)
    ViltProcessor(images, bert_tokenizer()).save_pretrained(folder)


def save_git(folder: Path, *, image_size: int = 32, patch: int = 8, preprocessor: dict | None = None) -> None:
    from transformers import CLIPImageProcessor, GitConfig, GitForCausalLM, GitProcessor

    torch.manual_seed(0)
    config = GitConfig(vision_config=dict(image_size=image_size, patch_size=patch, **TINY), vocab_size=len(WORDS),
                       max_position_embeddings=64, bos_token_id=2, eos_token_id=3, pad_token_id=0, **TINY)
    GitForCausalLM(config).save_pretrained(folder)
    if preprocessor:
        bert_tokenizer().save_pretrained(folder)
        write_preprocessor(folder, preprocessor)
        return
    images = CLIPImageProcessor(size={"shortest_edge": image_size}, crop_size={"height": image_size, "width": image_size})
    GitProcessor(images, bert_tokenizer()).save_pretrained(folder)


def vit_config(image_size: int = 32, patch: int = 8):
    from transformers import ViTConfig

    return ViTConfig(image_size=image_size, patch_size=patch, **TINY)


def save_vit_gpt2(folder: Path, *, image_size: int = 32, patch: int = 8, preprocessor: dict | None = None) -> None:
    from transformers import GPT2Config, ViTImageProcessor, VisionEncoderDecoderConfig, VisionEncoderDecoderModel

    torch.manual_seed(0)
    tok = gpt2_tokenizer()
    end = tok.eos_token_id
    decoder = GPT2Config(vocab_size=len(tok), n_positions=64, n_embd=32, n_layer=2, n_head=2, bos_token_id=end,
                         eos_token_id=end, is_decoder=True, add_cross_attention=True)
    config = VisionEncoderDecoderConfig.from_encoder_decoder_configs(vit_config(image_size, patch), decoder)
    config.decoder_start_token_id = config.pad_token_id = config.eos_token_id = end
    VisionEncoderDecoderModel(config=config).save_pretrained(folder)
    tok.save_pretrained(folder)
    if preprocessor:
        write_preprocessor(folder, preprocessor)
    else:
        ViTImageProcessor(size={"height": image_size, "width": image_size}).save_pretrained(folder)


def save_vit_bert(folder: Path) -> None:
    """The ViT + BERT encoder–decoder, assembled from a saved ViT and a saved BERT by the adapter's own helper."""
    from transformers import BertConfig, BertModel, ViTImageProcessor, ViTModel

    from mmdemo.models.hub import assemble_vit_bert

    torch.manual_seed(0)
    ViTModel(vit_config()).save_pretrained(folder / "vit")
    ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(folder / "vit")
    BertModel(BertConfig(vocab_size=len(WORDS), max_position_embeddings=64, **TINY)).save_pretrained(folder / "bert")
    bert_tokenizer().save_pretrained(folder / "bert")
    assemble_vit_bert(folder / "vit", folder / "bert", folder / "model")


BUILDERS = {"blip-caption": save_blip_caption, "blip-vqa": save_blip_vqa, "vilt": save_vilt, "git": save_git,
            "vit-gpt2": save_vit_gpt2, "vit-bert": save_vit_bert}
