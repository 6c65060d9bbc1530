"""WordPiece tokenizer of the shapes models (HF `tokenizers`), built from the world's vocabulary."""
from __future__ import annotations

from functools import lru_cache

from tokenizers import Tokenizer, normalizers, pre_tokenizers, processors
from tokenizers.models import WordPiece

from ...world.vocab import ANSWERS, COLORS, NUMBER_WORDS, POSITIONS, SHAPES, SIZES

SPECIALS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
PAD, UNK, CLS, SEP, MASK = range(len(SPECIALS))
WORDS = ("a", "an", "the", "is", "are", "there", "what", "which", "color", "colour", "shape", "size",
         "object", "objects", "thing", "things", "how", "many", "where", "of", "to", "and", "in", "picture",
         "image", "left", "right", "above", "below", "top", "bottom", "center", "middle", "any", "?", ",", ".",
         "##s", "##es")


def vocabulary(extra: tuple[str, ...] = ()) -> list[str]:
    """The world's words, then `extra` ones a model learned beyond it (e.g. easy-VQA's), in a fixed order."""
    words = list(SPECIALS)
    for w in WORDS + COLORS + SHAPES + SIZES + NUMBER_WORDS + tuple(ANSWERS) + tuple(
            p for pos in POSITIONS for p in pos.split()) + tuple(extra):
        if w not in words:
            words.append(w)
    return words


@lru_cache(maxsize=None)
def build_tokenizer(max_length: int = 32, extra: tuple[str, ...] = ()) -> Tokenizer:
    """Lower-cases, splits punctuation, WordPiece ('circles' -> 'circle ##s'); adds [CLS] … [SEP]."""
    vocab = {w: i for i, w in enumerate(vocabulary(extra))}
    tok = Tokenizer(WordPiece(vocab, unk_token="[UNK]", max_input_chars_per_word=40))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True, strip_accents=True, clean_text=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", CLS), ("[SEP]", SEP)])
    tok.enable_truncation(max_length)
    return tok


def decode(ids: list[int]) -> list[str]:
    """Word pieces merged back into words: [circle, ##s] -> ['circles']; specials dropped."""
    vocab = vocabulary()
    words: list[str] = []
    for i in ids:
        piece = vocab[i]
        if piece in SPECIALS:
            continue
        if piece.startswith("##") and words:
            words[-1] += piece[2:]
        else:
            words.append(piece)
    return words


def join(words: list[str]) -> str:
    """Words back to a sentence: no space before ',' '.' '?'."""
    text = " ".join(words)
    for p in (",", ".", "?"):
        text = text.replace(f" {p}", p)
    return text
