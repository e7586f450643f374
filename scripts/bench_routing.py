"""Benchmark routing: do the fitted auto-accept thresholds keep their promise on unseen receipts?

Takes the auto-accept thresholds a trained model's card holds (fitted by training on the
calibration split: per field the lowest threshold whose accepted calibration items reach the
target precision, ``training.decisions``), extracts the dev split (which neither training nor
the fit saw) and reports per field and OCR engine the **coverage** (share of answers
auto-accepted) and **strict precision** of the accepted ones (``extractor.scoring
.is_correct``, what ``kvloop eval`` scores), for:

* ``fitted``: the card's thresholds (plain rule: precision on the calibration items >= target,
  at least 30 accepted);
* ``schema``: the schema's fixed ``FieldSpec.auto_accept`` (0.95), as routing did before;
* with ``--refit``: the decisions refitted here as training does, and ``fitted-cp95``, the
  Clopper-Pearson rule (the 95% lower bound of that precision >= target).

    python scripts/bench_routing.py --model runs/base --data /work/shared/data/sroie
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from extractor.lexicon import Lexicon
from extractor.model.ensemble import KVEnsemble
from extractor.model.predictor import KVPredictor
from extractor.scoring import at_threshold, confidence_items
from training.data import load_split
from training.decisions import fit_decisions, fit_thresholds


def operating_points(pred: KVPredictor, docs: list, thresholds: dict[str, dict[str, Any]],
                     ) -> dict[str, dict[str, dict[str, float | None]]]:
    """Per rule and field: coverage, precision and count at that rule's threshold on ``docs``."""
    fields = pred.schema.field_names
    items = confidence_items([d.gold or {} for d in docs], pred.predict(docs), fields)
    out: dict[str, dict[str, dict[str, float | None]]] = {}
    for rule, per_field in thresholds.items():
        out[rule] = {}
        for f in fields:
            t = per_field.get(f)
            conf, ok = items[f]
            if t is None:
                out[rule][f] = {"threshold": None, "coverage": 0.0, "precision": None,
                                "accepted": 0}
                continue
            p = at_threshold(conf, ok, t)
            out[rule][f] = {"threshold": t, "coverage": p["coverage"],
                            "precision": p["precision"] if p["accepted"] else None,
                            "accepted": p["accepted"]}
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared" /
                                          "data" / "sroie"))
    ap.add_argument("--target", type=float, default=0.99)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--max-docs", type=int, default=None, help="dev receipts (a smoke run)")
    ap.add_argument("--ocr", default="provided,tesseract",
                    help="comma list of dev OCR to score: provided, tesseract (re-reads the "
                         "images: the OCR cache makes a second run fast)")
    ap.add_argument("--refit", action="store_true",
                    help="refit the decisions here (and the Clopper-Pearson rule)")
    ap.add_argument("--out", default="runs/bench-routing.json")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    model, card = KVEnsemble.from_pretrained(args.model)
    lexicon = Lexicon.load(args.model)
    thresholds = {"fitted": dict(card.auto_accept),
                  "schema": {s.name: s.auto_accept for s in card.schema.fields}}
    fit_report: dict[str, Any] = {"fitted": card.auto_accept_fit}
    if args.refit or not card.auto_accept:
        calib = load_split(args.data, "calibration", "provided")
        calib_t = load_split(args.data, "calibration", "tesseract")
        decisions = fit_decisions(model, calib, calib_t, lexicon, args.target, level=None)
        cp = fit_thresholds([decisions.default, *decisions.profiles.values()], args.target,
                            level=0.95)
        card = decisions.apply(model, card)
        thresholds["fitted"] = {k: f.threshold for k, f in decisions.auto_accept.items()}
        thresholds["fitted-cp95"] = {k: f.threshold for k, f in cp.items()}
        fit_report = {rule: {k: f.export() for k, f in fits.items()}
                      for rule, fits in (("fitted", decisions.auto_accept), ("fitted-cp95", cp))}
    pred = KVPredictor(model, card.decisions, "bench", card.ocr_profiles, lexicon)
    report: dict[str, Any] = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, torch {torch.__version__}, {args.threads} threads",
        "command": " ".join(["scripts/bench_routing.py"] + (argv or sys.argv[1:])),
        "model": args.model, "target": args.target, "thresholds": thresholds,
        "calibration_fit": fit_report,
        "dev": {}}
    for ocr in [o.strip() for o in args.ocr.split(",") if o.strip()]:
        dev = load_split(args.data, "dev", ocr, args.max_docs)
        report["dev"][ocr] = operating_points(pred, dev, thresholds)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2), encoding="utf-8")
    print(f"target precision {args.target}; thresholds fitted on the calibration split, "
          "scored on dev\n")
    print("| OCR | rule | field | threshold | dev coverage | dev strict precision |")
    print("|---|---|---|---:|---:|---:|")
    for ocr, rules in report["dev"].items():
        for rule, per_field in rules.items():
            for f, p in per_field.items():
                t = "always review" if p["threshold"] is None else f"{p['threshold']:.3f}"
                prec = "-" if p["precision"] is None else f"{100 * p['precision']:.1f}%"
                print(f"| {ocr} | {rule} | {f} | {t} | {100 * p['coverage']:.0f}% | {prec} |")
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
