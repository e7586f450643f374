"""Joining tesseract's split prices (``73.`` + ``00``) and leaving everything else alone."""

from __future__ import annotations

from extractor.document import Word
from extractor.word_repair import join_split_amounts


def row(*texts: str, gap: int = 10, line: int = 0, height: int = 30) -> list[Word]:
    """Words left to right on one line, each 40 px wide, ``gap`` px apart."""
    out, x = [], 0
    for t in texts:
        out.append(Word(t, (x, 100, x + 40, 100 + height), 0.9, line))
        x += 40 + gap
    return out


def texts(words: list[Word]) -> list[str]:
    return [w.text for w in words]


def test_joins_the_split_at_either_side_of_the_separator() -> None:
    assert texts(join_split_amounts(row("TOTAL", "RM", "73.", "00"))) == ["TOTAL", "RM", "73.00"]
    assert texts(join_split_amounts(row("29", ".70", "CASH"))) == ["29.70", "CASH"]
    assert texts(join_split_amounts(row("RM4,", "00"))) == ["RM4,00"]


def test_joined_word_spans_both_boxes_and_keeps_the_lower_confidence() -> None:
    words = row("73.", "00")
    words[1].confidence = 0.4
    [joined] = join_split_amounts(words)
    assert joined.box == (0, 100, 90, 130)
    assert joined.confidence == 0.4 and joined.line == 0


def test_leaves_words_that_are_not_one_split_price() -> None:
    for words in (row("12", "34"),  # no separator: two numbers
                  row("73.", ".00"),  # two separators
                  row("73.", "000"),  # not two decimals
                  row("TOTAL.", "00"),  # not a number
                  row("73.", "00", gap=200)):  # a column apart
        assert texts(join_split_amounts(words)) == texts(words)
    across = row("73.", line=0) + row("00", line=1)
    assert texts(join_split_amounts(across)) == ["73.", "00"]


def test_untouched_words_are_the_same_objects_in_order() -> None:
    words = row("ITEM", "2", "x", "3.50")
    out = join_split_amounts(words)
    assert all(a is b for a, b in zip(out, words)) and len(out) == len(words)
    assert join_split_amounts([]) == []
