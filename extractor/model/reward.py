"""The reward model: how likely an operator is to keep a value, for (document, field, span).

``RewardModel`` is a LayoutLM encoder (the extractor's LayoutLM member, or the zoo's MiniLM /
tiny weights) with a small head. One encoder pass per page (its windows length-bucketed with
the other pages', as the ensemble does) gives every word's first-sub-token state; then
every candidate of every field is scored from those states at once:

* a span ``[s, e]`` of field ``f``: ``MLP([mean(h_s..h_e), h_s, h_e, E_f])``, a scalar logit
  (``E_f`` a learned field embedding);
* "absent" for field ``f``: ``w_f . pool + b_f`` against the page's pooled state (LayoutLM's
  pooler over ``[CLS]``, averaged over the page's windows).

The logit ``r`` is the Bradley-Terry reward (``P(a preferred to b) = sigmoid(r_a - r_b)``)
and, through the pointwise term the trainer adds, ``sigmoid(r)`` estimates P(value kept).

API, mirroring ``extractor.model.policy.BatchedPolicy`` (an outcome is a word-index span of
``doc.words``; ``[]`` is "absent"):

* ``score(docs, queries: Sequence[FieldOutcomes], dropout=False)`` -> one reward-logit tensor
  [K] per query, differentiable; every document the queries name goes through the encoder
  once, however many fields and outcomes it has.
* ``rerank(results, docs, k, calibrate)``: best-of-k (a predictor that reranks its own
  results: ``extractor.model.predictor.RerankingPredictor``). Each field's first ``k``
  candidates are reordered by reward (no policy update); the candidate objects are kept.
  Candidates without a placed span (values only a variant OCR pass read) cannot be scored and
  go after the scored ones, in their old order. Confidence stays the extractor's: the
  calibrated probability of the new top candidate's own score (``calibrate(doc, score)``,
  e.g. :func:`extractor.model.predictor.extractor_confidence`; without it the raw score).
  The reward logit is not used as a confidence because routing's auto-accept thresholds were fitted on the extractor's
  calibrated confidence, and the Bradley-Terry term leaves the reward's scale free. The
  results' ``model_version`` becomes ``"<extractor version>+<reward version>"``, so feedback
  on reranked results is told apart from feedback on the extractor's own ranking.
* ``save_pretrained(dir, card)`` / ``from_pretrained(dir, device)``: ``model.safetensors``,
  ``tokenizer/`` and ``reward.json`` (:class:`RewardCard`: architecture, schema, training
  record); ``reward_version(dir)`` is ``kv.reward.v1@<hash of weights and card>``.
* ``RewardModel.from_extractor(model_dir)`` / ``from_ensemble(ensemble)`` start from an
  extractor's LayoutLM member; ``build_reward_model(arch)`` from the zoo.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch
from safetensors.torch import load_file, save_file
from torch import nn
from transformers import LayoutLMConfig, LayoutLMModel

from extractor.devices import resolve_device
from extractor.document import (
    RECEIPT_SCHEMA,
    Document,
    ExtractionResult,
    FieldResult,
    Schema,
)
from extractor.model.card import (
    CARD_FILE,
    CardFile,
    TrainingRecord,
    check_safetensors,
)
from extractor.model.ensemble import KVEnsemble, expected_shapes, load_tokenizer
from extractor.model.features import Window, collate, encode_words, length_buckets, windows_for
from extractor.model.policy import FieldOutcomes, dropout_off
from extractor.model.windows import merge_per_word
from extractor.model.zoo import build_model

REWARD_FORMAT = "kvloop.reward/1"
REWARD_VERSION_PREFIX = "kv.reward.v1"
REWARD_CARD_FILE = "reward.json"
WEIGHTS_FILE = "model.safetensors"
TOKENIZER_DIR = "tokenizer"
RERANK_CHUNK = 32  # documents per encoder call in ``rerank`` (bounds the word states held)

Calibrate = Callable[[Document, float], float]


# -- the card ----------------------------------------------------------------------------------

@dataclass
class RewardCard(CardFile):
    """``reward.json``: what a saved reward-model directory says about itself."""

    schema: Schema
    arch: str = "custom"  # where the encoder started: a zoo name or the extractor's arch
    encoder: dict[str, Any] = field(default_factory=dict)  # LayoutLMConfig.to_dict()
    field_dim: int = 32
    hidden: int = 0
    max_length: int = 512
    stride: int = 128
    training: TrainingRecord | None = None
    epoch: int | None = None  # set on mid-training checkpoints
    version: str | None = None
    format: str = REWARD_FORMAT

    FILE: ClassVar[str] = REWARD_CARD_FILE
    WHAT: ClassVar[str] = "reward-model card"

    def export(self) -> dict[str, Any]:
        return {"format": self.format, "arch": self.arch, "schema": self.schema.export(),
                "encoder": self.encoder, "field_dim": self.field_dim, "hidden": self.hidden,
                "max_length": self.max_length, "stride": self.stride, **self.export_lineage()}

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str = REWARD_CARD_FILE) -> RewardCard:
        """Parse a card; ``ValueError`` naming ``where`` and the problem when it is not one."""
        if d.get("format") != REWARD_FORMAT:
            raise ValueError(f"{where}: unsupported format {d.get('format')!r} "
                             f"(expected {REWARD_FORMAT!r})")
        try:
            return cls(schema=Schema.from_dict(d["schema"]), arch=str(d.get("arch", "custom")),
                       encoder=dict(d["encoder"]), field_dim=int(d["field_dim"]),
                       hidden=int(d["hidden"]), max_length=int(d["max_length"]),
                       stride=int(d["stride"]), **cls.lineage_from_dict(d))
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"{where}: not a valid reward-model card "
                             f"({type(e).__name__}: {e})") from e

    @classmethod
    def load(cls, model_dir: str | Path) -> RewardCard:
        d = Path(model_dir)
        path = d / REWARD_CARD_FILE
        if not d.is_dir():
            raise FileNotFoundError(f"{d}: no such reward-model directory")
        if not path.is_file():
            hint = (f"; it holds {CARD_FILE}: that is an extractor, train a reward model from it "
                    f"with `kvloop train reward --init {d}`" if (d / CARD_FILE).is_file() else "")
            raise FileNotFoundError(f"{path}: not a kvloop reward-model directory "
                                    f"({REWARD_CARD_FILE} missing{hint})")
        return cls.from_dict(cls.read_json(path), str(path))

    def version_key(self) -> list[Any]:
        """What of the card enters the version hash besides the weights (how they are read)."""
        encoder = {k: v for k, v in self.encoder.items()
                   if k not in ("transformers_version", "_name_or_path")}  # not the function
        return [self.schema.export(), encoder, self.field_dim, self.hidden, self.max_length,
                self.stride]


def reward_version(model_dir: str | Path) -> str:
    """``kv.reward.v1@<hash>`` of the weights and :meth:`RewardCard.version_key`."""
    d = Path(model_dir)
    h = hashlib.sha256()
    with open(d / WEIGHTS_FILE, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    h.update(json.dumps(RewardCard.load(d).version_key(), sort_keys=True).encode())
    return f"{REWARD_VERSION_PREFIX}@{h.hexdigest()[:12]}"


# -- the model ---------------------------------------------------------------------------------

@dataclass
class PageStates:
    """Encoder states of one page: each word's first sub-token, and the pooled page."""

    words: torch.Tensor  # [n, H]
    pooled: torch.Tensor  # [H]


class RewardHead(nn.Module):
    """Span logits ``MLP([mean, first, last, E_f])`` and absent logits ``w_f . pool + b_f``."""

    def __init__(self, hidden_size: int, n_fields: int, field_dim: int, hidden: int) -> None:
        super().__init__()
        self.field_emb = nn.Embedding(n_fields, field_dim)
        self.span_mlp = nn.Sequential(nn.Linear(3 * hidden_size + field_dim, hidden), nn.GELU(),
                                      nn.Linear(hidden, 1))
        self.absent_w = nn.Parameter(torch.zeros(n_fields, hidden_size))
        self.absent_b = nn.Parameter(torch.zeros(n_fields))

    def span_logits(self, states: torch.Tensor, mask: torch.Tensor, last: torch.Tensor,
                    fields: torch.Tensor) -> torch.Tensor:
        """``states`` [S, L, H] (span words, zero-padded), ``mask`` [S, L], ``last`` [S]
        (position of each span's last word), ``fields`` [S] -> logits [S]."""
        m = mask.to(states.dtype).unsqueeze(-1)  # [S, L, 1]
        mean = (states * m).sum(1) / m.sum(1)  # [S, H]
        first = states[:, 0]  # [S, H]
        end = states[torch.arange(states.shape[0], device=states.device), last]  # [S, H]
        x = torch.cat([mean, first, end, self.field_emb(fields)], -1)  # [S, 3H + F]
        return self.span_mlp(x).squeeze(-1)  # [S]

    def absent_logits(self, pooled: torch.Tensor, fields: torch.Tensor) -> torch.Tensor:
        """``pooled`` [A, H], ``fields`` [A] -> logits [A]."""
        return (pooled * self.absent_w[fields]).sum(-1) + self.absent_b[fields]  # [A]


def is_span(indices: Sequence[int], n_words: int) -> bool:
    """Whether ``indices`` is a non-empty contiguous run of word indices below ``n_words``."""
    if not indices:
        return False
    s = int(indices[0])
    return list(indices) == list(range(s, s + len(indices))) and s >= 0 and \
        s + len(indices) <= n_words


class RewardModel(nn.Module):
    """LayoutLM encoder + :class:`RewardHead`; see the module docstring."""

    def __init__(self, encoder: LayoutLMModel, schema: Schema, tokenizer: Any,
                 arch: str = "custom", max_length: int = 512, stride: int = 128,
                 field_dim: int = 32, hidden: int = 0) -> None:
        super().__init__()
        h = encoder.config.hidden_size
        self.encoder, self.schema, self.tokenizer, self.arch = encoder, schema, tokenizer, arch
        self.max_length, self.stride = max_length, stride
        self.field_dim, self.hidden = field_dim, hidden or h
        self.field_index = {name: i for i, name in enumerate(schema.field_names)}
        # Named like Hugging Face heads: ``training.optim.param_groups`` gives it ``head_lr``.
        self.classifier = RewardHead(h, len(schema.fields), field_dim, self.hidden)
        self.version = f"{REWARD_VERSION_PREFIX}@unsaved"

    @property
    def device(self) -> torch.device:
        return self.classifier.absent_b.device

    # -- construction ------------------------------------------------------------------------
    @classmethod
    def from_ensemble(cls, model: KVEnsemble, seed: int = 0, field_dim: int = 32,
                      hidden: int = 0) -> RewardModel:
        """A reward model whose encoder starts as a copy of ``model``'s LayoutLM member (same
        tokenizer, windows and schema); the head is fresh, seeded by ``seed``."""
        encoder = copy.deepcopy(model.layoutlm.layoutlm).cpu()
        torch.manual_seed(seed)
        return cls(encoder, model.schema, model.tokenizer, model.arch, model.max_length,
                   model.stride, field_dim, hidden)

    @classmethod
    def from_extractor(cls, model_dir: str | Path, seed: int = 0, field_dim: int = 32,
                       hidden: int = 0) -> RewardModel:
        """:meth:`from_ensemble` on a saved extractor directory."""
        ensemble, _ = KVEnsemble.from_pretrained(model_dir)
        return cls.from_ensemble(ensemble, seed, field_dim, hidden)

    # -- encoder -----------------------------------------------------------------------------
    def page_states(self, docs: Sequence[Document], batch_size: int = 8) -> list[PageStates]:
        """Word and pooled states of each document's ``words``: the windows of all pages,
        length-bucketed and padded per batch (``features``), each word's state from the
        window where its first sub-token has the most context (``windows.merge_per_word``)."""
        wins: list[Window] = []
        firsts: list[list[int]] = []
        owned: list[list[int]] = [[] for _ in docs]
        cls_id, sep_id = self.tokenizer.cls_token_id, self.tokenizer.sep_token_id
        for p, doc in enumerate(docs):
            enc = encode_words(self.tokenizer, [w.text for w in doc.words],
                               doc.normalized_boxes())
            for w in windows_for(enc, p, self.max_length, self.stride, cls_id, sep_id):
                owned[p].append(len(wins))
                wins.append(w)
            firsts.append(enc.first_tokens)
        tokens: dict[int, torch.Tensor] = {}  # window -> [m, H]
        pooled: dict[int, torch.Tensor] = {}  # window -> [H]
        for batch in length_buckets(wins, batch_size):
            feats = collate([wins[i] for i in batch], self.tokenizer.pad_token_id)
            out = self.encoder(input_ids=feats["input_ids"].to(self.device),
                               bbox=feats["bbox"].to(self.device),
                               attention_mask=feats["attention_mask"].to(self.device))
            for row, i in enumerate(batch):
                m = len(wins[i].input_ids) - 2  # drop [CLS]/[SEP]
                tokens[i] = out.last_hidden_state[row, 1:1 + m]  # [m, H]
                pooled[i] = out.pooler_output[row]  # [H]
        h = self.encoder.config.hidden_size
        result = []
        for p, idx in enumerate(owned):
            rows: list[torch.Tensor] = merge_per_word(  # a tensor indexes like a sequence
                firsts[p], [wins[i].span for i in idx],
                [tokens[i] for i in idx])  # type: ignore[misc]
            words = (torch.stack(rows) if rows else
                     torch.zeros((0, h), device=self.device))  # [n, H]
            page = torch.stack([pooled[i] for i in idx]).mean(0)  # [H]
            result.append(PageStates(words, page))
        return result

    # -- scoring -----------------------------------------------------------------------------
    def score(self, docs: Sequence[Document], queries: Sequence[FieldOutcomes],
              dropout: bool = False, batch_size: int = 8) -> list[torch.Tensor]:
        """Per query, the reward logits [K] of its outcomes (differentiable under grad mode).

        Each document named by a query is encoded once; ``dropout=False`` runs the encoder in
        eval mode (the mode is restored), so a score is the same function in training and use.
        """
        needed = sorted({q.doc for q in queries})
        with nullcontext() if dropout else dropout_off(self):
            states = dict(zip(needed, self.page_states([docs[i] for i in needed], batch_size)))
        return self.score_states(states, [len(d.words) for d in docs], queries)

    def _field_id(self, name: str) -> int:
        if name not in self.field_index:
            raise ValueError(f"field {name!r} is not in the reward model's schema "
                             f"{self.schema.field_names}")
        return self.field_index[name]

    def score_states(self, states: dict[int, PageStates], n_words: Sequence[int],
                     queries: Sequence[FieldOutcomes]) -> list[torch.Tensor]:
        """Reward logits from precomputed page states: every span outcome of every query in
        one head call, every absent outcome in another."""
        if not queries:
            return []
        sizes = [len(q.outcomes) for q in queries]
        spans: list[tuple[int, int, int, int]] = []  # (flat position, doc, first, length)
        span_fields: list[int] = []
        absent: list[tuple[int, int]] = []  # (flat position, doc)
        absent_fields: list[int] = []
        pos = 0
        for q in queries:
            f = self._field_id(q.field)
            for o in q.outcomes:
                if not o:
                    absent.append((pos, q.doc))
                    absent_fields.append(f)
                elif not is_span(o, n_words[q.doc]):
                    raise ValueError(f"document {q.doc}, field {q.field!r}: an outcome must "
                                     f"be a contiguous in-range word span, got {list(o)}")
                else:
                    spans.append((pos, q.doc, int(o[0]), len(o)))
                    span_fields.append(f)
                pos += 1
        dev = self.device
        dtype = next(iter(states.values())).words.dtype if states else torch.float32
        out = torch.zeros(pos, device=dev, dtype=dtype)  # [total]
        if spans:
            offset: dict[int, int] = {}
            flat_rows: list[torch.Tensor] = []
            n_rows = 0
            for d in sorted({d for _, d, _, _ in spans}):
                offset[d], n_rows = n_rows, n_rows + states[d].words.shape[0]
                flat_rows.append(states[d].words)
            flat = torch.cat(flat_rows)  # [N, H], every needed page's words
            width = max(n for _, _, _, n in spans)
            steps = torch.arange(width, device=dev)  # [L]
            first = torch.tensor([offset[d] + s for _, d, s, _ in spans], device=dev)  # [S]
            length = torch.tensor([n for _, _, _, n in spans], device=dev)  # [S]
            mask = steps.unsqueeze(0) < length.unsqueeze(1)  # [S, L]
            idx = torch.where(mask, first.unsqueeze(1) + steps, first.unsqueeze(1))  # [S, L]
            gathered = flat[idx] * mask.unsqueeze(-1).to(flat.dtype)  # [S, L, H]
            logits = self.classifier.span_logits(
                gathered, mask, length - 1, torch.tensor(span_fields, device=dev))  # [S]
            where = torch.tensor([p for p, _, _, _ in spans], device=dev)
            out = out.index_put((where,), logits.to(out.dtype))
        if absent:
            pooled = torch.stack([states[d].pooled for _, d in absent])  # [A, H]
            logits = self.classifier.absent_logits(
                pooled, torch.tensor(absent_fields, device=dev))  # [A]
            where = torch.tensor([p for p, _ in absent], device=dev)
            out = out.index_put((where,), logits.to(out.dtype))
        return list(torch.split(out, sizes))

    # -- best-of-k ---------------------------------------------------------------------------
    def rerank(self, results: Sequence[ExtractionResult], docs: Sequence[Document],
               k: int | None = None, calibrate: Calibrate | None = None,
               batch_size: int = 8) -> list[ExtractionResult]:
        """``results`` with each field's first ``k`` candidates (all: ``None``) reordered by
        reward; ``docs[i]`` is the page of ``results[i]``. See the module docstring."""
        if len(results) != len(docs):
            raise ValueError(f"{len(results)} results but {len(docs)} documents")
        out: list[ExtractionResult] = []
        for a in range(0, len(results), RERANK_CHUNK):
            out += self._rerank_chunk(results[a:a + RERANK_CHUNK], docs[a:a + RERANK_CHUNK],
                                      k, calibrate, batch_size)
        return out

    def _rerank_chunk(self, results: Sequence[ExtractionResult], docs: Sequence[Document],
                      k: int | None, calibrate: Calibrate | None,
                      batch_size: int) -> list[ExtractionResult]:
        queries: list[FieldOutcomes] = []
        placed: list[list[int]] = []  # per query: candidate positions it scores
        for i, (res, doc) in enumerate(zip(results, docs)):
            if res.doc_id != doc.id:
                raise ValueError(f"result {i} is for document {res.doc_id!r}, "
                                 f"the page given is {doc.id!r}")
            for name, fr in res.fields.items():
                top = fr.candidates[:k] if k is not None else fr.candidates
                where = [j for j, c in enumerate(top) if is_span(c.word_indices, len(doc.words))]
                if name in self.field_index and where:
                    queries.append(FieldOutcomes(i, name, [top[j].word_indices for j in where]))
                    placed.append(where)
        with torch.inference_mode():
            scores = self.score(docs, queries, batch_size=batch_size)
        rewards: dict[tuple[int, str], dict[int, float]] = {
            (q.doc, q.field): dict(zip(where, s.tolist()))
            for q, where, s in zip(queries, placed, scores)}
        out = []
        for i, (res, doc) in enumerate(zip(results, docs)):
            fields = {}
            for name, fr in res.fields.items():
                r = rewards.get((i, name))
                fields[name] = fr if r is None else self._reordered(fr, r, k, doc, calibrate)
            out.append(ExtractionResult(res.doc_id, f"{res.model_version}+{self.version}",
                                        fields, created_at=res.created_at,
                                        doc_hash=res.doc_hash))
        return out

    @staticmethod
    def _reordered(fr: FieldResult, rewards: dict[int, float], k: int | None, doc: Document,
                   calibrate: Calibrate | None) -> FieldResult:
        n = len(fr.candidates) if k is None else min(k, len(fr.candidates))
        scored = sorted(rewards, key=lambda j: -rewards[j])  # stable: ties keep the old order
        order = scored + [j for j in range(n) if j not in rewards] + list(range(n, len(
            fr.candidates)))
        cands = [fr.candidates[j] for j in order]
        if cands[0] is fr.candidates[0]:
            conf = fr.confidence
        else:
            conf = calibrate(doc, cands[0].score) if calibrate else cands[0].score
        return FieldResult(fr.name, cands, conf)

    # -- persistence -------------------------------------------------------------------------
    def card(self, base: RewardCard | None = None) -> RewardCard:
        """``base`` (or a blank card) with this model's architecture filled in."""
        c = copy.deepcopy(base) if base is not None else RewardCard(self.schema)
        c.schema, c.arch, c.encoder = self.schema, self.arch, self.encoder.config.to_dict()
        c.field_dim, c.hidden = self.field_dim, self.hidden
        c.max_length, c.stride = self.max_length, self.stride
        return c

    def save_pretrained(self, out_dir: str | Path, card: RewardCard | None = None) -> Path:
        """Write ``model.safetensors`` (encoder and head), ``tokenizer/`` and ``reward.json``."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().contiguous().cpu() for k, v in self.state_dict().items()}
        save_file(state, str(out / WEIGHTS_FILE), metadata={"format": REWARD_FORMAT})
        self.tokenizer.save_pretrained(out / TOKENIZER_DIR)
        self.card(card).save(out)
        return out

    @classmethod
    def from_pretrained(cls, model_dir: str | Path, device: str | torch.device | None = None,
                        ) -> tuple[RewardModel, RewardCard]:
        """Load a directory written by :meth:`save_pretrained`; returns (model, card)."""
        d = Path(model_dir)
        card = RewardCard.load(d)
        weights = d / WEIGHTS_FILE
        if not weights.is_file():
            raise FileNotFoundError(f"{weights}: the reward model's weights are missing")
        try:
            config = LayoutLMConfig.from_dict(card.encoder)
        except (ValueError, TypeError) as e:
            raise ValueError(f"{d / REWARD_CARD_FILE}: cannot rebuild the reward model's "
                             f"encoder ({e})") from e

        tok = load_tokenizer(d / TOKENIZER_DIR)

        def build() -> RewardModel:
            return cls(LayoutLMModel(config), card.schema, tok, card.arch, card.max_length,
                       card.stride, card.field_dim, card.hidden)

        check_safetensors(weights, expected_shapes(build), "reward model's weights")
        model = build()
        model.load_state_dict(load_file(str(weights)), strict=True)  # names and shapes checked
        model.version = reward_version(d)
        model.eval()
        if device is not None:
            model.to(device)
        return model, card


def load_reward_model(model_dir: str | Path, device: str | None = None) -> RewardModel:
    """A saved reward model on ``device`` (``extractor.devices.resolve_device``), eval mode."""
    return RewardModel.from_pretrained(model_dir, resolve_device(device))[0]


def build_reward_model(name_or_model: str | RewardModel, schema: Schema = RECEIPT_SCHEMA,
                       seed: int = 0, field_dim: int = 32, hidden: int = 0,
                       **overrides: Any) -> RewardModel:
    """A fresh reward model whose encoder is the zoo's LayoutLM for ``name`` (``minilm``:
    the shipped MiniLM weights; ``tiny``: random, for tests), or ``name_or_model`` itself.

    ``overrides`` go to ``extractor.model.zoo.build_model``; unknown names raise ``ValueError``.
    """
    if isinstance(name_or_model, RewardModel):
        if name_or_model.schema.labels != schema.labels:
            raise ValueError("the given reward model was built for another schema")
        return name_or_model
    ensemble = build_model(name_or_model, schema, seed=seed, **overrides)
    return RewardModel.from_ensemble(ensemble, seed, field_dim, hidden)
