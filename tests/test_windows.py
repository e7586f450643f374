"""Sliding windows: coverage, overlap, and merging back to one prediction per word."""

from __future__ import annotations

import itertools

import pytest
import torch

from extractor.document import Document, Word
from extractor.model.windows import best_window, make_windows, merge_per_word
from extractor.model.zoo import build_model


@pytest.mark.parametrize("n,size,stride", [(1, 10, 2), (10, 10, 2), (11, 10, 2), (95, 10, 3),
                                           (100, 30, 0)])
def test_windows_cover_every_token_with_overlap(n: int, size: int, stride: int) -> None:
    wins = make_windows(n, size, stride)
    covered = [t for a, b in wins for t in range(a, b)]
    assert set(covered) == set(range(n))
    assert all(b - a <= size for a, b in wins)
    for (a0, b0), (a1, b1) in itertools.pairwise(wins):
        assert a1 == a0 + size - stride and b0 - a1 == stride or b1 == n


def test_bad_window_arguments() -> None:
    with pytest.raises(ValueError):
        make_windows(10, 4, 4)
    with pytest.raises(ValueError):
        make_windows(10, 0, 0)


def test_best_window_prefers_most_context() -> None:
    wins = [(0, 10), (6, 16), (12, 20)]
    assert best_window(2, wins) == 0
    assert best_window(7, wins) == 0  # margins 2 (first) vs 1 (second)
    assert best_window(8, wins) == 1  # margins 1 (first) vs 2 (second)
    assert best_window(9, wins) == 1
    assert best_window(13, wins) == 1
    assert best_window(19, wins) == 2


def test_merge_per_word_picks_from_best_window() -> None:
    wins = [(0, 10), (6, 16)]
    outs = [[("w0", t) for t in range(10)], [("w1", t) for t in range(6, 16)]]
    merged = merge_per_word([0, 5, 9, 12, 15], wins, outs)
    assert merged == [("w0", 0), ("w0", 5), ("w1", 9), ("w1", 12), ("w1", 15)]


def test_long_document_windows_merge_back_per_word() -> None:
    """A page longer than one window: each word gets the row of its best window's forward."""
    model = build_model("tiny", max_length=24, stride=6).eval()
    words = [Word(f"word{i} x{i}", (i, i, i + 5, i + 5)) for i in range(40)]
    doc = Document("long", words, 100, 100)
    page = ([w.text for w in words], doc.normalized_boxes())
    with torch.inference_mode():
        lp = model.word_log_probs([page], members=("fused", "bert"))[0]
        wins, firsts = model.windows(*page)
        assert len(wins) > 2
        assert lp["fused"].shape == (40, len(model.schema.labels))
        spans = [w.span for w in wins]
        for word in (0, 17, 39):
            i = best_window(firsts[word], spans)
            a = wins[i].span[0]
            ids = torch.tensor([wins[i].input_ids])
            box = torch.tensor([wins[i].boxes])
            alone = model(ids, box, torch.ones_like(ids))
            row = alone.fused[0, 1 + firsts[word] - a]
            assert torch.allclose(lp["fused"][word], row, atol=1e-5)
