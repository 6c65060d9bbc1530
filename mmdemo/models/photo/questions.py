"""The question forms photo-lite can ground, recognised by pattern: what is this; is there a X; where is the X; what
colour is the X. Anything else is `None`: the model says it can't answer rather than guess."""
from __future__ import annotations

import re
from dataclasses import dataclass

FORMS = ("what", "is-there", "where", "colour")
_SCENE = r"(?:picture|image|photo|photograph|scene|pic)"
_IN = rf"(?:\s+(?:in|on|of)\s+(?:the|this|that)\s+{_SCENE})?"
_DET = r"(?:(?:a|an|the|any|some|this|that|these|those)\s+)?"
_X = r"(?P<x>[a-z][a-z0-9' -]*?)"
_THIS = ("it", "this", "that", "these", "those", "this one", "that one", "the object", "the thing", "the main object",
         "the subject")
_PATTERNS: list[tuple[str, str]] = [
    ("what", rf"what(?: is| are)? (?:this|that|it|these|those)(?: thing| object)?{_IN}"),
    ("what", rf"what (?:is|are) (?:in|on) (?:the|this|that) {_SCENE}"),
    ("what", rf"what (?:is|are) (?:shown|pictured|there|depicted)(?: in (?:the|this|that) {_SCENE})?"),
    ("what", rf"what (?:do|can) you see(?: in (?:the|this|that) {_SCENE})?"),
    ("what", rf"what (?:does|do) (?:the|this|that) {_SCENE} (?:show|depict|contain)"),
    ("what", rf"what is (?:the|this|that) {_SCENE} (?:of|showing)"),
    ("what", rf"what is this an? {_SCENE} of"),
    ("what", rf"(?:what|which) (?:object|animal|thing|kind of (?:thing|object|animal)) is (?:this|that|it|shown)"
             rf"{_IN}"),
    ("what", rf"(?:what is|name) the (?:main )?(?:object|subject|thing)(?: in (?:the|this) {_SCENE})?"),
    ("colour", rf"what colou?rs? (?:is|are) {_DET}{_X}{_IN}"),
    ("colour", rf"what is the colou?r of {_DET}{_X}{_IN}"),
    ("colour", rf"which colou?r (?:is|are) {_DET}{_X}{_IN}"),
    ("where", rf"where (?:is|are) {_DET}{_X}{_IN}"),
    ("where", rf"where in (?:the|this) {_SCENE} (?:is|are) {_DET}{_X}"),
    ("is-there", rf"(?:is|are) there {_DET}{_X}{_IN}"),
    ("is-there", rf"(?:do|can) you see {_DET}{_X}{_IN}"),
    ("is-there", rf"(?:does|do) (?:the|this|that) {_SCENE} (?:show|contain|have|include) {_DET}{_X}"),
    ("is-there", rf"is (?:this|that|it) (?:a|an|some) {_X}"),
    ("is-there", rf"is (?:the|this|that) {_SCENE} (?:of|showing) {_DET}{_X}"),
]
_COMPILED = [(form, re.compile(p)) for form, p in _PATTERNS]
_TOO_MUCH = re.compile(r"'s\b|\b(?:of|with|and|or|on|in|at|near|next|behind|under|holding|wearing|doing|left|right|"
                       r"above|below|[0-9]+)\b")
_MAX_WORDS = 4


@dataclass(frozen=True)
class Parsed:
    text: str                           # the question, normalised (lower case, "colour", no end punctuation)
    form: str | None                    # one of FORMS, or None: a form this model cannot ground
    subject: str | None = None          # X; None for "what colour is it" (the photo's main object)
    start: int = -1                     # X's character span in `text`
    end: int = -1


def normalise(question: str) -> str:
    q = " ".join(question.lower().replace("’", "'").split())
    q = re.sub(r"\bcolor", "colour", q)
    q = re.sub(r"\b(what|where)'s\b", r"\1 is", q)
    return re.sub(r"[\s?.!]+$", "", q).strip()


def parse(question: str) -> Parsed:
    """The question's form and subject X (its character span kept, for the text side of explanations).

    A subject with a possessive, a relation or more than four words ("the cat's eyes", "the man holding a cup") is
    beyond a classifier: the form becomes None."""
    q = normalise(question)
    for form, pattern in _COMPILED:
        m = pattern.fullmatch(q)
        if not m:
            continue
        if "x" not in pattern.groupindex:
            return Parsed(q, form)
        x = m.group("x").strip()
        if x in _THIS:
            return Parsed(q, form) if form in ("where", "colour") else Parsed(q, None)
        if _TOO_MUCH.search(x) or len(x.split()) > _MAX_WORDS:
            return Parsed(q, None)
        start = m.start("x")
        return Parsed(q, form, x, start, start + len(x))
    return Parsed(q, None)
