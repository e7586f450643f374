"""The one deterministic train / dev split every stage uses (training, evaluation, benchmarks).

Documents are sorted by id (numeric ids numerically, e.g. SROIE's ``001`` .. ``999``) and
numbered 0, 1, 2, ...; then

* ``dev``: index % 5 == 4 (every fifth document; 100 of the 500 SROIE receipts),
* ``train``: every other document (400 SROIE receipts),
* ``calibration``: index % 5 == 3, a fixed fifth of ``train`` (100 SROIE receipts) held back
  for the extractor's temperature scaling,
* ``fit``: ``train`` without ``calibration`` (300 SROIE receipts), what a model is fitted on
  when ``calibration`` must stay unseen,
* ``all``: everything.

The index is the position among the ids *given*, so split a whole dataset (the loaders split
the full id listing of a folder before reading any file), not an already-filtered subset.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import TypeVar

from extractor.document import Document

SPLITS: tuple[str, ...] = ("train", "dev", "all", "calibration", "fit")
_CHUNK = re.compile(r"(\d+)")
T = TypeVar("T")


def id_sort_key(doc_id: str) -> tuple:
    """Natural order: digit runs compare as numbers (``'9' < '10'``, ``'a2' < 'a10'``)."""
    return tuple((0, int(c), c) if c.isdigit() else (1, 0, c)
                 for c in _CHUNK.split(str(doc_id)) if c)


def split_of_index(index: int) -> str:
    """``train`` or ``dev`` for a document's position in the sorted id list."""
    return "dev" if index % 5 == 4 else "train"


def in_split(index: int, split: str) -> bool:
    check_split(split)
    r = index % 5
    return {"all": True, "dev": r == 4, "train": r != 4, "calibration": r == 3,
            "fit": r not in (3, 4)}[split]


def check_split(split: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")


def split_ids(ids: Iterable[str], split: str) -> list[str]:
    """The ids of ``split`` among ``ids``, in sorted (natural) order."""
    check_split(split)
    ordered = sorted(set(ids), key=id_sort_key)
    return [i for n, i in enumerate(ordered) if in_split(n, split)]


def split_items(items: Sequence[T], ids: Sequence[str], split: str) -> list[T]:
    """The items whose id (``ids[k]`` for ``items[k]``) falls in ``split``, in sorted id order."""
    keep = set(split_ids(ids, split))
    pairs = sorted(((i, x) for i, x in zip(ids, items) if i in keep),
                   key=lambda p: id_sort_key(p[0]))
    return [x for _, x in pairs]


def split_documents(docs: Sequence[Document], split: str) -> list[Document]:
    """The documents of ``split`` (``train`` / ``dev`` / ``all`` / ``calibration`` / ``fit``)."""
    return split_items(docs, [d.id for d in docs], split)
