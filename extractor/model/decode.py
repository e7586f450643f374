"""BIO-consistent span scores and k-best candidate values for one field.

For a field ``f`` and per-word tag log-probabilities ``lp[w, label]`` (the fused model), a span
``(s, e)`` of at most ``max_len`` words scores

    log p(B-f at s) + sum_{t=s+1..e} log p(I-f at t) + log(1 - p(I-f at e+1))

(the last term is 0 at the end of the page): the field starts at ``s``, continues to ``e`` and
stops there. The extra outcome "absent" scores ``sum_w log(1 - p(B-f at w))`` (no word starts the
field). Spans and "absent" are normalised together by one log-softmax, which gives the
categorical that the decoder ranks and that the policy API (``KVEnsemble.log_prob``/``sample``)
differentiates and samples: both call :func:`span_log_probs`, so they always agree.

Values come from :func:`span_value` (the same function that turns gold alignments into labels),
and spans whose values share a lenient key (SROIE: whitespace removed, case folded) are merged
by adding their probabilities. A typed field only offers values of its type (a date must parse
as a date, an amount as a number: ``extractor.normalize.validate_value``): ``RM`` alone or
``04`` are never shown as candidates. Their mass stays in the span categorical, so a
candidate's score is the probability of its own spans, not renormalised over valid values.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from extractor.align import span_value
from extractor.document import Candidate, FieldSpec, Schema, Word
from extractor.normalize import lenient_key, validate_value

ValueFn = Callable[[Sequence[Word], Sequence[int], FieldSpec], str]
"""What a span of words denotes as a field value (default :func:`span_value`)."""

DEFAULT_MAX_SPAN = 48  # words; multi-line SROIE addresses reach ~30


def log1m_exp(lp: torch.Tensor) -> torch.Tensor:
    """``log(1 - exp(lp))`` for log-probabilities, stable near 0 and differentiable."""
    lp = lp.clamp(max=-1e-7)
    return torch.where(lp > -math.log(2), torch.log(-torch.expm1(lp)), torch.log1p(-lp.exp()))


def field_label_ids(schema: Schema, field: str) -> tuple[int, int]:
    """Label ids of ``B-<FIELD>`` and ``I-<FIELD>``."""
    l2i = schema.label2id
    return l2i[f"B-{field.upper()}"], l2i[f"I-{field.upper()}"]


def span_log_probs(word_lp: torch.Tensor, b_id: int, i_id: int,
                   max_len: int = DEFAULT_MAX_SPAN) -> tuple[torch.Tensor, torch.Tensor]:
    """Normalised log-probs of every span and of "absent" for one field.

    ``word_lp``: [n, L] per-word tag log-probs. Returns ``span_lp`` [n, M] (``M = min(max_len,
    n)``; entry ``[s, d]`` is the span ``s..s+d``, ``-inf`` past the end) and ``absent_lp`` [].
    """
    n = word_lp.shape[0]
    if n == 0:
        return word_lp.new_zeros((0, 0)), word_lp.new_zeros(())
    lp_b, lp_i = word_lp[:, b_id], word_lp[:, i_id]
    m = min(max_len, n)
    c_i = torch.cat([lp_i.new_zeros(1), lp_i.cumsum(0)])  # c_i[j] = sum lp_i[:j]
    stop = torch.cat([log1m_exp(lp_i[1:]), lp_i.new_zeros(1)])  # stop[e]: no I at e+1
    s = torch.arange(n, device=word_lp.device).unsqueeze(1)  # [n, 1]
    e = s + torch.arange(m, device=word_lp.device).unsqueeze(0)  # [n, M]
    valid = e < n
    e = e.clamp(max=n - 1)
    score = lp_b[s] + (c_i[e + 1] - c_i[s + 1]) + stop[e]
    score = score.masked_fill(~valid, float("-inf"))
    absent = log1m_exp(lp_b).sum()
    log_z = torch.logsumexp(torch.cat([score.flatten(), absent.view(1)]), 0)
    return score - log_z, absent - log_z


def span_index_log_prob(span_lp: torch.Tensor, absent_lp: torch.Tensor, word_lp: torch.Tensor,
                        b_id: int, i_id: int, indices: Sequence[int]) -> torch.Tensor:
    """Log-prob of one outcome: ``indices`` a contiguous word span, or empty for "absent".

    Spans longer than the enumerated maximum are scored with the same formula and the same
    normaliser (they lie outside the sampled support, so their mass is not in it).
    """
    if not indices:
        return absent_lp
    s, e = int(indices[0]), int(indices[-1])
    if list(indices) != list(range(s, e + 1)) or s < 0 or e >= word_lp.shape[0]:
        raise ValueError(f"word_indices must be a contiguous in-range span, got {list(indices)}")
    if e - s < span_lp.shape[1]:
        return span_lp[s, e - s]
    # Recover log Z from any finite entry: score(s,e) - span_lp = log Z.
    raw0 = word_lp[0, b_id] + (log1m_exp(word_lp[1, i_id]) if word_lp.shape[0] > 1 else 0.0)
    log_z = raw0 - span_lp[0, 0]
    raw = word_lp[s, b_id] + word_lp[s + 1:e + 1, i_id].sum()
    if e + 1 < word_lp.shape[0]:
        raw = raw + log1m_exp(word_lp[e + 1, i_id])
    return raw - log_z


def outcome_log_probs(span_lp: torch.Tensor, absent_lp: torch.Tensor, word_lp: torch.Tensor,
                      b_id: int, i_id: int, outcomes: Sequence[Sequence[int]]) -> torch.Tensor:
    """Log-probs [K] of K outcomes (word-index spans, ``[]`` = absent), gathered with one
    index; spans longer than the enumerated maximum go through :func:`span_index_log_prob`.
    """
    n, m = span_lp.shape
    flat = torch.cat([span_lp.flatten(), absent_lp.view(1)])  # [n*M + 1], absent last
    idx: list[int] = []
    long: dict[int, torch.Tensor] = {}
    for k, o in enumerate(outcomes):
        if not o:
            idx.append(n * m)
            continue
        s, e = int(o[0]), int(o[-1])
        if list(o) != list(range(s, e + 1)) or s < 0 or e >= n:
            raise ValueError(f"word_indices must be a contiguous in-range span, got {list(o)}")
        if e - s < m:
            idx.append(s * m + (e - s))
        else:
            idx.append(n * m)  # placeholder, replaced below
            long[k] = span_index_log_prob(span_lp, absent_lp, word_lp, b_id, i_id, o)
    out = flat[torch.tensor(idx, dtype=torch.long, device=flat.device)]  # [K]
    if long:
        ks = torch.tensor(list(long), dtype=torch.long, device=flat.device)
        out = out.index_put((ks,), torch.stack(list(long.values())))
    return out


def sample_spans(span_lp: torch.Tensor, absent_lp: torch.Tensor, n: int,
                 generator: torch.Generator | None = None,
                 exclude: Sequence[Sequence[int]] = ()) -> list[list[int]]:
    """Draw ``n`` outcomes (word index lists; ``[]`` = absent) from the span categorical;
    with ``exclude``, from the categorical restricted to the other outcomes (renormalised;
    spans past the enumerated length are never drawn anyway). Should the excluded outcomes
    hold all the mass, the draws come from the whole categorical."""
    # Drawn on the CPU: a CPU generator then gives the same draws whatever the model's device.
    flat = torch.cat([span_lp.detach().flatten(), absent_lp.detach().view(1)]).float().cpu()
    m = max(span_lp.shape[1], 1)
    probs = flat.exp()
    if exclude:
        kept = probs.clone()
        for o in exclude:
            if not o:
                kept[-1] = 0.0
            elif len(o) <= m:
                kept[int(o[0]) * m + len(o) - 1] = 0.0
        if float(kept.sum()) > 0:
            probs = kept
    idx = torch.multinomial(probs, n, replacement=True, generator=generator)
    out: list[list[int]] = []
    for k in idx.tolist():
        if k == flat.numel() - 1:
            out.append([])
        else:
            s, d = divmod(k, m)
            out.append(list(range(s, s + d + 1)))
    return out


def top_spans(span_lp: torch.Tensor, n: int) -> list[tuple[int, int, float]]:
    """The ``n`` most probable spans as ``(start, end, log_prob)``, best first."""
    flat = span_lp.detach().flatten()
    finite = int(torch.isfinite(flat).sum())
    if finite == 0:
        return []
    vals, idx = flat.topk(min(n, finite))
    m = span_lp.shape[1]
    return [(i // m, i // m + i % m, v) for v, i in zip(vals.tolist(), idx.tolist())]


@dataclass
class FieldDecoding:
    """Merged candidates for one field (best first) and the probability of "absent"."""

    candidates: list[Candidate]
    absent_prob: float


def decode_field(words: Sequence[Word], word_lp: torch.Tensor, schema: Schema, field: str,
                 k: int = 5, max_len: int = DEFAULT_MAX_SPAN, source: str = "model",
                 value_fn: ValueFn = span_value,
                 ) -> FieldDecoding:
    """The ``k`` best distinct values of ``field`` with merged span probabilities."""
    spec = schema[field]
    b_id, i_id = field_label_ids(schema, field)
    span_lp, absent_lp = span_log_probs(word_lp.detach(), b_id, i_id, max_len)
    merged: dict[str, Candidate] = {}
    rejected: set[str] = set()  # keys already found empty or invalid (parsing is the cost)
    for s, e, lp in top_spans(span_lp, max(8 * k, 40)):
        if lp < -30:  # negligible mass; stop scanning
            break
        idx = list(range(s, e + 1))
        value = value_fn(words, idx, spec)
        key = lenient_key(value)
        if key in rejected:
            continue
        if key not in merged and (not key or validate_value(value, spec.type) is not None):
            rejected.add(key)
            continue
        if key in merged:
            c = merged[key]
            c.score += math.exp(lp)
        else:
            merged[key] = Candidate(value=value, score=math.exp(lp), word_indices=idx,
                                    source=source)
    cands = sorted(merged.values(), key=lambda c: -c.score)[:k]
    for c in cands:
        c.logprob = math.log(max(c.score, 1e-300))
    return FieldDecoding(cands, float(absent_lp.exp()))
