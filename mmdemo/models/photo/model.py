"""photo-lite behind the protocol: an ImageNet classifier and a phrase encoder joined at the decision (late fusion).

The image goes through EfficientNet-Lite0 to 1000 class probabilities and a 7×7 feature map; the text goes through
MiniLM to decide which classes a phrase names. They meet only in one number, P = Σ_c w_c p_c: the probability of
the classes the text names (w from the text, p from the image). Everything the model says is read off p, P and
P's Grad-CAM map (where, what colour); a question it cannot ground gets a plain can't-answer reply.

The explanation surface: `score` is log P for the classes a target rests on (a caption's labels, the label an
answer gives, the X of "is there a X" — as log P(yes) or log P(no)), differentiable w.r.t. the pixels, the
feature-map tokens (`image_embedding`, which is also the Grad-CAM layer) and MiniLM's word vectors
(`text_embedding`). There is no attention between image and text, so `attention` raises.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from PIL import Image

from ...errors import InputError, WeightsMissingError
from ..base import Answer, Caption, Decoding, ExplainInputs, ModelInfo, Target, VLModel
from . import _sources
from .questions import Parsed, parse
from .regions import COLOURS, POSITIONS, colour_shares, place, position_shares, region, top
from .text import Match, Matcher, MatchSettings, TextEncoder, soft_weight
from ..efficientnet import build_classifier
from .vision import GRID, INPUT, FeatureTap, gradcam, thumbnails, to_pixels
from .vocabulary import CARD_DIR, WORD, Vocabulary, load_vocabulary, named_spans, words
from .wording import Hedges, caption_text, caption_tokens

CONFIG_FILE = CARD_DIR / "config.json"
KNOWS = ("An ImageNet-1k classifier (EfficientNet-Lite0) with a MiniLM phrase matcher: it names the 1000 ImageNet "
         "object classes (animals, vehicles, tools, food …), says where the named object's evidence is and its main "
         "colour, and answers only 'what is this', 'is there a X', 'where is the X' and 'what colour is the X'. It has "
         "no class for people, scenes or text, cannot count or relate objects, and says so instead of guessing.")
CANT = "I can't answer that with this model"
CANT_PROB = 0.01                        # the can't-answer reply is not a finding about the image
NOT_SEEN = "I don't see it here"
MAX_QUESTION_CHARS = 500
THUMB = 64                              # pixels per side when reading colours under a map
EPS = 1e-9
TOP_CELLS = 3                           # presence: mean over the cells of the 7×7 map most like the object
MODES = {"log_p": 0, "log_yes": 1, "log_no": 2}


@dataclass(frozen=True)
class PhotoSettings:
    match: MatchSettings
    presence: float                     # presence score at which "is there a X" is even odds
    hedges: Hedges = field(default_factory=Hedges)

    @classmethod
    def read(cls, path: Path = CONFIG_FILE) -> "PhotoSettings":
        raw = json.loads(Path(path).read_text())
        return cls(MatchSettings(**raw["match"]), float(raw["presence"]), Hedges(**raw.get("hedges", {})))


def presence_logit(P: torch.Tensor, presence: float) -> torch.Tensor:
    """logit P(yes) from a presence score P in [0, 1] (see PhotoModel.presence): P's odds divided by the odds of
    `presence`, the score at which "is there a X" is even odds (chosen on the validation questions)."""
    P = P.clamp(EPS, 1 - EPS)
    return torch.log(P) - torch.log1p(-P) - float(np.log(presence / (1 - presence)))


@dataclass
class _Plan:
    """What one explanation target rests on: the text sequence and the phrases in it that name classes."""
    tokens: list[str]                   # MiniLM tokens of the sequence, [CLS] … [SEP]
    ids: list[int]
    mentions: list[tuple[list[int], tuple[int, ...]]]     # (token positions, vocabulary entries) per phrase
    fixed: tuple[int, ...] = ()         # classes named without words (the main object of "where is it")
    mode: str = "log_p"


class PhotoModel(VLModel):
    honours = ()                        # a caption is read off the classifier: no decoding setting changes it
    has_attention = False               # no image-text attention to show (see `attention`)

    def __init__(self, classifier: torch.nn.Module, text: TextEncoder, *, name: str = "photo-lite",
                 settings: PhotoSettings | None = None, vocabulary: Vocabulary | None = None,
                 device: str | torch.device = "cpu", weights: str = "", revision: str = ""):
        self.device = torch.device(device)
        self.net = classifier.to(self.device).eval().requires_grad_(False)
        self.text = text.to(self.device).eval()
        self.tap = FeatureTap()
        self.settings = settings or PhotoSettings.read()
        self.vocab = vocabulary or load_vocabulary()
        self.matcher = Matcher(self.text, self.vocab, self.settings.match)
        self.fc = self.net.get_classifier().weight                                  # (1000, C)
        self.info = ModelInfo(name=name, tasks=("caption", "vqa"), fusion="late", input_size=(INPUT, INPUT),
                              patch_grid=(GRID, GRID), device=str(self.device), dtype="float32", weights=weights,
                              revision=revision, knows=KNOWS)

    def __repr__(self) -> str:
        return f"PhotoModel({self.info.name!r}, device={self.info.device})"

    # --- the two networks --------------------------------------------------------------------------------------
    def pixels(self, images: Sequence[Image.Image]) -> torch.Tensor:
        """(B, 3, 224, 224) normalised pixels on the model's device."""
        return to_pixels(images).to(self.device)

    def forward(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """pixels (B, 3, H, W) -> feature map (B, C, h, w) as seen through the tap, and logits (B, 1000)."""
        fmap = self.net.forward_features(pixels)                                    # (B, C, h, w)
        B, C, h, w = fmap.shape
        tokens = self.tap(fmap.flatten(2).transpose(1, 2))                          # (B, h*w, C)
        logits = self.net.get_classifier()(tokens.mean(1))                          # (B, 1000)
        return tokens.transpose(1, 2).reshape(B, C, h, w), logits

    def presence(self, features: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """(B,) how strongly the classes `weights` (B, 1000) are somewhere in the image: the classifier's head applied
        to each cell of the map it otherwise averages, P_cell = Σ w softmax(head(cell)), mean of the TOP_CELLS best.

        The image-level softmax names one main object; a cup beside a cat, or a helmet in a corner, is found here."""
        cells = self.net.get_classifier()(features.flatten(2).transpose(1, 2)).float().softmax(-1)   # (B, h*w, 1000)
        per_cell = (cells * weights[:, None]).sum(-1)                                                # (B, h*w)
        return per_cell.topk(min(TOP_CELLS, per_cell.shape[1]), dim=1).values.mean(1)

    def cam(self, features: torch.Tensor, probs: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """(B, h, w) Grad-CAM map of log Σ w p (closed form; see vision.gradcam)."""
        return gradcam(features, probs, weights, self.fc)

    # --- captions -----------------------------------------------------------------------------------------------
    @torch.inference_mode()
    def caption(self, images: Sequence[Image.Image], decoding: Decoding | None = None) -> list[Caption]:
        """One hedged sentence per image from its top labels; no decoding setting applies (`honours` is empty)."""
        features, logits = self.forward(self.pixels(images))
        probs = logits.float().softmax(-1)                                          # (B, 1000)
        best = probs.topk(2, dim=-1)
        onehot = torch.zeros_like(probs).scatter_(1, best.indices[:, :1], 1.0)
        weights = region(self.cam(features, probs, onehot), THUMB)                   # (B, S, S)
        places = position_shares(weights).cpu().numpy()
        colours = colour_shares(thumbnails(images, THUMB), weights)
        out = []
        for b in range(len(images)):
            labels = [(self.vocab.names[int(c)], float(p)) for p, c in zip(best.values[b], best.indices[b])]
            tokens = caption_tokens(labels, place(places[b]), top(colours[b], COLOURS, 1)[0],
                                    self.settings.hedges)
            out.append(Caption(caption_text(tokens), tokens))
        return out

    # --- answers ------------------------------------------------------------------------------------------------
    @torch.inference_mode()
    def answer(self, images: Sequence[Image.Image], questions: Sequence[str], top_k: int = 5) -> list[Answer]:
        if len(images) != len(questions):
            raise InputError(f"{len(images)} images but {len(questions)} questions")
        parsed = [parse(_check_question(q)) for q in questions]
        subjects = [p.subject for p in parsed if p.form and p.subject]
        matches = iter(self.matcher.match(subjects))
        match_of = [next(matches) if p.form and p.subject else None for p in parsed]
        features, logits = self.forward(self.pixels(images))
        probs = logits.float().softmax(-1)
        k = max(1, int(top_k))
        out: list[Answer] = []
        for b, (p, m) in enumerate(zip(parsed, match_of)):
            if p.form is None:
                out.append(_cant())
            elif m is not None and not m.ok:
                out.append(_cant(_why(m)))
            elif p.form == "what":
                out.append(self._what(probs[b], k))
            else:
                out.append(self._grounded(p, m, images[b], features[b:b + 1], probs[b:b + 1], k))
        return out

    def _what(self, probs: torch.Tensor, k: int) -> Answer:
        best = probs.topk(k)
        ranked = [(self.vocab.names[int(c)], float(p)) for p, c in zip(best.values, best.indices)]
        return Answer(ranked[0][0], ranked[0][1], ranked)

    def _grounded(self, p: Parsed, m: Match | None, image: Image.Image, features: torch.Tensor,
                  probs: torch.Tensor, k: int) -> Answer:
        """is-there, where, colour: P of the classes X names (the main class when X is 'it'), then its map."""
        if m is None:                                                   # "where is it": the top class, seen
            weights = torch.zeros_like(probs).scatter_(1, probs.argmax(1, keepdim=True), 1.0)
            yes = 1.0
        else:
            weights = self.matcher.class_weights(m)[None]                         # (1, 1000)
            yes = float(torch.sigmoid(presence_logit(self.presence(features, weights), self.settings.presence)))
        if p.form == "is-there":
            ranked = sorted([("yes", yes), ("no", 1 - yes)], key=lambda a: -a[1])
            return Answer(ranked[0][0], ranked[0][1], ranked[:k])
        area = region(self.cam(features, probs, weights), THUMB)                    # (1, S, S)
        if p.form == "where":
            shares, labels = position_shares(area)[0].cpu().numpy(), POSITIONS
        else:
            shares, labels = colour_shares(thumbnails([image], THUMB), area)[0], COLOURS
        ranked = [(a, yes * s) for a, s in top(shares, labels, len(labels))]
        if m is not None:
            ranked.append((NOT_SEEN, 1 - yes))
        ranked.sort(key=lambda a: -a[1])
        return Answer(ranked[0][0], ranked[0][1], ranked[:k])

    # --- explanation surface -------------------------------------------------------------------------------------
    def prepare(self, images: Sequence[Image.Image], targets: Sequence[Target]) -> ExplainInputs:
        if len(images) != len(targets):
            raise InputError(f"{len(images)} images but {len(targets)} targets")
        pixels = self.pixels(images)
        plans = [self._plan(t, pixels[b:b + 1]) for b, t in enumerate(targets)]
        B, S = len(plans), max(len(p.ids) for p in plans)
        M = max(len(p.mentions) for p in plans)
        L = max((len(pos) for p in plans for pos, _ in p.mentions), default=1)
        K = max((len(e) for p in plans for _, e in p.mentions), default=1)
        ids = torch.zeros(B, S, dtype=torch.long)
        where = torch.zeros(B, M, L, dtype=torch.long)                    # token positions of each phrase
        mask = torch.zeros(B, M, L, dtype=torch.bool)
        mask[..., 0] = True                                               # padding phrases keep their [CLS]
        entries = torch.full((B, M, K), -1, dtype=torch.long)
        fixed = torch.zeros(B, len(self.vocab.names))
        for b, plan in enumerate(plans):
            ids[b, : len(plan.ids)] = torch.tensor(plan.ids)
            for j, (pos, ents) in enumerate(plan.mentions):
                where[b, j, : len(pos)] = torch.tensor(pos)
                mask[b, j, : len(pos)] = True
                entries[b, j, : len(ents)] = torch.tensor(ents)
            fixed[b, list(plan.fixed)] = 1.0
        mode = torch.tensor([MODES[p.mode] for p in plans])
        extra = {"ids": ids, "phrase_positions": where, "phrase_mask": mask, "entries": entries, "fixed": fixed,
                 "mode": mode}
        return ExplainInputs(pixels, list(targets), [p.tokens for p in plans],
                             {k: v.to(self.device) for k, v in extra.items()})

    def _plan(self, target: Target, pixels: torch.Tensor) -> _Plan:
        if target.kind == "answer":
            return self._answer_plan(target, pixels)
        text = (target.text or "").strip()
        if not text:
            raise InputError("the caption is empty")
        spans, tokens, ids, positions = self._spans(text)
        if not spans:
            raise InputError(f"the caption {text!r} names no ImageNet class, so photo-lite has nothing to explain")
        if target.kind == "token":
            n = len(words(text))
            if not 0 <= target.token < n:
                raise InputError(f"token {target.token} is out of range; the caption has {n} tokens")
            inside = [s for s in spans if s[0] <= target.token < s[1]]
            spans = inside or spans[:1]                                   # other words rest on the main label
        mentions = [(positions(a, b), (e,)) for a, b, e in spans]
        return _Plan(tokens, ids, mentions)

    def _spans(self, text: str):
        """The label phrases a caption names: (first word, end word, entry) and a word-span -> token-positions map."""
        spans = named_spans(self.vocab, text)
        enc = self.text.tokenizer(text, return_offsets_mapping=True, truncation=True, max_length=128)
        found = list(WORD.finditer(text))
        starts, ends = [m.start() for m in found], [m.end() for m in found]
        offsets = enc["offset_mapping"]
        sep = enc["input_ids"].index(self.text.tokenizer.sep_token_id)

        def positions(a: int, b: int) -> list[int]:
            inside = [i for i, (s, e) in enumerate(offsets) if e > s and s >= starts[a] and e <= ends[b - 1]]
            return [0, *inside, sep]

        return [(s.start, s.end, s.entry) for s in spans], list(enc.tokens()), list(enc["input_ids"]), positions

    def _answer_plan(self, target: Target, pixels: torch.Tensor) -> _Plan:
        p = parse(_check_question(target.question or ""))
        if p.form is None:
            raise InputError(f"photo-lite can't answer {target.question!r}, so there is no answer to explain")
        tok = self.text.tokenizer
        if p.form == "what":                       # the answer names the class: question [SEP] answer [SEP]
            entry = self.matcher.exact(target.text)
            if entry is None or not self.vocab.entries[entry].classes:
                raise InputError(f"{target.text!r} is not an ImageNet class name photo-lite knows")
            enc = tok(p.text, target.text, return_offsets_mapping=True)
            seq = enc.sequence_ids()
            answer = [i for i, s in enumerate(seq) if s == 1 and enc["input_ids"][i] != tok.sep_token_id]
            sep = enc["input_ids"].index(tok.sep_token_id)
            return _Plan(list(enc.tokens()), list(enc["input_ids"]), [([0, *answer, sep], (entry,))])
        enc = tok(p.text, return_offsets_mapping=True)
        tokens, ids = list(enc.tokens()), list(enc["input_ids"])
        answer = target.text.strip()
        if p.form == "is-there":
            if answer not in ("yes", "no"):
                raise InputError(f"{answer!r} is not an answer to {target.question!r}; it takes yes or no")
            mode = "log_yes" if answer == "yes" else "log_no"
        else:
            known = POSITIONS if p.form == "where" else COLOURS
            if answer not in (*known, NOT_SEEN):
                raise InputError(f"{answer!r} is not an answer to {target.question!r}; it takes one of "
                                 f"{', '.join(known)} or {NOT_SEEN!r}")
            mode = "log_no" if answer == NOT_SEEN else "log_yes"
        if p.subject is None:                      # "where is it": the main object, no words involved
            with torch.no_grad():
                main = int(self.forward(pixels)[1].argmax(-1))
            return _Plan(tokens, ids, [], fixed=(main,), mode="log_p")
        m = self.matcher.match([p.subject])[0]
        if not m.ok:
            raise InputError(f"{_why(m)}; there is no answer to explain")
        sep = ids.index(tok.sep_token_id)
        inside = [i for i, (s, e) in enumerate(enc["offset_mapping"]) if e > s and s >= p.start and e <= p.end]
        return _Plan(tokens, ids, [([0, *inside, sep], m.entries)], mode=mode)

    def score(self, inputs: ExplainInputs, *, pixels: torch.Tensor | None = None) -> torch.Tensor:
        """(n,) per row: log P of its classes in the image's softmax (captions, "what is this"), or log P(yes) /
        log P(no) of their presence ("is there a X", and the X that "where" and "what colour" answers rest on).
        n may be k·B: rows step-major, as Captum lays out expanded batches (row j·B + b is item b)."""
        pixels = inputs.pixels if pixels is None else pixels
        extra = inputs.tiled(pixels.shape[0]).extra
        features, logits = self.forward(pixels)
        probs = logits.float().softmax(-1)                                          # (n, 1000)
        weights = self.class_weights(extra)                                         # (n, 1000)
        P = (weights * probs).sum(-1)                                               # (n,)
        mode = extra["mode"]
        yes = presence_logit(self.presence(features, weights), self.settings.presence)  # (n,)
        return torch.where(mode == MODES["log_p"], torch.log(P + EPS),
                           torch.where(mode == MODES["log_yes"], torch.nn.functional.logsigmoid(yes),
                                       torch.nn.functional.logsigmoid(-yes)))

    def class_weights(self, extra: dict[str, torch.Tensor]) -> torch.Tensor:
        """(n, 1000) weight of each class for each row: the fixed classes, and per phrase the soft match of its
        MiniLM embedding — computed from the word vectors, so text attributions flow through here."""
        ids, entries = extra["ids"], extra["entries"]
        vectors = self.text.word_embeddings(ids)                                    # (n, S, D)
        weights = extra["fixed"].float()
        n, M, L = extra["phrase_positions"].shape
        if M == 0:                                  # no word names a class: keep the words in the graph at 0
            return weights + 0.0 * vectors.sum((1, 2))[:, None]
        D = vectors.shape[-1]
        pos = extra["phrase_positions"].reshape(n, M * L, 1).expand(-1, -1, D)
        phrases = vectors.gather(1, pos).reshape(n * M, L, D)                       # (n·M, L, D)
        emb = self.text.encode_vectors(phrases, extra["phrase_mask"].reshape(n * M, L)).reshape(n, M, 1, -1)
        valid = entries >= 0
        safe = entries.clamp_min(0)
        sims = (emb * self.matcher.embeddings[safe]).sum(-1)                        # (n, M, K)
        soft = soft_weight(sims, self.settings.match) * valid
        named = (soft[..., None] * self.matcher.member[safe]).amax((1, 2))          # (n, 1000)
        return torch.maximum(weights, named)

    def attention(self, inputs: ExplainInputs) -> torch.Tensor:
        raise InputError("photo-lite has no attention between image and text (late fusion of a CNN and a phrase "
                         "encoder); use gradcam, ig, occlusion or saliency")

    @property
    def image_embedding(self) -> torch.nn.Module:
        """The last conv stage's map as (B, 49, 1280) tokens (FeatureTap)."""
        return self.tap

    @property
    def vision_layer(self) -> torch.nn.Module:
        """Grad-CAM's layer (read by mmdemo.explain): the same tap, the last conv stage."""
        return self.tap

    @property
    def text_embedding(self) -> torch.nn.Module:
        """MiniLM's word embeddings: (B, T) ids -> (B, T, 384)."""
        return self.text.word_embeddings


# --- helpers ------------------------------------------------------------------------------------------------------
def _check_question(q: Any) -> str:
    q = q.strip() if isinstance(q, str) else ""
    if not q:
        raise InputError("the question is empty")
    if len(q) > MAX_QUESTION_CHARS:
        raise InputError(f"the question is {len(q)} characters long; the limit is {MAX_QUESTION_CHARS}")
    return q


def _cant(reason: str | None = None) -> Answer:
    text = f"{CANT}: {reason}" if reason else CANT
    return Answer(text, CANT_PROB, [(text, CANT_PROB)])


def _why(m: Match) -> str:
    if m.unknown == "unknown concept":
        return f"ImageNet has no class for {m.phrase!r}"
    return f"{m.phrase!r} is not among the 1000 ImageNet classes it knows"


def load(name: str = "photo-lite", device: str | None = None) -> PhotoModel:
    """Build photo-lite from the two installed packages (no download)."""
    from ..devices import choose_device

    vision, text = _sources.vision_weights(), _sources.text_folder()
    if vision is None or text is None:
        raise WeightsMissingError(_sources.missing_message())
    return PhotoModel(build_classifier(vision), TextEncoder(text), name=name, device=choose_device(device, gpu=False),
                      weights=_sources.describe(), revision=_sources.revision())
