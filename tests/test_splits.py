"""The deterministic train / dev / calibration split."""

from __future__ import annotations

import random

import pytest

from extractor.document import Document
from extractor.loaders.sroie import sroie_ids
from extractor.splits import id_sort_key, split_documents, split_ids


def test_natural_id_order():
    ids = ["10", "9", "a10", "a2", "001", "b"]
    assert sorted(ids, key=id_sort_key) == ["001", "9", "10", "a2", "a10", "b"]


def test_every_fifth_is_dev():
    ids = [f"{i:03d}" for i in range(1, 11)]
    assert split_ids(ids, "dev") == ["005", "010"]
    assert split_ids(ids, "calibration") == ["004", "009"]
    assert split_ids(ids, "fit") == ["001", "002", "003", "006", "007", "008"]
    assert split_ids(ids, "all") == ids


def test_sroie_split_sizes_and_disjointness(sroie_dir):
    ids = sroie_ids(sroie_dir)
    assert len(ids) == 500
    train, dev = split_ids(ids, "train"), split_ids(ids, "dev")
    cal, fit = split_ids(ids, "calibration"), split_ids(ids, "fit")
    assert (len(train), len(dev), len(cal), len(fit)) == (400, 100, 100, 300)
    assert set(train).isdisjoint(dev) and set(train) | set(dev) == set(ids)
    assert set(cal) <= set(train) and set(fit) == set(train) - set(cal)


def test_split_is_deterministic_whatever_the_input_order(sroie_dir):
    ids = sroie_ids(sroie_dir)
    shuffled = ids[:]
    random.Random(0).shuffle(shuffled)
    assert split_ids(shuffled, "dev") == split_ids(ids, "dev")
    docs = [Document(id=i, words=[], width=1, height=1) for i in shuffled]
    assert [d.id for d in split_documents(docs, "dev")] == split_ids(ids, "dev")


def test_unknown_split_is_rejected():
    with pytest.raises(ValueError, match="unknown split 'test'"):
        split_ids(["1"], "test")


def _own_split_ids(n_train: int, n_dev: int) -> list[str]:
    return ([f"train/receipt_{i:05d}" for i in range(n_train)]
            + [f"dev/receipt_{i:05d}" for i in range(n_dev)])


def test_ids_that_name_their_split_keep_it():
    """CORD's ids (``train/...``, ``dev/...``): dev is its dev, calibration a seeded eighth
    of its train, fit the rest; a ``test/`` id is in ``all`` only."""
    ids = _own_split_ids(800, 100) + ["test/receipt_00000"]
    train, dev = split_ids(ids, "train"), split_ids(ids, "dev")
    cal, fit = split_ids(ids, "calibration"), split_ids(ids, "fit")
    assert (len(train), len(dev), len(cal), len(fit)) == (800, 100, 100, 700)
    assert all(i.startswith("dev/") for i in dev) and all(i.startswith("train/") for i in train)
    assert set(cal) | set(fit) == set(train) and not set(cal) & set(fit)
    assert "test/receipt_00000" in split_ids(ids, "all")
    assert "test/receipt_00000" not in train + dev
    # seeded, not every k-th: the calibration eighth is spread over the listing
    assert cal != train[::8] and cal == split_ids(list(reversed(ids)), "calibration")


def test_own_split_needs_every_id_to_name_one():
    ids = _own_split_ids(8, 2) + ["receipt_9"]  # one id without a split: the %5 rule
    assert split_ids(ids, "dev") == sorted(ids, key=id_sort_key)[4::5]
