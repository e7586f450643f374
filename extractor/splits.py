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

A dataset that ships its own split names it in its ids (``train/receipt_00012``,
``dev/receipt_00003``: CORD). When every id does, that split is kept: ``dev`` is its ``dev/``
documents, ``train`` its ``train/`` ones, ``calibration`` a seeded random eighth of ``train``
(``CALIBRATION_SEED``; CORD: 100 of 800), ``fit`` the rest of ``train`` (700), and a ``test/``
document is in ``all`` only (it is the dataset's held-out set).
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable, Sequence
from typing import TypeVar

from extractor.document import Document

SPLITS: tuple[str, ...] = ("train", "dev", "all", "calibration", "fit")
OWN_SPLITS: tuple[str, ...] = ("train", "dev", "test")
"""Split names a dataset's ids may start with (``train/...``) to keep the dataset's own split."""
CALIBRATION_SEED = 0
CALIBRATION_SHARE = 8  # one document in eight of an own ``train`` split is held back
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
    if ordered and all(own_split(i) for i in ordered):
        return own_split_ids(ordered, split)
    return [i for n, i in enumerate(ordered) if in_split(n, split)]


def own_split(doc_id: str) -> str | None:
    """The dataset's own split an id names (``train/receipt_00012`` -> ``train``), or None."""
    head, sep, _ = str(doc_id).partition("/")
    return head if sep and head in OWN_SPLITS else None


def own_split_ids(ordered: Sequence[str], split: str) -> list[str]:
    """``split`` of ids that name their own split (see the module docstring), in ``ordered``'s
    order; the calibration draw depends only on the ``train/`` ids."""
    if split == "all":
        return list(ordered)
    if split == "dev":
        return [i for i in ordered if own_split(i) == "dev"]
    train = [i for i in ordered if own_split(i) == "train"]
    if split == "train":
        return train
    held = set(random.Random(CALIBRATION_SEED).sample(train, len(train) // CALIBRATION_SHARE))
    return [i for i in train if (i in held) == (split == "calibration")]


def split_items(items: Sequence[T], ids: Sequence[str], split: str) -> list[T]:
    """The items whose id (``ids[k]`` for ``items[k]``) falls in ``split``, in sorted id order."""
    keep = set(split_ids(ids, split))
    pairs = sorted(((i, x) for i, x in zip(ids, items) if i in keep),
                   key=lambda p: id_sort_key(p[0]))
    return [x for _, x in pairs]


def split_documents(docs: Sequence[Document], split: str) -> list[Document]:
    """The documents of ``split`` (``train`` / ``dev`` / ``all`` / ``calibration`` / ``fit``)."""
    return split_items(docs, [d.id for d in docs], split)
