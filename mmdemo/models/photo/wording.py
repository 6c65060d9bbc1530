"""Caption wording: what the classifier says, hedged by how sure it is, never more.

    p1 ≥ sure                 "a photo of an Egyptian cat, in the center, mostly brown"
    likely ≤ p1 < sure        "probably a drilling platform or a missile, in the center, mostly blue"
    unsure ≤ p1 < likely      "perhaps a bobsled or a football helmet, on the left, mostly orange"
    p1 < unsure               "I am not sure what this is: perhaps a bubble or a nematode, …"

The second label joins when the first is not sure and the second has at least `alternative` (or half the
first's). Each token carries a
probability: label words and their article the class's, hedge words the first class's, "or" the second's, place
words the share of the map in that place, "mostly" and the colour the colour's share, punctuation 1."""
from __future__ import annotations

from dataclasses import dataclass

from .regions import POSITION_PHRASE
from .vocabulary import article, join, words


@dataclass(frozen=True)
class Hedges:
    sure: float = 0.6                   # top-1 probability for a plain "a photo of"
    likely: float = 0.3                 # … for "probably"
    unsure: float = 0.1                 # below this: "I am not sure what this is"
    alternative: float = 0.1            # a second label is named when it has at least this (and p1 < sure)


def caption_tokens(labels: list[tuple[str, float]], place: tuple[str, float], colour: tuple[str, float],
                   hedges: Hedges = Hedges()) -> list[tuple[str, float]]:
    """labels: [(name, prob)] best first (at least one); place: (position or "across", share); colour: (name,
    share)."""
    (name1, p1), rest = labels[0], labels[1:]
    out: list[tuple[str, float]] = []

    def say(text: str, p: float) -> None:
        out.extend((w, float(p)) for w in words(text))

    if p1 >= hedges.sure:
        say("a photo of", p1)
    elif p1 >= hedges.likely:
        say("probably", p1)
    elif p1 >= hedges.unsure:
        say("perhaps", p1)
    else:
        say("I am not sure what this is", 1 - p1)
        out.append((":", 1.0))
        say("perhaps", p1)
    say(article(name1), p1)
    if p1 < hedges.sure and rest and rest[0][1] >= min(hedges.alternative, p1 / 2):
        name2, p2 = rest[0]
        say("or", p2)
        say(article(name2), p2)
    out.append((",", 1.0))
    say(POSITION_PHRASE[place[0]], place[1])
    out.append((",", 1.0))
    say("mostly", colour[1])
    say(colour[0], colour[1])
    return [(t, min(1.0, max(p, 1e-6))) for t, p in out]


def caption_text(tokens: list[tuple[str, float]]) -> str:
    return join([t for t, _ in tokens])
