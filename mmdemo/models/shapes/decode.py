"""Caption decoding for the shapes networks: greedy, beam search and nucleus sampling, batched.

Each returns, per item, the generated ids (no [CLS]/[SEP]), the probability of each, and the model's TOP most
probable tokens at each step, best first, as (id, probability) pairs: the runner-ups a word was chosen over."""
from __future__ import annotations

import torch

from .tokenizer import CLS, PAD, SEP

TOP = 5                          # runner-up tokens recorded per step
Tops = list[list[list[tuple[int, float]]]]       # per item, per token: [(id, prob)] best first


def _step_logprobs(net, image: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """(B, P, D), (B, T) -> (B, vocab) log-probs of the next token."""
    return net.caption_logits(image, ids)[:, -1].log_softmax(-1)


def greedy(net, image: torch.Tensor, max_tokens: int) -> tuple[list[list[int]], list[list[float]], Tops]:
    """Batched greedy decoding."""
    return sample(net, image, max_tokens, top_p=0.0)


def _top(logp: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, V) log-probs -> (B, TOP) probabilities and ids, best first."""
    top = logp.topk(min(TOP, logp.shape[-1]), dim=-1)
    return top.values.exp(), top.indices


def sample(net, image: torch.Tensor, max_tokens: int, *, top_p: float = 0.9, temperature: float = 1.0,
           generator: torch.Generator | None = None) -> tuple[list[list[int]], list[list[float]], Tops]:
    """Nucleus sampling (top_p <= 0: greedy). The reported probability is the model's, before temperature."""
    B = image.shape[0]
    ids = torch.full((B, 1), CLS, dtype=torch.long, device=image.device)
    done = torch.zeros(B, dtype=torch.bool, device=image.device)
    probs = torch.zeros(B, 0, device=image.device)
    top_p_, top_i = [], []
    for _ in range(max_tokens):
        logp = _step_logprobs(net, image, ids)                                     # (B, V)
        logp[:, [PAD, CLS]] = float("-inf")
        tp, ti = _top(logp)
        top_p_.append(tp)
        top_i.append(ti)
        if top_p <= 0:
            nxt = logp.argmax(-1)
        else:
            p = (logp / max(temperature, 1e-5)).softmax(-1)
            sorted_p, order = p.sort(-1, descending=True)
            keep = sorted_p.cumsum(-1) - sorted_p < top_p                          # smallest set reaching top_p
            sorted_p = sorted_p * keep
            choice = torch.multinomial(sorted_p / sorted_p.sum(-1, keepdim=True), 1, generator=generator)
            nxt = order.gather(-1, choice).squeeze(-1)
        nxt = torch.where(done, torch.full_like(nxt, PAD), nxt)
        probs = torch.cat([probs, logp.gather(-1, nxt[:, None]).exp()], dim=1)
        ids = torch.cat([ids, nxt[:, None]], dim=1)
        done |= nxt == SEP
        if done.all():
            break
    tops = [[list(zip(i, p)) for i, p in zip(torch.stack(top_i, 1)[b].tolist(), torch.stack(top_p_, 1)[b].tolist())]
            for b in range(B)]
    return _strip(ids[:, 1:], probs, tops)


def beam(net, image: torch.Tensor, max_tokens: int, num_beams: int = 3,
         length_penalty: float = 1.0) -> tuple[list[list[int]], list[list[float]], Tops]:
    """Beam search, one image at a time over its beams; picks the best finished hypothesis by mean log-prob."""
    all_ids, all_probs, all_tops = [], [], []
    for b in range(image.shape[0]):
        img = image[b:b + 1]
        beams = [([CLS], [], 0.0, [])]                                            # (ids, probs, sum logp, tops)
        finished = []
        for _ in range(max_tokens):
            ids = torch.tensor([bm[0] for bm in beams], device=image.device)
            logp = _step_logprobs(net, img.expand(len(beams), -1, -1), ids)
            logp[:, [PAD, CLS]] = float("-inf")
            step_p, step_i = _top(logp)
            step_tops = [list(zip(i, p)) for i, p in zip(step_i.tolist(), step_p.tolist())]
            top = logp.topk(num_beams, dim=-1)
            cands = [(s + v.item(), i, t.item(), v.item()) for i, (s_, (vals, toks)) in
                     enumerate(zip([bm[2] for bm in beams], zip(top.values, top.indices)))
                     for v, t in zip(vals, toks) for s in [s_]]
            cands.sort(key=lambda c: -c[0])
            beams_next = []
            for score, i, tok, lp in cands:
                ids_i, probs_i, _, tops_i = beams[i]
                hyp = (ids_i + [tok], probs_i + [float(torch.tensor(lp).exp())], score, tops_i + [step_tops[i]])
                if tok == SEP:
                    finished.append(hyp)
                else:
                    beams_next.append(hyp)
                if len(beams_next) == num_beams:
                    break
            beams = beams_next
            if len(finished) >= num_beams or not beams:
                break
        pool = finished or beams
        best = max(pool, key=lambda h: h[2] / max(1, len(h[1])) ** length_penalty)
        ids, probs, tops = _strip(torch.tensor([best[0][1:]]), torch.tensor([best[1]]), [best[3]])
        all_ids += ids
        all_probs += probs
        all_tops += tops
    return all_ids, all_probs, all_tops


def _strip(ids: torch.Tensor, probs: torch.Tensor, tops: Tops) -> tuple[list[list[int]], list[list[float]], Tops]:
    out_ids, out_probs, out_tops = [], [], []
    for row, prow, trow in zip(ids.tolist(), probs.tolist(), tops):
        n = next((k for k, t in enumerate(row) if t in (SEP, PAD)), len(row))
        out_ids.append(row[:n])
        out_probs.append(prow[:n])
        out_tops.append(trow[:n])
    return out_ids, out_probs, out_tops
