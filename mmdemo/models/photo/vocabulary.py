"""What photo-lite can name: the 1000 ImageNet classes (timm's lemma list), everyday group words, and the phrases a
text names. Plain Python: no torch, so it can be read and tested on its own.

Every phrase the model can match is an `Entry`: a label lemma ("tabby cat" → {281}), a group word ("cat" →
{281 … 285}), or an unknown concept ("person" → no class: the model cannot see people). The same text in two classes
("crane": the bird and the machine) is one entry naming both.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from ...config import ASSETS

CARD_DIR = ASSETS / "models" / "photo-lite"
GROUPS_FILE = CARD_DIR / "groups.json"
N_CLASSES = 1000
# a lemma that extends the first one by one of these is not a better name ("church building", "pizza pie")
_NOT_HEAD_NOUNS = {"building", "system", "house", "light", "pie", "dog"}
_PREFER_LONGER_EXCEPT = {"German shepherd", "Newfoundland"}            # … except where the dog is the name
# names that take no article: plurals and mass nouns
NO_ARTICLE = {"jeans", "sunglasses", "swimming trunks", "parallel bars", "chocolate sauce", "mashed potato",
              "guacamole", "carbonara", "consomme", "hay", "dough", "eggnog", "red wine", "wool", "velvet", "corn",
              "broccoli", "cauliflower", "rapeseed", "toilet tissue", "chain mail", "ice cream", "meat loaf"}
RENAME = {608: "jeans", 639: "tank suit", 744: "projectile"}           # clearer names for a few classes
_A_NOT_AN = ("uni", "eu", "one", "use", "usu")
_AN_NOT_A = ("hour", "honest", "heir")
WORD = re.compile(r"[A-Za-z0-9]+(?:['’-][A-Za-z0-9]+)*|[^\sA-Za-z0-9]")


@dataclass(frozen=True)
class Entry:
    text: str                           # lower-case phrase
    classes: tuple[int, ...]            # ImageNet class indices; () for an unknown concept
    kind: str                           # "label" | "group" | "unknown"


@dataclass(frozen=True)
class Vocabulary:
    names: tuple[str, ...]              # (1000,) display name of each class
    lemmas: tuple[tuple[str, ...], ...] # (1000,) every lemma of each class, as timm lists them
    entries: tuple[Entry, ...]          # everything a phrase can match
    index: dict                         # lower-case text -> entry number

    def lookup(self, phrase: str) -> Entry | None:
        return self.entries[self.index[k]] if (k := normalise(phrase)) in self.index else None

    def with_article(self, c: int) -> str:
        return article(self.names[c])


def normalise(phrase: str) -> str:
    return " ".join(w.lower() for w in WORD.findall(phrase) if w.isalnum() or w[0].isalnum())


def words(text: str) -> list[str]:
    """Words and punctuation marks, in order: the token unit of photo-lite's captions."""
    return WORD.findall(text)


def join(tokens: list[str]) -> str:
    """Inverse of `words` for the captions photo-lite writes: no space before punctuation."""
    out = ""
    for t in tokens:
        out += t if (not out or (not t[0].isalnum() and t not in "(")) else " " + t
    return out


def article(name: str) -> str:
    """'a tabby cat', 'an Egyptian cat', 'sunglasses'."""
    low = name.lower()
    if low in NO_ARTICLE:
        return name
    vowel = low[0] in "aeiou"
    if low.startswith(_A_NOT_AN):
        vowel = False
    if low.startswith(_AN_NOT_A):
        vowel = True
    return f"{'an' if vowel else 'a'} {name}"


def display_name(lemmas: list[str]) -> str:
    """The first lemma, or a lemma that adds one head noun to it ('tabby' -> 'tabby cat', not 'pizza pie')."""
    first = lemmas[0]
    for lemma in lemmas[1:]:
        extra = lemma[len(first) + 1:] if lemma.startswith(first + " ") else ""
        if extra and " " not in extra and extra not in _NOT_HEAD_NOUNS:
            return lemma
        if extra == "dog" and first in _PREFER_LONGER_EXCEPT:
            return lemma
    return first


@lru_cache(maxsize=1)
def imagenet_lemmas() -> tuple[tuple[str, ...], ...]:
    """(1000,) lemma lists in class-index order, from timm's bundled ImageNet info (no download)."""
    from timm.data import ImageNetInfo

    info = ImageNetInfo()
    if info.num_classes() != N_CLASSES:
        raise RuntimeError(f"timm's ImageNet info has {info.num_classes()} classes, expected {N_CLASSES}")
    return tuple(tuple(s.strip() for s in info.index_to_description(c).split(",") if s.strip())
                 for c in range(N_CLASSES))


def parse_classes(items: list[str], lemmas: tuple[tuple[str, ...], ...]) -> tuple[int, ...]:
    """Class references from groups.json: 'a-b' ranges of indices, or a lemma (every class that lists it)."""
    by_lemma: dict[str, set[int]] = {}
    for c, ls in enumerate(lemmas):
        for lemma in ls:
            by_lemma.setdefault(lemma.lower(), set()).add(c)
    out: list[int] = []
    for item in items:
        if m := re.fullmatch(r"(\d+)-(\d+)", item):
            lo, hi = int(m[1]), int(m[2])
            if not 0 <= lo <= hi < N_CLASSES:
                raise ValueError(f"class range {item!r} is outside 0-{N_CLASSES - 1}")
            out += range(lo, hi + 1)
            continue
        found = by_lemma.get(item.lower(), set())
        if not found:
            raise ValueError(f"{item!r} is not the name of an ImageNet class")
        out += found
    return tuple(sorted(set(out)))


@lru_cache(maxsize=4)
def load_vocabulary(groups_file: Path = GROUPS_FILE) -> Vocabulary:
    lemmas = imagenet_lemmas()
    names = tuple(RENAME.get(c, display_name(list(ls))) for c, ls in enumerate(lemmas))
    texts: dict[str, tuple[set[int], str]] = {}

    def add(text: str, classes, kind: str) -> None:
        key = normalise(text)
        if not key:
            return
        if kind == "group" or key not in texts:                     # a group word replaces a lemma: 'plane' is
            texts[key] = (set(classes), kind)                       # the aircraft, not the carpenter's tool
        else:                                                       # 'crane' twice: one entry, both classes
            texts[key][0].update(classes)

    for c, ls in enumerate(lemmas):
        for text in {*ls, names[c]}:
            add(text, (c,), "label")
    spec = json.loads(Path(groups_file).read_text())
    for word, items in spec["groups"].items():
        add(word, parse_classes(items, lemmas), "group")
    for word in spec.get("unknown", []):
        key = normalise(word)
        if key in texts:
            raise ValueError(f"{word!r} is listed as unknown but names ImageNet classes")
        texts[key] = (set(), "unknown")
    entries = tuple(Entry(t, tuple(sorted(cs)), kind) for t, (cs, kind) in texts.items())
    return Vocabulary(names, lemmas, entries, {e.text: i for i, e in enumerate(entries)})


# --- phrases a text names -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Span:
    start: int                          # first word (index into `words(text)`)
    end: int                            # one past the last word
    entry: int                          # the vocabulary entry it names


COLOUR_WORDS = {"red", "orange", "yellow", "green", "blue", "purple", "pink", "brown", "black", "white", "grey",
                "gray"}
_MAX_WORDS = 5


def singular(word: str) -> str:
    """'cats' -> 'cat', 'buses' -> 'bus', 'puppies' -> 'puppy' (enough for lookups; MiniLM does the rest)."""
    w = word.lower()
    if len(w) > 4 and w.endswith("ies"):
        return w[:-3] + "y"
    if len(w) > 4 and w.endswith(("ses", "xes", "ches", "shes")):
        return w[:-2]
    if len(w) > 3 and w.endswith("s") and not w.endswith(("ss", "us")):
        return w[:-1]
    return w


def named_spans(vocab: Vocabulary, text: str) -> list[Span]:
    """The label and group phrases a text names, longest first, left to right, not overlapping.

    Colour words are never read as classes ('mostly orange' is a colour, not the fruit); a phrase matches as
    written or with its last word made singular ('two cats' -> 'cat')."""
    toks = words(text)
    low = [t.lower() for t in toks]
    spans: list[Span] = []
    i = 0
    while i < len(toks):
        hit = None
        for n in range(min(_MAX_WORDS, len(toks) - i), 0, -1):
            piece = low[i:i + n]
            if not all(p[0].isalnum() for p in piece) or (n == 1 and piece[0] in COLOUR_WORDS):
                continue
            for cand in (" ".join(piece), " ".join(piece[:-1] + [singular(piece[-1])])):
                k = vocab.index.get(cand)
                if k is not None and vocab.entries[k].kind != "unknown":
                    hit = Span(i, i + n, k)
                    break
            if hit:
                break
        if hit:
            spans.append(hit)
            i = hit.end
        else:
            i += 1
    return spans
