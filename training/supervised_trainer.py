"""Supervised training of the BERT + LayoutLM ensemble from gold field values.

Gold values become BIO word labels through ``extractor.align.align_document`` (labels on each
word's first sub-token), long pages are cut into overlapping windows, and every step minimises
``CE(bert) + CE(layoutlm) + CE(fused)`` (``training.losses.joint_tagging_loss``) over a
length-bucketed batch. After each epoch the decoder runs on the dev split; the best field F1
(lenient) is kept, training stops after ``patience`` epochs without a gain, and on the
calibration split, which the model never trained on, the fusion weights and the "absent"
threshold are then chosen (best field F1) and the top-1 confidence calibrated. When that split
has images and was loaded with other words (SROIE: provided), its tesseract passes give the
decision profile of image input (``fit_ocr_profiles``). The words of the training pages are
saved as the model's lexicon (``extractor.lexicon``), for correcting OCR misreads.
"""

from __future__ import annotations

import copy
import json
import logging
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from extractor.align import align_document
from extractor.document import RECEIPT_SCHEMA, Document, Schema
from extractor.lexicon import Lexicon, build_lexicon
from extractor.model.calibrate import Calibrator, DecisionProfile, fit_calibrator, ocr_engine
from extractor.model.ensemble import KVEnsemble, fuse
from extractor.model.features import Window, collate
from extractor.model.layoutlm import LAYOUT_EMBEDDINGS
from extractor.model.metrics import score_results
from extractor.model.predictor import KVPredictor, model_version
from extractor.model.zoo import build_model
from extractor.normalize import lenient_key
from training.losses import joint_tagging_loss
from training.supervised_config import SupervisedConfig

log = logging.getLogger(__name__)


def load_split(spec: str, split: str, ocr: str = "provided",
               max_docs: int | None = None) -> list[Document]:
    """Documents of one split of a dataset spec, failures logged (the batch goes on)."""
    from extractor.loaders import load_documents
    report = load_documents(spec, split=split, ocr=ocr)
    for f in report.failures:
        log.warning("skipped %s: %s", f.path, f.reason)
    docs = report.documents
    return docs[:max_docs] if max_docs else docs


def pass_windows(model: KVEnsemble, docs: Sequence[Document], schema: Schema,
                 variants: bool = True) -> tuple[list[list[list[Window]]], dict[str, int]]:
    """Per document, per OCR pass (``doc.words`` first, then ``doc.variants`` when
    ``variants``): the labelled windows, gold aligned to that pass's words. Unaligned gold
    fields are counted on the first pass."""
    l2i = schema.label2id
    out: list[list[list[Window]]] = []
    unaligned: dict[str, int] = {}
    for i, doc in enumerate(docs):
        passes = [doc.words] + (list(doc.variants.values()) if variants else [])
        per_pass = []
        for p, words in enumerate(passes):
            page = replace(doc, words=words, variants={})
            al = align_document(page, schema)
            if p == 0:
                for name in al.unaligned:
                    unaligned[name] = unaligned.get(name, 0) + 1
            w, _ = model.windows([w.text for w in words], page.normalized_boxes(), doc=i,
                                 labels=[l2i[t] for t in al.tags])
            per_pass.append(w)
        out.append(per_pass)
    return out, unaligned


def mixed_windows(per_pass: Sequence[Sequence[Sequence[Window]]], mix: float,
                  rng: random.Random) -> list[Window]:
    """One epoch's windows: each page from its first pass, or with probability ``mix`` (and
    when it has other passes) from one of them at random."""
    out: list[Window] = []
    for passes in per_pass:
        use = passes[0]
        if len(passes) > 1 and rng.random() < mix:
            use = passes[rng.randrange(1, len(passes))]
        out += use
    return out


def with_tesseract_variants(docs: Sequence[Document], spec: str, split: str,
                            max_docs: int | None = None) -> list[Document]:
    """``docs`` with every tesseract pass of the same page (the cached OCR) as variants."""
    tess = {d.id: d for d in load_split(spec, split, "tesseract", max_docs)}
    out = []
    for doc in docs:
        t = tess.get(doc.id)
        if t is None:
            log.warning("%s: no tesseract passes; trained on its own words only", doc.id)
            out.append(doc)
            continue
        variants = {f"tesseract:{t.ocr}": t.words,
                    **{f"tesseract:{k}": v for k, v in t.variants.items()}}
        out.append(replace(doc, variants={**doc.variants, **variants}))
    return out


def epoch_batches(wins: Sequence[Window], batch_size: int, rng: random.Random) -> list[list[int]]:
    """Shuffled batches of similar-length windows (sorted within random pools of 16 batches)."""
    order = list(range(len(wins)))
    rng.shuffle(order)
    pool = batch_size * 16
    batches = []
    for p in range(0, len(order), pool):
        chunk = sorted(order[p:p + pool], key=lambda i: len(wins[i].input_ids))
        batches += [chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size)]
    rng.shuffle(batches)
    return batches


def param_groups(model: KVEnsemble, cfg: SupervisedConfig) -> list[dict[str, Any]]:
    """Pretrained encoder weights at ``lr``; new heads and fusion at ``head_lr``; layout
    embeddings at ``layout_lr`` (default ``lr``).

    No weight decay on biases, LayerNorm weights and layout embeddings (BERT's recipe; decay
    would pull the layout code back to zero).
    """
    groups: dict[tuple[float, bool], list[torch.nn.Parameter]] = {}
    for name, p in model.named_parameters():
        if any(e in name for e in LAYOUT_EMBEDDINGS):
            lr, decay = (cfg.layout_lr or cfg.lr), False
        else:
            lr = cfg.head_lr if ("classifier" in name or name == "fusion_raw") else cfg.lr
            decay = p.ndim > 1 and "LayerNorm" not in name
        groups.setdefault((lr, decay), []).append(p)
    return [{"params": ps, "lr": lr, "weight_decay": cfg.weight_decay if decay else 0.0}
            for (lr, decay), ps in groups.items()]


def evaluate(model: KVEnsemble, docs: Sequence[Document], k: int = 5,
             calibrator: Calibrator | None = None) -> dict[str, Any]:
    """Field scores of the fused decoder on ``docs`` (eval mode restored by the caller)."""
    model.eval()
    pred = KVPredictor(model, DecisionProfile(calibrator or Calibrator()))
    results = pred.predict(list(docs), k=k)
    return score_results([d.gold or {} for d in docs], results, k_max=k).summary()


ABSENT_THRESHOLDS = (0.5, 0.7, 0.8, 0.9, 0.95, 0.99, 0.999, 1.01)  # 1.01: never absent
# OCR confidence under which text words are corrected with the lexicon; 0: never (first, so
# ties keep the words as read; pages with given words have confidence 1 and always tie).
CORRECT_BELOW = (0.0, 0.8, 0.9, 0.95)
# (w_bert, w_layoutlm), the joint product first: it is kept unless another pair is better.
FUSION_GRID = ((1.0, 1.0), (1.0, 0.75), (1.0, 0.5), (1.0, 0.25), (1.0, 0.0),
               (0.75, 1.0), (0.5, 1.0), (0.25, 1.0), (0.0, 1.0))


@dataclass
class CalibrationFit:
    """What :func:`fit_calibration` chose on held-out documents, and the F1 behind it."""

    profile: DecisionProfile = field(default_factory=DecisionProfile)
    fusion_weights: tuple[float, float] = (1.0, 1.0)
    lenient_f1: float | None = None
    grid: list[dict[str, float]] = field(default_factory=list)

    def export(self) -> dict[str, Any]:
        return {"fusion_weights": list(self.fusion_weights),
                "absent_threshold": self.profile.absent_threshold,
                "correct_below": self.profile.correct_below,
                "lenient_f1": self.lenient_f1, "grid": self.grid}


def fit_calibration(model: KVEnsemble, docs: Sequence[Document],
                    fusion_grid: Sequence[tuple[float, float]] | None = FUSION_GRID,
                    lexicon: Lexicon | None = None) -> CalibrationFit:
    """Fusion weights and absent threshold (best lenient F1), then with a ``lexicon`` the
    confidence under which words are corrected (best F1), then the calibrator, all fitted on
    ``docs``; the chosen fusion weights are set on ``model``.

    ``fusion_grid=None`` keeps the model's fusion weights (a profile for another OCR engine:
    the weights are part of the model, the decisions are per engine). One forward pass; every
    setting is decoded from the same member log-probs. Identity, (1, 1) and 0.5 when ``docs``
    is empty.
    """
    if not docs:
        return CalibrationFit()
    model.eval()
    pred = KVPredictor(model, lexicon=lexicon)
    member = pred.member_pass_log_probs(list(docs), ("bert", "layoutlm"))
    golds = [d.gold or {} for d in docs]

    def fused(weights: Sequence[float]) -> list[list[torch.Tensor]]:
        return [[fuse(b, lo, weights) for b, lo in zip(bs, ls)]
                for bs, ls in zip(member["bert"], member["layoutlm"])]

    current = tuple(model.fusion_weights.tolist())
    best: tuple[float, tuple[float, float], float] = (-1.0, current, 0.5)
    grid = []
    for weights in (fusion_grid if fusion_grid is not None else (current,)):
        merged = pred.merged_fields(docs, fused(weights))  # the threshold only decides
        for thr in ABSENT_THRESHOLDS:
            pred.default_profile.absent_threshold = thr
            f1 = score_results(golds, pred.results_from_merged(docs, merged)).summary()
            f1 = f1["lenient"]["f1"]
            grid.append({"w_bert": weights[0], "w_layoutlm": weights[1], "absent": thr,
                         "lenient_f1": f1})
            if f1 > best[0] + 1e-9:
                best = (f1, tuple(weights), thr)  # type: ignore[assignment]
    f1, weights, thr = best
    if fusion_grid is not None:
        model.set_fusion_weights(weights)
    pred.default_profile.absent_threshold = thr
    lps = fused(weights)
    correct_below = 0.0
    for below in (CORRECT_BELOW if lexicon is not None else ())[1:]:
        pred.default_profile.correct_below = below
        f1_below = score_results(golds, pred.results_from_log_probs(docs, lps)).summary()
        f1_below = f1_below["lenient"]["f1"]
        grid.append({"w_bert": weights[0], "w_layoutlm": weights[1], "absent": thr,
                     "correct_below": below, "lenient_f1": f1_below})
        if f1_below > f1 + 1e-9:
            f1, correct_below = f1_below, below
    pred.default_profile.correct_below = correct_below
    conf, correct = [], []
    for doc, res in zip(docs, pred.results_from_log_probs(docs, lps)):
        for name, fr in res.fields.items():
            g = (doc.gold or {}).get(name)
            if fr.value is None and g is None:
                continue
            conf.append(fr.confidence)
            correct.append(lenient_key(fr.value) == lenient_key(g) if g is not None
                           else fr.value is None)
    return CalibrationFit(DecisionProfile(fit_calibrator(conf, correct), thr, correct_below),
                          weights, f1, grid)


def fit_ocr_profiles(model: KVEnsemble, docs: Sequence[Document], default_engine: str,
                     lexicon: Lexicon | None = None) -> dict[str, CalibrationFit]:
    """A decision profile (fusion weights kept) per OCR engine of ``docs`` other than
    ``default_engine``, each fitted on that engine's pages."""
    by_engine: dict[str, list[Document]] = {}
    for d in docs:
        by_engine.setdefault(ocr_engine(d.ocr), []).append(d)
    return {engine: fit_calibration(model, pages, fusion_grid=None, lexicon=lexicon)
            for engine, pages in by_engine.items() if engine != default_engine}


def profile_meta(fits: dict[str, CalibrationFit]) -> dict[str, dict[str, Any]]:
    """``kvloop.json``'s ``ocr_profiles``: what the predictor reads, and the F1 behind it."""
    return {engine: {**fit.profile.export(), "lenient_f1": fit.lenient_f1,
                     "n_fields": fit.profile.calibrator.n}
            for engine, fit in fits.items()}


def add_missing_lexicon(model_dir: str | Path, spec: str, split: str,
                        max_docs: int | None = None) -> Lexicon:
    """The model's lexicon; a model saved before lexicons existed gets one built from the
    training pages as it was trained on them (its ``training.ocr``), saved beside it."""
    found = Lexicon.load(model_dir)
    if found is not None:
        return found
    meta = json.loads((Path(model_dir) / "kvloop.json").read_text(encoding="utf-8"))
    ocr = meta.get("training", {}).get("ocr", "provided")
    lexicon = build_lexicon(load_split(spec, split, ocr, max_docs))
    lexicon.save(model_dir)
    log.info("%s: built a lexicon of %d words from split %r", model_dir, len(lexicon), split)
    return lexicon


def recalibrate(model_dir: str | Path, docs: Sequence[Document]) -> tuple[str, CalibrationFit]:
    """Refit the decisions of a saved model on ``docs`` and rewrite its kvloop.json (member
    weights unchanged). Returns the engine refitted and the fit.

    Pages read by the OCR engine of the model's calibration (``calibration_ocr``; older models:
    ``provided``) refit the default: fusion weights, absent threshold, calibrator. Pages of
    another engine refit that engine's profile only (fusion weights kept).
    """
    model, meta = KVEnsemble.from_pretrained(model_dir)
    if not docs:
        raise ValueError(f"{model_dir}: no documents to calibrate on")
    default = meta.get("calibration_ocr", "provided")
    engine = ocr_engine(docs[0].ocr)
    lexicon = Lexicon.load(model_dir)
    if engine == default:
        fit = fit_calibration(model, docs, lexicon=lexicon)
        meta.update(fusion_raw=model.fusion_raw.tolist(),
                    fusion_weights=model.fusion_weights.tolist(),
                    **fit.profile.export(), calibration_fit=fit.export())
    else:
        fit = fit_ocr_profiles(model, docs, default, lexicon)[engine]
        meta["ocr_profiles"] = {**meta.get("ocr_profiles", {}), **profile_meta({engine: fit})}
    path = Path(model_dir) / "kvloop.json"
    path.write_text(json.dumps(meta, indent=2), encoding="utf-8")
    meta["version"] = model_version(model_dir)
    path.write_text(json.dumps(meta, indent=2), encoding="utf-8")
    return engine, fit


@dataclass
class TrainResult:
    out: Path
    best_epoch: int
    best_dev_f1: float
    history: list[dict[str, Any]] = field(default_factory=list)


class SupervisedTrainer:
    """Config + data in, a saved, calibrated model directory out (see module docstring)."""

    def __init__(self, cfg: SupervisedConfig, schema: Schema = RECEIPT_SCHEMA,
                 train_docs: Sequence[Document] | None = None,
                 dev_docs: Sequence[Document] | None = None,
                 calib_docs: Sequence[Document] | None = None,
                 profile_docs: Sequence[Document] | None = None) -> None:
        self.cfg, self.schema = cfg, schema
        torch.set_num_threads(cfg.threads)
        random.seed(cfg.seed)
        torch.manual_seed(cfg.seed)
        load = (lambda s: load_split(cfg.data, s, cfg.ocr, cfg.max_docs))
        self.train_docs = list(train_docs) if train_docs is not None else load(cfg.train_split)
        self.dev_docs = list(dev_docs) if dev_docs is not None else load(cfg.dev_split)
        self.calib_docs = list(calib_docs) if calib_docs is not None else load(cfg.calib_split)
        # The calibration pages as another OCR engine reads them (SROIE: tesseract, for images).
        self.profile_docs = list(profile_docs or [])
        if (profile_docs is None and calib_docs is None and cfg.tesseract_profile
                and self.calib_docs and self.default_engine != "tesseract"):
            self.profile_docs = load_split(cfg.data, cfg.calib_split, "tesseract", cfg.max_docs)
        if not self.train_docs:
            raise ValueError(f"{cfg.data}: no training documents in split {cfg.train_split!r}")
        if (cfg.ocr_mix > 0 and cfg.ocr != "tesseract" and train_docs is None
                and not any(d.variants for d in self.train_docs)):
            self.train_docs = with_tesseract_variants(self.train_docs, cfg.data,
                                                      cfg.train_split, cfg.max_docs)
        # Words the training pages print, for correcting OCR misreads (main words only: the
        # variants' misreads must not enter it).
        self.lexicon = build_lexicon(self.train_docs)
        if cfg.init:
            self.model, _ = KVEnsemble.from_pretrained(cfg.init)
            if self.model.schema.labels != schema.labels:
                raise ValueError(f"{cfg.init}: model was trained for another schema")
        else:
            self.model = build_model(cfg.arch, schema, seed=cfg.seed,
                                     max_length=cfg.max_length, stride=cfg.stride,
                                     max_span_len=cfg.max_span_len,
                                     layout_init=cfg.layout_init)

    def train_step(self, batch: Sequence[Window], opt: torch.optim.Optimizer,
                   sched: Any = None) -> dict[str, float]:
        """One joint step; returns the loss parts."""
        self.model.train()
        feats = collate(batch, self.model.tokenizer.pad_token_id)
        lp = self.model(**feats)
        loss, parts = joint_tagging_loss(lp.bert, lp.layoutlm, lp.fused, feats["labels"],
                                         self.cfg.loss_weights)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip)
        opt.step()
        if sched is not None:
            sched.step()
        return {"loss": float(loss.detach()), **parts}

    def train(self) -> TrainResult:
        cfg, out = self.cfg, Path(self.cfg.out)
        out.mkdir(parents=True, exist_ok=True)
        per_pass, unaligned = pass_windows(self.model, self.train_docs, self.schema,
                                           variants=cfg.ocr_mix > 0)
        n_first = sum(len(p[0]) for p in per_pass)
        log.info("%d training windows from %d documents (%d OCR passes); unaligned gold "
                 "fields: %s", n_first, len(self.train_docs),
                 sum(len(p) for p in per_pass), unaligned)
        rng = random.Random(cfg.seed)
        steps_per_epoch = -(-n_first // cfg.batch_size)
        total = steps_per_epoch * cfg.epochs
        warm = max(1, int(cfg.warmup_ratio * total))
        opt = torch.optim.AdamW(param_groups(self.model, cfg))
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda s: min((s + 1) / warm, max(0.0, (total - s) / max(1, total - warm))))
        history: list[dict[str, Any]] = []
        best_f1, best_epoch, best_state = -1.0, 0, None
        log_path = out / "train_log.jsonl"
        log_path.write_text("", encoding="utf-8")
        for epoch in range(1, cfg.epochs + 1):
            t0, losses = time.time(), []
            wins = mixed_windows(per_pass, cfg.ocr_mix, rng)
            bar = tqdm(epoch_batches(wins, cfg.batch_size, rng), desc=f"epoch {epoch}",
                       unit="step")
            for batch in bar:
                parts = self.train_step([wins[i] for i in batch], opt, sched)
                losses.append(parts)
                bar.set_postfix(loss=f"{parts['loss']:.3f}")
            row: dict[str, Any] = {"epoch": epoch, "train_seconds": round(time.time() - t0, 1)}
            for key in ("loss", "bert", "layoutlm", "fused"):
                row[f"train_{key}"] = sum(p[key] for p in losses) / max(1, len(losses))
            if self.dev_docs:
                dev = evaluate(self.model, self.dev_docs)
                row.update(dev_f1=dev["lenient"]["f1"], dev_strict_f1=dev["strict"]["f1"],
                           dev_recall_at_5=dev["recall_at"].get(5))
            row["fusion_weights"] = self.model.fusion_weights.tolist()
            history.append(row)
            with open(log_path, "a", encoding="utf-8") as fh:
                fh.write(json.dumps(row) + "\n")
            log.info("epoch %d: %s", epoch, row)
            score = row.get("dev_f1", -row["train_loss"])
            if score > best_f1:
                best_f1, best_epoch = score, epoch
                best_state = copy.deepcopy(self.model.state_dict())
            self.model.save_pretrained(out / "checkpoint-last",
                                       {"training": cfg.export(), "epoch": epoch})
            if epoch - best_epoch >= cfg.patience:
                log.info("no dev gain for %d epochs: stopping", cfg.patience)
                break
        if best_state is not None:
            self.model.load_state_dict(best_state)
        fit = self.calibrate()
        log.info("calibration split: fusion weights %s, absent threshold %s, lenient F1 %s",
                 fit.fusion_weights, fit.profile.absent_threshold, fit.lenient_f1)
        profiles = fit_ocr_profiles(self.model, self.profile_docs, self.default_engine,
                                    self.lexicon)
        for engine, pf in profiles.items():
            log.info("calibration split read by %s: absent threshold %s, lenient F1 %s",
                     engine, pf.profile.absent_threshold, pf.lenient_f1)
        self.save(out, fit, history, best_epoch, profiles)
        return TrainResult(out, best_epoch, best_f1, history)

    @property
    def default_engine(self) -> str:
        """The OCR engine of the calibration pages: the default decision profile's."""
        return ocr_engine(self.calib_docs[0].ocr) if self.calib_docs else "provided"

    def calibrate(self) -> CalibrationFit:
        """Fusion weights, absent threshold and calibration fitted on the calibration split."""
        return fit_calibration(self.model, self.calib_docs, lexicon=self.lexicon)

    def save(self, out: Path, fit: CalibrationFit, history: list[dict[str, Any]],
             best_epoch: int, profiles: dict[str, CalibrationFit] | None = None) -> None:
        extra = {**fit.profile.export(),  # the default profile: top-level keys
                 "calibration_ocr": self.default_engine,
                 "ocr_profiles": profile_meta(profiles or {}),
                 "calibration_fit": fit.export(), "training": self.cfg.export(),
                 "best_epoch": best_epoch, "history": history}
        self.model.save_pretrained(out, extra)
        self.lexicon.save(out)
        meta = json.loads((out / "kvloop.json").read_text(encoding="utf-8"))
        meta["version"] = model_version(out)
        (out / "kvloop.json").write_text(json.dumps(meta, indent=2), encoding="utf-8")
