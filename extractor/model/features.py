"""Turn OCR words and boxes into model inputs: sub-tokens, 0-1000 boxes, word labels.

Every word gets at least one sub-token (an ``[UNK]`` when the tokenizer drops it, e.g. a lone
zero-width character) so that every word has a prediction. Labels sit on a word's first
sub-token; the other sub-tokens are ignored by the loss (-100), as in the LayoutLM recipe.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from extractor.document import Box
from extractor.model.windows import make_windows

IGNORE = -100
MAX_SUBTOKENS_PER_WORD = 24  # a runaway OCR "word" must not eat a whole window
SEP_BOX: Box = (1000, 1000, 1000, 1000)
CLS_BOX: Box = (0, 0, 0, 0)


@dataclass
class Encoded:
    """One word sequence as sub-tokens (no special tokens)."""

    input_ids: list[int]
    boxes: list[Box]
    first_tokens: list[int]  # word index -> position of its first sub-token
    labels: list[int] = field(default_factory=list)  # per token, IGNORE off first sub-tokens


@dataclass
class Window:
    """One model input: ``[CLS] tokens [SEP]`` cut from an encoded sequence."""

    doc: int  # index of the sequence in the batch it came from
    span: tuple[int, int]  # token range [a, b) in the encoded sequence
    input_ids: list[int]
    boxes: list[Box]
    labels: list[int]


def encode_words(tokenizer: Any, words: Sequence[str], boxes: Sequence[Box],
                 word_labels: Sequence[int] | None = None) -> Encoded:
    """Tokenise each word separately and repeat its box on each of its sub-tokens."""
    if len(words) != len(boxes):
        raise ValueError(f"{len(words)} words but {len(boxes)} boxes")
    pieces = tokenizer(list(words), add_special_tokens=False)["input_ids"] if words else []
    enc = Encoded([], [], [], [])
    for w, ids in enumerate(pieces):
        ids = list(ids)[:MAX_SUBTOKENS_PER_WORD] or [tokenizer.unk_token_id]
        enc.first_tokens.append(len(enc.input_ids))
        enc.input_ids += ids
        enc.boxes += [tuple(boxes[w])] * len(ids)  # type: ignore[list-item]
        if word_labels is not None:
            enc.labels += [int(word_labels[w])] + [IGNORE] * (len(ids) - 1)
    return enc


def windows_for(enc: Encoded, doc: int, max_length: int, stride: int,
                cls_id: int, sep_id: int) -> list[Window]:
    """Cut ``enc`` into windows of at most ``max_length`` inputs, specials included."""
    spans = make_windows(len(enc.input_ids), max_length - 2, stride)
    out = []
    for a, b in spans:
        labels = enc.labels[a:b] if enc.labels else [IGNORE] * (b - a)
        out.append(Window(doc, (a, b), [cls_id] + enc.input_ids[a:b] + [sep_id],
                          [CLS_BOX] + enc.boxes[a:b] + [SEP_BOX],
                          [IGNORE] + labels + [IGNORE]))
    return out


def collate(windows: Sequence[Window], pad_id: int,
            pad_to: int | None = None) -> dict[str, torch.Tensor]:
    """Pad to the longest window in the batch (dynamic padding), or to ``pad_to``."""
    n = max(max(len(w.input_ids) for w in windows), pad_to or 0)
    ids = torch.full((len(windows), n), pad_id, dtype=torch.long)
    bbox = torch.zeros((len(windows), n, 4), dtype=torch.long)
    mask = torch.zeros((len(windows), n), dtype=torch.long)
    labels = torch.full((len(windows), n), IGNORE, dtype=torch.long)
    for i, w in enumerate(windows):
        m = len(w.input_ids)
        ids[i, :m] = torch.tensor(w.input_ids)
        bbox[i, :m] = torch.tensor(w.boxes)
        mask[i, :m] = 1
        labels[i, :m] = torch.tensor(w.labels)
    return {"input_ids": ids, "bbox": bbox, "attention_mask": mask, "labels": labels}


def length_buckets(windows: Sequence[Window], batch_size: int) -> list[list[int]]:
    """Batches of window indices with similar lengths, so padding stays small."""
    order = sorted(range(len(windows)), key=lambda i: len(windows[i].input_ids))
    return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
