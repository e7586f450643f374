"""A lexicon of the words on the training pages, to correct tesseract's one-letter misreads.

Tesseract reads ``SDN`` as ``SON``, ``MART`` as ``HART`` and ``D.I.Y.`` as ``D.I.¥.``: one
edit away from a word the training transcriptions print again and again. A word of a value
that tesseract read with confidence below a profile's ``correct_below`` and that is not in the
lexicon is replaced by its most frequent lexicon neighbour at one edit (deletion, insertion or
substitution), if it has one. Words without letters (amounts, dates, codes) are left alone.

The lexicon is built from the training pages' own words (SROIE: the provided transcriptions)
and saved beside the model (``lexicon.json``); whether and below which confidence to correct is
chosen per OCR engine on the calibration split (``training.supervised_trainer``), so pages with
given words are never touched. Measured on SROIE dev, tesseract end to end, with the session-2
model: lenient F1 64.1 -> 65.3 (company 58 -> 64), settings chosen on the calibration split.
"""

from __future__ import annotations

import json
import re
import string
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from extractor.document import Document, Word

LEXICON_FILE = "lexicon.json"
_EDIT_CHARS = string.ascii_uppercase + string.ascii_lowercase + string.digits + ".,/&-'()$"
_HAS_LETTER = re.compile(r"[^\W\d_]")  # any letter, ¥ and accented ones included
MIN_CORRECTED_LENGTH = 3  # "SN" -> "SD" is a guess, not a correction


def one_edit_neighbours(word: str) -> set[str]:
    """Every string one deletion, insertion or substitution away from ``word``."""
    splits = [(word[:i], word[i:]) for i in range(len(word) + 1)]
    deletions = {a + b[1:] for a, b in splits if b}
    substitutions = {a + c + b[1:] for a, b in splits if b for c in _EDIT_CHARS}
    insertions = {a + c + b for a, b in splits for c in _EDIT_CHARS}
    return (deletions | substitutions | insertions) - {word}


@dataclass
class Lexicon:
    """Word -> how many times the training pages print it (words seen ``min_count``+ times)."""

    counts: dict[str, int] = field(default_factory=dict)
    min_count: int = 2
    _memo: dict[str, str] = field(default_factory=dict, repr=False, compare=False)

    def __len__(self) -> int:
        return len(self.counts)

    def correct(self, text: str) -> str:
        """``text`` or its most frequent lexicon neighbour at one edit (ties: alphabetical)."""
        if (text in self.counts or len(text) < MIN_CORRECTED_LENGTH
                or not _HAS_LETTER.search(text)):
            return text
        if text not in self._memo:  # the decoder asks for the same words span after span
            found = [(-self.counts[n], n) for n in one_edit_neighbours(text) if n in self.counts]
            self._memo[text] = min(found)[1] if found else text
        return self._memo[text]

    def correct_words(self, words: Iterable[Word], below: float) -> list[Word]:
        """Words read with confidence under ``below`` corrected (copies; others unchanged)."""
        out = []
        for w in words:
            fixed = self.correct(w.text) if w.confidence < below else w.text
            out.append(w if fixed == w.text else replace(w, text=fixed))
        return out

    def export(self) -> dict[str, Any]:
        return {"min_count": self.min_count, "counts": dict(sorted(self.counts.items()))}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Lexicon:
        return cls({str(k): int(v) for k, v in d["counts"].items()}, int(d.get("min_count", 2)))

    def save(self, model_dir: str | Path) -> Path:
        path = Path(model_dir) / LEXICON_FILE
        path.write_text(json.dumps(self.export(), ensure_ascii=False), encoding="utf-8")
        return path

    @classmethod
    def load(cls, model_dir: str | Path) -> Lexicon | None:
        """The lexicon saved beside a model, or ``None`` (models trained before it existed)."""
        path = Path(model_dir) / LEXICON_FILE
        if not path.is_file():
            return None
        try:
            return cls.from_dict(json.loads(path.read_text(encoding="utf-8")))
        except (ValueError, KeyError, TypeError) as e:
            raise ValueError(f"{path}: not a kvloop lexicon ({e})") from e


def build_lexicon(docs: Sequence[Document], min_count: int = 2) -> Lexicon:
    """The words of ``docs`` (each page's own words, not its OCR variants) seen ``min_count``+
    times."""
    counts = Counter(w.text for d in docs for w in d.words)
    return Lexicon({w: c for w, c in counts.items() if c >= min_count}, min_count)
