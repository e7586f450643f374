"""The joint BERT + LayoutLM tagger, and its policy API.

``KVEnsemble`` holds two token classifiers over the same sub-tokens (a text-only BERT and a
LayoutLM that also reads word boxes) and fuses their per-token log-probabilities as a weighted
product of experts: ``fused = log_softmax(w_bert * lp_bert + w_layout * lp_layout)`` (:func:`fuse`)
with positive weights. All three outputs are trained jointly (``training.losses``), the weights
with them; after training they are refitted on held-out documents (on the training pages
both members are near perfect, so the jointly learnt weights cannot tell which one to trust).

Policy API (what SFT, reward-model, PPO/GRPO and DPO trainers use)
------------------------------------------------------------------
For a document and a field, the policy is a categorical over every word span ``(s, e)`` of at
most ``max_span_len`` words plus one "absent" outcome; scores are the BIO-consistent span scores
of :mod:`extractor.model.decode` over the fused per-word log-probs, normalised by log-softmax.
An outcome is a list of word indices into ``doc.words`` (contiguous; ``[]`` means absent).

* ``span_distribution(doc, field)`` -> ``SpanDistribution`` (span_lp [n, M], absent_lp, word_lp)
* ``log_prob(doc, field, word_indices)`` -> scalar tensor with grad (any contiguous span)
* ``log_probs(doc, field, outcomes)`` -> [K] tensor, one forward pass for K outcomes
* ``sample(doc, field, n, generator)`` -> (``list[list[int]]``, their log-probs [n])
* many documents at once: ``extractor.model.policy.BatchedPolicy``
* ``reference()`` -> a frozen deep copy (eval mode, no grad) with the same methods, for KL.

Gradients flow when called under grad mode; call ``.eval()`` first for dropout-free
log-probs (RL ratios need the same function on both sides).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn
from transformers import AutoTokenizer, BertForTokenClassification, LayoutLMForTokenClassification

from extractor.document import Box, Document, Schema, Word
from extractor.model import decode
from extractor.model.card import ModelCard, check_safetensors, read_card_json
from extractor.model.features import Window, collate, encode_words, length_buckets, windows_for
from extractor.model.windows import merge_per_word

Member = Literal["bert", "layoutlm", "fused"]
MEMBERS: tuple[str, ...] = ("bert", "layoutlm", "fused")


@dataclass
class TagLogProbs:
    """Per-token tag log-probabilities [B, T, L] from each member and from the fusion."""

    bert: torch.Tensor
    layoutlm: torch.Tensor
    fused: torch.Tensor

    def get(self, member: str) -> torch.Tensor:
        return getattr(self, member)


@dataclass
class SpanDistribution:
    """One field's span categorical on one document (see module docstring)."""

    span_lp: torch.Tensor  # [n, M]
    absent_lp: torch.Tensor  # []
    word_lp: torch.Tensor  # [n, L]
    b_id: int
    i_id: int


def fuse(lp_bert: torch.Tensor, lp_layout: torch.Tensor, weights: torch.Tensor | Sequence[float],
         ) -> torch.Tensor:
    """Weighted product of the two members' tag distributions, renormalised (log-probs)."""
    return (weights[0] * lp_bert + weights[1] * lp_layout).log_softmax(-1)


class KVEnsemble(nn.Module):
    """Jointly trained BERT + LayoutLM token classifiers with learned log-prob fusion."""

    def __init__(self, bert: BertForTokenClassification, layoutlm: LayoutLMForTokenClassification,
                 schema: Schema, tokenizer: Any, arch: str = "custom",
                 max_length: int = 512, stride: int = 128,
                 max_span_len: int = decode.DEFAULT_MAX_SPAN) -> None:
        super().__init__()
        n = len(schema.labels)
        for name, m in (("bert", bert), ("layoutlm", layoutlm)):
            if m.config.num_labels != n:
                raise ValueError(f"{name} has {m.config.num_labels} labels, schema needs {n}")
        self.bert, self.layoutlm = bert, layoutlm
        self.schema, self.tokenizer, self.arch = schema, tokenizer, arch
        self.max_length, self.stride, self.max_span_len = max_length, stride, max_span_len
        # softplus(0.5413) = 1.0: start as the plain product of the two members.
        self.fusion_raw = nn.Parameter(torch.full((2,), 0.5413))

    # -- forward ---------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        """Where the weights are (inputs are moved there; nothing assumes the CPU)."""
        return self.fusion_raw.device

    @property
    def fusion_weights(self) -> torch.Tensor:
        return F.softplus(self.fusion_raw)

    @torch.no_grad()
    def set_fusion_weights(self, weights: Sequence[float]) -> None:
        """Set the (positive) fusion weights; 0 is stored as 1e-6 (softplus never reaches 0)."""
        w = torch.tensor([max(float(x), 1e-6) for x in weights], dtype=self.fusion_raw.dtype,
                         device=self.device)
        self.fusion_raw.copy_(torch.log(torch.expm1(w)))

    def forward(self, input_ids: torch.Tensor, bbox: torch.Tensor,
                attention_mask: torch.Tensor, **_: Any) -> TagLogProbs:
        """Tag log-probs of both members and the fusion, each [B, T, L]."""
        lp_b = self.bert(input_ids=input_ids, attention_mask=attention_mask).logits
        lp_l = self.layoutlm(input_ids=input_ids, bbox=bbox,
                             attention_mask=attention_mask).logits
        lp_b, lp_l = lp_b.log_softmax(-1), lp_l.log_softmax(-1)
        return TagLogProbs(lp_b, lp_l, fuse(lp_b, lp_l, self.fusion_weights))

    # -- words -> per-word log-probs --------------------------------------------------------
    def windows(self, words: Sequence[str], boxes: Sequence[Box], doc: int = 0,
                labels: Sequence[int] | None = None) -> tuple[list[Window], list[int]]:
        """Model windows for one word sequence, and each word's first sub-token position."""
        enc = encode_words(self.tokenizer, words, boxes, labels)
        wins = windows_for(enc, doc, self.max_length, self.stride,
                           self.tokenizer.cls_token_id, self.tokenizer.sep_token_id)
        return wins, enc.first_tokens

    def word_log_probs(self, pages: Sequence[tuple[Sequence[str], Sequence[Box]]],
                       members: Sequence[str] = ("fused",), batch_size: int = 8,
                       pad_to: int | None = None, bucket: bool = True,
                       ) -> list[dict[str, torch.Tensor]]:
        """Per-word tag log-probs [n_words, L] for each page (words, 0-1000 boxes).

        Windows from all pages are bucketed by length and padded per batch; each word takes
        the window where its first sub-token has the most context (``windows.merge_per_word``).
        ``pad_to``/``bucket=False`` reproduce the naive recipe (fixed padding, input order)
        for the throughput benchmark.
        """
        all_wins: list[Window] = []
        firsts: list[list[int]] = []
        for p, (words, boxes) in enumerate(pages):
            wins, first = self.windows(words, boxes, doc=p)
            all_wins += wins
            firsts.append(first)
        outs: list[dict[str, torch.Tensor] | None] = [None] * len(all_wins)
        batches = (length_buckets(all_wins, batch_size) if bucket else
                   [list(range(i, min(i + batch_size, len(all_wins))))
                    for i in range(0, len(all_wins), batch_size)])
        for batch in batches:
            feats = collate([all_wins[i] for i in batch], self.tokenizer.pad_token_id, pad_to)
            lp = self(**{k: v.to(self.device) for k, v in feats.items()})
            for row, i in enumerate(batch):
                m = len(all_wins[i].input_ids) - 2  # drop [CLS]/[SEP]
                outs[i] = {k: lp.get(k)[row, 1:1 + m] for k in members}
        result = []
        for p in range(len(pages)):
            idx = [i for i, w in enumerate(all_wins) if w.doc == p]
            spans = [all_wins[i].span for i in idx]
            per_member = {}
            for k in members:
                rows = merge_per_word(firsts[p], spans, [outs[i][k] for i in idx])  # type: ignore[index,misc]
                per_member[k] = (torch.stack(rows) if rows
                                 else torch.zeros((0, len(self.schema.labels)),
                                                  device=self.device))
            result.append(per_member)
        return result

    def doc_word_log_probs(self, doc: Document, words: list[Word] | None = None,
                           member: str = "fused") -> torch.Tensor:
        """Per-word log-probs [n, L] of ``doc.words`` (or another OCR pass of the same page)."""
        ws = doc.words if words is None else words
        page = ([w.text for w in ws], doc.normalized_boxes(ws))
        return self.word_log_probs([page], members=(member,))[0][member]

    # -- policy API -------------------------------------------------------------------------
    def span_distribution(self, doc: Document, field: str,
                          word_lp: torch.Tensor | None = None) -> SpanDistribution:
        """The span categorical of ``field`` on ``doc`` (differentiable under grad mode)."""
        if word_lp is None:
            word_lp = self.doc_word_log_probs(doc)
        b_id, i_id = decode.field_label_ids(self.schema, field)
        span_lp, absent_lp = decode.span_log_probs(word_lp, b_id, i_id, self.max_span_len)
        return SpanDistribution(span_lp, absent_lp, word_lp, b_id, i_id)

    def log_probs(self, doc: Document, field: str,
                  outcomes: Sequence[Sequence[int]]) -> torch.Tensor:
        """Log-probs [K] of K outcomes (word index lists, ``[]`` = absent); one forward pass
        for this document and field (``extractor.model.policy.BatchedPolicy`` batches many)."""
        d = self.span_distribution(doc, field)
        return decode.outcome_log_probs(d.span_lp, d.absent_lp, d.word_lp, d.b_id, d.i_id,
                                        outcomes)

    def log_prob(self, doc: Document, field: str, word_indices: Sequence[int]) -> torch.Tensor:
        """Log-prob (scalar, with grad) of one outcome; ``[]`` is "absent"."""
        return self.log_probs(doc, field, [word_indices])[0]

    def sample(self, doc: Document, field: str, n: int,
               generator: torch.Generator | None = None,
               ) -> tuple[list[list[int]], torch.Tensor]:
        """``n`` outcomes drawn from the span categorical and their log-probs [n] (no grad)."""
        with torch.no_grad():
            d = self.span_distribution(doc, field)
            draws = decode.sample_spans(d.span_lp, d.absent_lp, n, generator)
            return draws, decode.outcome_log_probs(d.span_lp, d.absent_lp, d.word_lp, d.b_id,
                                                   d.i_id, draws)

    def reference(self) -> KVEnsemble:
        """A frozen copy (eval mode, ``requires_grad=False``): the KL reference policy."""
        ref = copy.deepcopy(self)
        ref.eval()
        for p in ref.parameters():
            p.requires_grad_(False)
        return ref

    # -- persistence ------------------------------------------------------------------------
    def card(self, base: ModelCard | None = None) -> ModelCard:
        """``base`` (or a blank card) with this model's architecture and fusion filled in,
        without ``base``'s straight-through certificates: they hold for the weights they were
        fitted on (``kvloop thresholds fit``), and a card made here goes with weights that
        may differ (a trainer's checkpoint of a certified parent must accept nothing)."""
        c = copy.deepcopy(base) if base is not None else ModelCard(self.schema)
        c.straight_through = None
        c.schema, c.arch = self.schema, self.arch
        c.fusion_raw, c.fusion_weights = self.fusion_raw.tolist(), self.fusion_weights.tolist()
        c.max_length, c.stride, c.max_span_len = self.max_length, self.stride, self.max_span_len
        return c

    def save_pretrained(self, out_dir: str | Path, card: ModelCard | None = None) -> Path:
        """Write ``bert/``, ``layoutlm/`` (safetensors), ``tokenizer/`` and ``kvloop.json``
        (``card`` with this model's architecture fields)."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        self.bert.save_pretrained(out / "bert")
        self.layoutlm.save_pretrained(out / "layoutlm")
        self.tokenizer.save_pretrained(out / "tokenizer")
        self.card(card).save(out)
        return out

    @classmethod
    def from_pretrained(cls, model_dir: str | Path, device: str | torch.device | None = None,
                        ) -> tuple[KVEnsemble, ModelCard]:
        """Load a directory written by :meth:`save_pretrained`; returns (model, card).

        Safetensors and JSON only, nothing fetched; every file is checked first, so a missing,
        truncated or ill-fitting one gives ``FileNotFoundError``/``ValueError`` naming it."""
        d = Path(model_dir)
        card = ModelCard.load(d)
        n_labels = len(card.schema.labels)
        bert = load_member(d / "bert", BertForTokenClassification, n_labels)
        layout = load_member(d / "layoutlm", LayoutLMForTokenClassification, n_labels)
        model = cls(bert, layout, card.schema, load_tokenizer(d / "tokenizer"), arch=card.arch,
                    max_length=card.max_length, stride=card.stride,
                    max_span_len=card.max_span_len)
        with torch.no_grad():
            model.fusion_raw.copy_(torch.tensor(card.fusion_raw))
        model.eval()
        if device is not None:
            model.to(device)
        return model, card


def expected_shapes(build: Callable[[], nn.Module]) -> dict[str, tuple[int, ...]]:
    """Tensor name -> shape of the state of the module ``build()`` makes, built on the meta
    device (no memory, no initialisation cost)."""
    with torch.device("meta"):
        skeleton = build()
    return {k: tuple(v.shape) for k, v in skeleton.state_dict().items()}


def load_member(folder: Path, model_cls: Any, n_labels: int) -> Any:
    """A Hugging Face token classifier saved in ``folder`` (``config.json`` +
    ``model.safetensors``), checked before loading (see :meth:`KVEnsemble.from_pretrained`)."""
    what = f"{folder.name} member"
    config_path = folder / "config.json"
    if not config_path.is_file():
        raise FileNotFoundError(f"{config_path}: missing (the {what}'s config)")
    try:
        config = model_cls.config_class.from_dict(read_card_json(config_path, f"{what}'s config"))
    except (TypeError, KeyError) as e:  # ValueError from read_card_json names the file
        raise ValueError(f"{config_path}: not a {model_cls.config_class.__name__} ({e})") from e
    if config.num_labels != n_labels:
        raise ValueError(f"{config_path}: {config.num_labels} labels, but the model card's "
                         f"schema has {n_labels}")
    check_safetensors(folder / "model.safetensors", expected_shapes(lambda: model_cls(config)),
                      f"{what}'s weights")
    return model_cls.from_pretrained(folder, use_safetensors=True, local_files_only=True)


def load_tokenizer(folder: Path) -> Any:
    """The tokenizer saved in ``folder``; ``FileNotFoundError``/``ValueError`` naming it."""
    if not (folder / "tokenizer_config.json").is_file():
        raise FileNotFoundError(f"{folder / 'tokenizer_config.json'}: missing (the tokenizer)")
    try:
        return AutoTokenizer.from_pretrained(folder, local_files_only=True)
    except (OSError, ValueError, TypeError, KeyError) as e:  # JSONDecodeError is a ValueError
        raise ValueError(f"{folder}: cannot load the tokenizer ({type(e).__name__}: {e})") from e
