"""``kvloop compare --config demo|quick|quick-choice|quick-tuned|full|cord-tiny|cord-quick|
cord-deployed-quick|deployment[-quick]|FILE``:
is SFT on the corrections enough, or does a reward model plus policy updates (or DPO) learn
more from the same operators' work?

Runs the experiment of ``kvloop.compare.runner`` and prints the answer (the report's summary)
and where the report is. Running the same command again resumes an interrupted comparison
from its last finished step; ``--report-only`` rewrites the report from ``results.jsonl``.
"""

from __future__ import annotations

import argparse
import logging
import shlex
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", default="demo",
                        help="a preset ('demo': synthetic data, minutes; 'quick': SROIE, 35 "
                             "minutes on 2 cores; 'quick-choice': the same under the "
                             "choice-only regime; 'quick-tuned': every arm tuned alike on the "
                             "selection split; 'cord-tiny': the harness on CORD v2 with a "
                             "tiny model; 'cord-quick' / 'cord-deployed-quick': CORD from a "
                             "weak / a strong start; 'full': for bigger machines; "
                             "'deployment-quick' / 'deployment': a strong start model meets "
                             "new vendors, an hour / hours) or a YAML/JSON "
                             "file of kvloop.compare.config.CompareConfig fields")
    parser.add_argument("--data", default=None, help="dataset spec (overrides the config)")
    parser.add_argument("--out", default=None, help="output folder (overrides the config)")
    parser.add_argument("--seeds", type=int, nargs="+", default=None, help="seeds to run")
    parser.add_argument("--arms", nargs="+", default=None, help="arms to run (X+tuned: arm X tuned alike beside its defaults)")
    parser.add_argument("--rounds", type=int, default=None, help="rounds of review")
    parser.add_argument("--baseline", default=None,
                        help="the arm every other is tested against (default: the config's, "
                             "sft); with --report-only, e.g. 'rl' to test rl-pool against rl")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1, mps, auto")
    parser.add_argument("--regime", nargs="+", default=None,
                        choices=["full", "choice-only", "noisy"],
                        help="the simulated operator's feedback regime(s), run one after "
                             "another (overrides the config's); regimes run into one folder "
                             "share its start model and its report")
    parser.add_argument("--error-rate", type=float, default=None,
                        help="a noisy operator's error rate per field decision")
    parser.add_argument("--ray", action="store_true", default=None,
                        help="run units as Ray tasks (a local Ray unless --ray-address)")
    parser.add_argument("--ray-address", default=None,
                        help="Ray cluster address ('auto', 'ray://host:10001'); implies --ray")
    parser.add_argument("--report-only", action="store_true",
                        help="rewrite the report from OUT/results.jsonl; train nothing")
    parser.add_argument("--list-arms", action="store_true", help="print the arms and exit")
    parser.add_argument("--dry-run", action="store_true",
                        help="print how the documents split (start, pool, selection, "
                             "evaluation sets) and exit; train nothing")


def regime_overrides(args: argparse.Namespace, operator: dict) -> dict:
    """``--regime`` / ``--error-rate`` as config overrides: the regimes to run (in place of
    the config's) and the operator's error rate (what a ``noisy`` regime uses)."""
    out: dict = {}
    if args.regime:
        out["regimes"] = list(dict.fromkeys(args.regime))
    if args.error_rate is not None:
        out["operator"] = {**operator, "error_rate": args.error_rate}
    return out


def run(args: argparse.Namespace) -> int:
    from kvloop.compare.arms import ARMS, TUNED
    from kvloop.compare.config import load_config
    from training.cli import ConfigError

    if args.list_arms:
        for a in ARMS.values():
            print(f"{a.name:14s} {a.help}")
        print(f"{'X' + TUNED:14s} arm X (one that trains) tuned alike on the selection split, "
              "beside X at its defaults in the same run")
        return 0
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(message)s")
    overrides = {"data": args.data, "out": args.out, "seeds": args.seeds, "arms": args.arms,
                 "rounds": args.rounds, "device": args.device, "baseline": args.baseline,
                 "ray": True if (args.ray or args.ray_address) else None,
                 "ray_address": args.ray_address}
    try:
        cfg = load_config(args.config, overrides)
        more = regime_overrides(args, cfg.operator)
        if more:
            cfg = load_config(args.config, {**overrides, **more})
    except ConfigError as e:
        print(f"kvloop compare: {e}", file=sys.stderr)
        return 2
    if args.dry_run:
        return dry_run(cfg)
    from kvloop.compare.runner import Comparison

    command = "kvloop compare " + " ".join(shlex.quote(a) for a in sys.argv[2:])
    comparison = Comparison(cfg, command=command.strip())
    try:
        if args.report_only:
            paths = comparison.report()
        else:
            paths = comparison.run()["paths"]
    except (ValueError, FileNotFoundError, RuntimeError) as e:
        print(f"kvloop compare: {e}", file=sys.stderr)
        return 1
    summary = paths.get("md")
    if summary and Path(summary).is_file():
        print()
        print(Path(summary).read_text(encoding="utf-8"))
    print("report: " + ", ".join(str(p) for p in paths.values()))
    return 0


def dry_run(cfg) -> int:
    """Print the split a run of ``cfg`` would make (``--dry-run``)."""
    from kvloop.compare.data import plan

    try:
        p = plan(cfg, Path(cfg.out).resolve())
    except (ValueError, FileNotFoundError) as e:
        print(f"kvloop compare: {e}", file=sys.stderr)
        return 1
    print(f"{cfg.name}: {cfg.data}")
    for line in p.describe():
        print(f"  {line}")
    print(f"  budget: {cfg.rounds} rounds x {cfg.docs_per_round} reviewed documents, "
          f"{len(cfg.seeds)} seed(s), arms {cfg.arms}")
    return 0
