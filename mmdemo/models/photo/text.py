"""The text side: all-MiniLM-L6-v2 (a 6-layer BERT with its WordPiece tokenizer) as a phrase encoder, and the matcher
that maps a phrase ("kitty", "space rocket") onto ImageNet classes by cosine similarity to the vocabulary.

Sentence embeddings are what sentence-transformers computes for this model: mean of the last hidden states over the
tokens, L2-normalised. `encode_vectors` starts from word vectors instead of ids, so the explanation engine can
scale the words (text-ig, modality share) through the word-embedding layer (`word_embeddings`)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .vocabulary import Vocabulary, normalise, singular

BATCH = 64                              # phrases per forward pass when embedding the vocabulary


@dataclass(frozen=True)
class MatchSettings:
    threshold: float                    # cosine similarity an entry needs to count as named
    margin: float                       # … and it must be within this of the best entry
    temperature: float                  # softness of a match's weight (see soft_weight)


@dataclass(frozen=True)
class Match:
    phrase: str
    entries: tuple[int, ...]            # vocabulary entries the phrase names (best first); () when none
    sims: tuple[float, ...]             # their cosine similarities
    unknown: str | None = None          # why nothing matched: "unknown concept" or "no close class"

    @property
    def ok(self) -> bool:
        return bool(self.entries)


def soft_weight(sims: torch.Tensor, settings: MatchSettings) -> torch.Tensor:
    """How fully a phrase names an entry, from their cosine similarity: σ((sim − threshold) / temperature), scaled
    so an exact match (sim 1) weighs exactly 1."""
    full = torch.sigmoid(torch.tensor((1 - settings.threshold) / settings.temperature))
    return (torch.sigmoid((sims - settings.threshold) / settings.temperature) / full).clamp_max(1.0)


def pick(phrase: str, sims: torch.Tensor, vocab: Vocabulary, settings: MatchSettings) -> Match:
    """The entries a phrase names, from its (E,) similarities to the vocabulary (see Matcher)."""
    best = float(sims.max())
    if best < settings.threshold:
        return Match(phrase, (), (), "no close class")
    if vocab.entries[int(sims.argmax())].kind == "unknown":
        return Match(phrase, (), (), "unknown concept")
    keep = (sims >= max(settings.threshold, best - settings.margin)).nonzero()[:, 0]
    keep = [int(k) for k in keep[sims[keep].argsort(descending=True)] if vocab.entries[k].kind != "unknown"]
    return Match(phrase, tuple(keep), tuple(float(sims[k]) for k in keep))


class TextEncoder(nn.Module):
    def __init__(self, folder: Path):
        super().__init__()
        from transformers import AutoTokenizer, BertModel
        from transformers.utils import logging as hf_logging

        self.tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
        shown = hf_logging.is_progress_bar_enabled()
        hf_logging.disable_progress_bar()                   # no "Loading weights" bar on the CLI's stderr
        try:
            self.bert = BertModel.from_pretrained(str(folder), local_files_only=True).eval().requires_grad_(False)
        finally:
            if shown:
                hf_logging.enable_progress_bar()
        self.dim = self.bert.config.hidden_size

    @property
    def word_embeddings(self) -> nn.Embedding:
        return self.bert.embeddings.word_embeddings

    @property
    def device(self) -> torch.device:
        return self.word_embeddings.weight.device

    def encode_vectors(self, vectors: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(N, L, D) word vectors ([CLS] … [SEP]) and (N, L) mask -> (N, dim) unit sentence embeddings."""
        hidden = self.bert(inputs_embeds=vectors, attention_mask=mask.long()).last_hidden_state   # (N, L, dim)
        m = mask[..., None].to(hidden.dtype)
        return F.normalize((hidden * m).sum(1) / m.sum(1).clamp_min(1), dim=-1)

    @torch.no_grad()
    def encode(self, phrases: Sequence[str]) -> torch.Tensor:
        """(N, dim) unit sentence embeddings of the phrases (batched by length, so little of it is padding)."""
        if not phrases:
            return torch.zeros(0, self.dim, device=self.device)
        ids = self.tokenizer(list(phrases), truncation=True, max_length=64)["input_ids"]
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        out = torch.empty(len(ids), self.dim, device=self.device)
        for i in range(0, len(order), BATCH):
            rows = order[i:i + BATCH]
            width = max(len(ids[r]) for r in rows)
            batch = torch.zeros(len(rows), width, dtype=torch.long)
            mask = torch.zeros(len(rows), width, dtype=torch.long)
            for j, r in enumerate(rows):
                batch[j, : len(ids[r])] = torch.tensor(ids[r])
                mask[j, : len(ids[r])] = 1
            batch, mask = batch.to(self.device), mask.to(self.device)
            out[rows] = self.encode_vectors(self.word_embeddings(batch), mask)
        return out


class Matcher:
    """Phrases -> vocabulary entries: an exact lemma or group word first, else MiniLM similarity.

    An entry is named when its similarity is at least `threshold` and within `margin` of the best entry's; when the
    best entry is an unknown concept (a person, the sky), nothing is named and the reason says so."""

    def __init__(self, encoder: TextEncoder, vocab: Vocabulary, settings: MatchSettings):
        self.encoder, self.vocab, self.settings = encoder, vocab, settings
        self.embeddings = encoder.encode([e.text for e in vocab.entries])         # (E, dim)
        member = torch.zeros(len(vocab.entries), len(vocab.names))
        for i, e in enumerate(vocab.entries):
            member[i, list(e.classes)] = 1.0
        self.member = member.to(self.embeddings.device)                            # (E, 1000)

    def exact(self, phrase: str) -> int | None:
        key = normalise(phrase)
        for cand in (key, " ".join(key.split()[:-1] + [singular(key.split()[-1])]) if key else key):
            if cand in self.vocab.index:
                return self.vocab.index[cand]
        return None

    def match(self, phrases: Sequence[str]) -> list[Match]:
        """One Match per phrase. Similarities are always MiniLM's (an exact lemma scores about 1), so they are the
        very numbers `score` recomputes from the word vectors."""
        if not phrases:
            return []
        sims = (self.encoder.encode(list(phrases)) @ self.embeddings.T).cpu()          # (N, E)
        out = []
        for p, row in zip(phrases, sims):
            k = self.exact(p)
            if k is None:
                out.append(self._pick(p, row))
            elif self.vocab.entries[k].kind == "unknown":
                out.append(Match(p, (), (), "unknown concept"))
            else:
                out.append(Match(p, (k,), (float(row[k]),)))
        return out

    def _pick(self, phrase: str, sims: torch.Tensor) -> Match:
        return pick(phrase, sims, self.vocab, self.settings)

    def class_weights(self, match: Match, sims: torch.Tensor | None = None) -> torch.Tensor:
        """(1000,) weight of each class: max over the matched entries of their soft weight (see soft_weight)."""
        if not match.ok:
            return torch.zeros(self.member.shape[1], device=self.member.device)
        sims = torch.tensor(match.sims, device=self.member.device) if sims is None else sims
        soft = soft_weight(sims, self.settings)                                                  # (K,)
        return (soft[:, None] * self.member[list(match.entries)]).amax(0)
