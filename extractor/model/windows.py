"""Sliding windows over a document's sub-token sequence, and merging them back per word.

A receipt can tokenise to more than the 512 positions BERT has. We cut the sequence into
windows of at most ``max_tokens`` sub-tokens that overlap by ``stride`` tokens, run each window,
and give every word the prediction of the window in which its first sub-token sits farthest
from an edge (the one with the most context on both sides).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

T = TypeVar("T")


def make_windows(n_tokens: int, max_tokens: int, stride: int) -> list[tuple[int, int]]:
    """Half-open token ranges ``[a, b)`` covering ``range(n_tokens)``.

    Consecutive windows overlap by ``stride`` tokens; a short sequence is one window.
    """
    if max_tokens < 1:
        raise ValueError(f"max_tokens must be >= 1, got {max_tokens}")
    if not 0 <= stride < max_tokens:
        raise ValueError(f"stride must be in [0, max_tokens), got {stride} for {max_tokens}")
    if n_tokens <= max_tokens:
        return [(0, n_tokens)]
    step = max_tokens - stride
    out: list[tuple[int, int]] = []
    a = 0
    while True:
        b = min(a + max_tokens, n_tokens)
        out.append((a, b))
        if b == n_tokens:
            return out
        a += step


def best_window(token: int, windows: Sequence[tuple[int, int]]) -> int:
    """Index of the window holding ``token`` with the most context on its nearer side."""
    best, best_margin = -1, -1
    for i, (a, b) in enumerate(windows):
        if a <= token < b:
            margin = min(token - a, b - 1 - token)
            if margin > best_margin:
                best, best_margin = i, margin
    if best < 0:
        raise ValueError(f"token {token} is in no window {list(windows)}")
    return best


def merge_per_word(first_tokens: Sequence[int], windows: Sequence[tuple[int, int]],
                   window_outputs: Sequence[Sequence[T]]) -> list[T]:
    """Pick one output per word from the window outputs.

    ``first_tokens[w]`` is the position of word ``w``'s first sub-token in the whole sequence;
    ``window_outputs[i][j]`` is the output at token ``windows[i][0] + j``.
    """
    out: list[T] = []
    for t in first_tokens:
        i = best_window(t, windows)
        out.append(window_outputs[i][t - windows[i][0]])
    return out
