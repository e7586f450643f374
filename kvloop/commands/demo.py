"""``kvloop demo``: the whole loop on the embedded synthetic data (see ``kvloop/demo.py``)."""

from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import fields

from kvloop.demo import DemoConfig


def add_arguments(parser: argparse.ArgumentParser) -> None:
    for f in fields(DemoConfig):
        parser.add_argument(f"--{f.name.replace('_', '-')}", dest=f.name, type=type(f.default),
                            default=f.default, help=f"{f.metadata['help']} (default: {f.default})")


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    try:
        cfg = DemoConfig(**{f.name: getattr(args, f.name) for f in fields(DemoConfig)})
    except ValueError as e:
        print(f"kvloop demo: {e}", file=sys.stderr)
        return 2
    from kvloop.demo import run_demo

    s = run_demo(cfg)
    summary = s.report.get("md")
    print()
    if summary:
        with open(summary, encoding="utf-8") as fh:
            print(fh.read())
    print(f"data:    {s.data_dir}  (img/, key/, documents.jsonl)")
    print(f"model:   {s.model_dir}")
    print("report:  " + ", ".join(f"{v}" for v in s.report.values()))
    print(f"review:  {s.queued} of {s.documents} documents routed to review; the simulated "
          f"operator reviewed {s.reviewed} ({dict(s.actions)})")
    print(f"store:   {s.store_url}")
    print("\nOpen the correction UI on it:\n"
          f"  kvloop review --store {s.store_url} --model {s.model_dir}")
    return 0
