"""The documents of a comparison, fixed once and written under ``OUT/data``.

* ``start``: the first ``start_docs`` of ``fit``, with gold (the start model learns them);
* ``pool``: the next ``pool_docs`` of ``fit``. ``pool.jsonl`` keeps their gold for the
  simulated operator and the two arms allowed to read it (``gold``, the ceiling, and
  ``rl-oracle``, the ablation); ``pool-nogold.jsonl`` is what the store and every other
  learner see;
* ``select``: ``select_split`` (calibration), gold pages for epoch choice and decisions;
* evaluation sets: ``dev`` and its ``unseen-vendor`` slice (dev documents whose vendor, the
  gold ``vendor_field`` under ``lenient_key``, is the vendor of no ``fit`` document; skipped,
  with the reason logged, for a dataset whose gold names no vendor, such as CORD), plus the
  config's ``extra_eval`` sets.

With ``vendor_split`` (the deployment case) the start, the pool and the evaluation sets
(``seen-vendor``, ``new-vendor``) come from ``kvloop.compare.vendor_split`` instead; with
``start_model`` the given model's training receipts (``kvloop.compare.start_model``) are the
start documents and are kept out of the pool and of every evaluation set.

Units of work (possibly on other machines of a Ray cluster) read these files, so every unit
sees the same documents in the same order.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from extractor.document import Document, write_jsonl
from kvloop.compare.vendor_split import (
    NEW,
    SEEN,
    VENDOR_FIELD,
    VendorSplit,
    vendor_of,
    vendor_split,
)

if TYPE_CHECKING:  # the config lists the arms, whose training steps read documents from here
    from kvloop.compare.config import CompareConfig

log = logging.getLogger(__name__)


@dataclass
class CompareData:
    """Paths of the prepared JSONL files and the ids in each (see the module docstring)."""

    folder: Path
    start: list[str]
    pool: list[str]
    select: list[str]
    eval_sets: dict[str, list[str]]

    def path(self, name: str) -> Path:
        return self.folder / f"{name}.jsonl"

    def export(self) -> dict:
        return {"folder": str(self.folder), "start": self.start, "pool": self.pool,
                "select": self.select, "eval_sets": self.eval_sets}

    @classmethod
    def from_dict(cls, d: dict) -> CompareData:
        return cls(Path(d["folder"]), d["start"], d["pool"], d["select"], d["eval_sets"])


def read_docs(path: str | Path) -> list[Document]:
    from extractor.document import read_jsonl

    return [Document.from_dict(d) for d in read_jsonl(str(path))]


def source_spec(cfg: CompareConfig, out: Path) -> str:
    """The dataset spec: for ``demo``, the synthetic receipts generated (once) under
    ``OUT/demo-data``."""
    if cfg.data != "demo":
        return cfg.data
    from extractor.synth.demo import generate_demo

    folder = out / "demo-data"
    jsonl = folder / "documents.jsonl"
    if not jsonl.is_file():
        report = generate_demo(folder, n=cfg.demo_docs, seed=0)
        if report.failures:
            log.warning("%s", report.summary())
    return str(jsonl)


def load(spec: str, split: str) -> list[Document]:
    from training.data import load_split

    return load_split(spec, split)


def unseen_vendor(dev: Sequence[Document], seen: Sequence[Document],
                  vendor_field: str = VENDOR_FIELD) -> list[Document]:
    """Documents of ``dev`` whose gold vendor no document of ``seen`` has."""
    known = {vendor_of(d, vendor_field) for d in seen}
    return [d for d in dev if (k := vendor_of(d, vendor_field)) and k not in known]


def has_vendor(docs: Sequence[Document], vendor_field: str = VENDOR_FIELD) -> bool:
    """Whether any document's gold names its vendor (SROIE's company; CORD has no such field)."""
    return any(vendor_of(d, vendor_field) for d in docs)


@dataclass
class Plan:
    """The documents of each part of a comparison, before they are written."""

    start: list[Document]
    pool: list[Document]
    select: list[Document]
    eval_sets: dict[str, list[Document]]
    notes: list[str] = dataclasses.field(default_factory=list)
    """What a reader of the split should know (the vendor split's counts, warnings)."""

    def counts(self) -> dict[str, int]:
        return {"start": len(self.start), "pool": len(self.pool), "select": len(self.select),
                **{f"eval {k}": len(v) for k, v in self.eval_sets.items()}}

    def describe(self) -> list[str]:
        """Lines for a reader: the counts, then the notes."""
        return [", ".join(f"{k} {v}" for k, v in self.counts().items()), *self.notes]


def _check_pool(spec: str, cfg: CompareConfig, n_pool: int, what: str) -> None:
    if n_pool < 1:
        raise ValueError(f"{spec}: no pool documents are left ({what})")
    if cfg.rounds * cfg.docs_per_round > n_pool:
        raise ValueError(f"rounds x docs_per_round = {cfg.rounds * cfg.docs_per_round} is more "
                         f"than the {n_pool} pool documents ({what})")


def plan_standard(cfg: CompareConfig, spec: str, select: list[Document],
                  dev: list[Document], start: list[Document] | None) -> Plan:
    """Start and pool from ``fit``, ``dev`` and its unseen-vendor slice (module docstring);
    a given ``start`` (a start model's training receipts) is kept out of pool and dev."""
    fit = load(spec, "fit")
    if start is None:
        n_pool = cfg.pool_docs if cfg.pool_docs is not None else len(fit) - cfg.start_docs
        if cfg.start_docs + n_pool > len(fit) or n_pool < 1:
            raise ValueError(f"{spec}: start_docs + pool_docs = {cfg.start_docs} + {n_pool} but "
                             f"the fit split has {len(fit)} documents")
        start, rest = fit[:cfg.start_docs], fit[cfg.start_docs:]
    else:
        ids = {d.id for d in start}
        rest = [d for d in fit if d.id not in ids]
        dev = [d for d in dev if d.id not in ids]
    pool = rest[:cfg.pool_docs] if cfg.pool_docs is not None else rest
    _check_pool(spec, cfg, len(pool), f"fit without the {len(start)} start documents")
    sets: dict[str, list[Document]] = {"dev": dev}
    if cfg.unseen_vendor and not has_vendor([*fit, *start]):
        log.warning("unseen-vendor slice skipped: no fit document of %s has a gold %r (the "
                    "vendor; CORD has none), and no vendor is made up", spec, VENDOR_FIELD)
    elif cfg.unseen_vendor:
        unseen = unseen_vendor(dev, [*fit, *start])
        if not unseen:
            log.warning("no dev document has a vendor unseen in fit: no unseen-vendor set")
        elif len(unseen) == len(dev):
            log.warning("every dev vendor is unseen in fit: dev is the unseen-vendor set")
        else:
            sets["unseen-vendor"] = unseen
    return Plan(start, pool, select, sets)


def plan_vendor_split(cfg: CompareConfig, spec: str, select: list[Document],
                      dev: list[Document], start: list[Document] | None) -> Plan:
    """The deployment split (``kvloop.compare.vendor_split``): its source is ``train``
    without the selection pages."""
    picked = {d.id for d in select}
    source = [d for d in load(spec, "train") if d.id not in picked]
    if not has_vendor(source):
        raise ValueError(f"{spec}: no training receipt names its vendor (the gold "
                         f"{VENDOR_FIELD!r} field), so the deployment case cannot tell seen "
                         "from new vendors; run it on SROIE, or set vendor_split: false")
    split: VendorSplit = vendor_split(source, dev, start_docs=cfg.start_docs,
                                      pool_docs=cfg.pool_docs, seed=cfg.vendor_seed,
                                      start=start)
    _check_pool(spec, cfg, len(split.pool), "receipts of vendors the start never saw")
    sets = {NEW: split.new_eval, SEEN: split.seen_eval}
    for name, docs in sets.items():
        if not docs:
            raise ValueError(f"{spec}: the vendor split leaves no {name} evaluation document "
                             f"({split.describe()})")
    return Plan(split.start, split.pool, select, sets, [split.describe()])


def plan(cfg: CompareConfig, out: Path) -> Plan:
    """Every part's documents (module docstring); nothing written but the demo receipts."""
    spec = source_spec(cfg, out)
    select = load(spec, cfg.select_split)[:cfg.max_select_docs]
    dev = load(spec, cfg.dev_split)[:cfg.max_eval_docs]
    if not select or not dev:
        raise ValueError(f"{spec}: the {cfg.select_split!r} and {cfg.dev_split!r} splits "
                         "must not be empty")
    start, notes = None, []
    if cfg.start_model:
        from kvloop.compare.start_model import StartModelData

        given = StartModelData.read(cfg.start_model)
        start = given.training_documents()
        chosen_on = given.epoch_choice_ids() & {d.id for d in dev}
        if chosen_on:
            notes.append(f"{cfg.start_model} chose its epoch on {len(chosen_on)} of the "
                         f"evaluation documents ({given.data}, split {given.dev_split}): its "
                         "own scores there are flattered")
            log.warning("%s", notes[-1])
    make = plan_vendor_split if cfg.vendor_split else plan_standard
    p = make(cfg, spec, select, dev, start)
    p.notes[:0] = notes
    for name, extra in cfg.extra_eval.items():
        if name in p.eval_sets:
            raise ValueError(f"extra_eval: {name!r} is a built-in evaluation set name")
        p.eval_sets[name] = load(extra, "all")
    return p


def prepare(cfg: CompareConfig, out: Path) -> CompareData:
    """Split the dataset as the module docstring says and write the JSONL files."""
    p = plan(cfg, out)
    folder = out / "data"
    folder.mkdir(parents=True, exist_ok=True)
    files = {"start": p.start, "pool": p.pool, "select": p.select,
             "pool-nogold": [dataclasses.replace(d, gold=None) for d in p.pool],
             **{f"eval-{k}": v for k, v in p.eval_sets.items()}}
    for name, docs in files.items():
        tmp = folder / f"{name}.jsonl.tmp"
        write_jsonl(str(tmp), docs)
        tmp.rename(folder / f"{name}.jsonl")
    return CompareData(folder, [d.id for d in p.start], [d.id for d in p.pool],
                       [d.id for d in p.select],
                       {k: [d.id for d in v] for k, v in p.eval_sets.items()})
