"""The one console command, ``kvloop``, with a subcommand per capability.

Each subcommand lives in its own module and exposes ``add_arguments(parser)`` and
``run(args) -> int``; this file only wires them up (imports are lazy so ``kvloop --help`` is
fast and a broken optional dependency only breaks its own subcommand).
"""

from __future__ import annotations

import argparse
import importlib
import sys

# name -> (module, one-line help). A subcommand is listed here only once it works.
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("kvloop.commands.demo", ("Run the whole loop on the embedded synthetic demo data: "
             "generate, train, extract, report, review into a store")),
    "demo-data": ("kvloop.commands.demo_data", ("Generate the synthetic demo receipts "
                  "(rendered, then OCR'd)")),
    "data": ("kvloop.commands.data", ("Load a dataset (SROIE folder, images/PDFs, JSONL, demo) "
             "and write it as kvloop JSONL, reporting failures")),
    "ocr": ("kvloop.commands.ocr", ("Run OCR (PP-OCRv6 and tesseract passes) over images or "
            "PDFs")),
    "align": ("kvloop.commands.align", ("Align gold values to OCR words as BIO tags and report "
              "what could not be aligned")),
    "train": ("kvloop.commands.train", ("Train the extractor ensemble: 'base' from gold labels; "
              "'sft', 'reward', 'rl', 'dpo', 'sft-rl' from the operators' feedback; 'calibrate' refits "
              "the decisions")),
    "extract": ("kvloop.commands.extract", ("Extract key-value fields (k-best candidates, "
                "calibrated confidence) from images, PDFs or a dataset into JSONL")),
    "compare": ("kvloop.commands.compare", ("SFT vs reward model + RL vs DPO on the same "
                "simulated operators' feedback: rounds, seeds, paired CIs, an HTML report")),
    "thresholds": ("kvloop.commands.thresholds", ("Certified auto-accept: fit the correctness "
                   "model and per-field thresholds, refit them with a store's reviews, audit")),
    "eval": ("kvloop.commands.eval", "Evaluate models or results files: HTML/JSON/Markdown report"),
    "review": ("kvloop.commands.review", ("Start the Streamlit correction UI on a feedback store "
               "(127.0.0.1 by default)")),
    "store": ("kvloop.commands.store", ("Feedback store: import results, export corrections, "
              "history, stats")),
}


# Subcommands that read page images: each takes --ocr-engines (kvloop.commands.data).
READS_IMAGES = ("data", "ocr", "align", "train", "extract", "compare", "eval", "review")


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kvloop",
        description="Key-value extraction from documents, a correction UI, and SFT-vs-RL "
                    "learning from the corrections.")
    from kvloop import __version__
    parser.add_argument("--version", action="version", version=f"kvloop {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_text) in SUBCOMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(_module=module)
        # Arguments are added lazily below, only for the chosen subcommand.
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = make_parser()
    if argv and argv[0] in SUBCOMMANDS:
        module = importlib.import_module(SUBCOMMANDS[argv[0]][0])
        sub = argparse.ArgumentParser(prog=f"kvloop {argv[0]}",
                                      description=SUBCOMMANDS[argv[0]][1])
        module.add_arguments(sub)
        if argv[0] in READS_IMAGES:
            from kvloop.commands.data import add_engine_argument, use_engines

            add_engine_argument(sub)
        args = sub.parse_args(argv[1:])
        if argv[0] in READS_IMAGES and (problem := use_engines(args)):
            print(f"kvloop {argv[0]}: {problem}", file=sys.stderr)
            return 2
        return int(module.run(args) or 0)
    args = parser.parse_args(argv)
    parser.print_help()
    return 0 if args.command is None else 2


if __name__ == "__main__":
    sys.exit(main())
