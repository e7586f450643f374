"""``kvloop train TRAINER [flags] [--config FILE]``: train the extractor ensemble.

Thin entry point: the trainer's config dataclass is parsed by ``training.cli.parse_config``
(flags and JSON/YAML config files, from the dataclass fields) and the trainer does the work.
``kvloop train TRAINER --help`` lists a trainer's flags.

Files of the training, dev or calibration data that cannot be read are skipped (each named
once as it is met) and training goes on; the run then ends with their records and exit
status 1, the saved model notwithstanding, unless ``--allow-partial`` accepts them.
"""

from __future__ import annotations

import argparse
import logging
import sys

from extractor.loaders.report import ALLOW_PARTIAL_HELP, batch_status
from training.cli import parse_config
from training.registry import available, get_trainer


def add_arguments(parser: argparse.ArgumentParser) -> None:
    trainers = available()
    parser.add_argument("trainer", choices=list(trainers),
                        help="; ".join(f"'{k}' = {v.help}" for k, v in trainers.items()))
    parser.add_argument("options", nargs=argparse.REMAINDER,
                        help="the trainer's flags (kvloop train TRAINER --help), and "
                             f"--allow-partial: {ALLOW_PARTIAL_HELP}")


def data_status(prog: str, skipped: list[tuple[str, str]], allow_partial: bool) -> int:
    """Exit status of a run that finished: 1 when its data loads skipped a file (each named
    here as ``kvloop data`` names them), unless ``allow_partial``."""
    if not skipped:
        return 0
    print(f"{prog}: {len(skipped)} data file(s) could not be read and were skipped:",
          file=sys.stderr)
    for path, reason in skipped:
        print(f"  FAILED {path}: {reason}", file=sys.stderr)
    # the run saved its model, so a document was read
    status, why = batch_status(len(skipped), 1, allow_partial)
    print(f"{prog}: {why}", file=sys.stderr)
    return status


def run(args: argparse.Namespace) -> int:
    from training.data import skipped_files

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    prog = f"kvloop train {args.trainer}"
    # a flag of the command, not of the trainer's config (it changes no model)
    allow_partial = "--allow-partial" in args.options
    options = [o for o in args.options if o != "--allow-partial"]
    with skipped_files() as skipped:
        status = train(args.trainer, options, prog)
    return status or data_status(prog, list(skipped), allow_partial)


def train(trainer_name: str, options: list[str], prog: str) -> int:
    """Parse the trainer's config from ``options`` and run it: 0, or 2 for bad options."""
    spec = get_trainer(trainer_name)
    try:
        cfg = parse_config(spec.config_class(), options, prog=prog, description=spec.help)
        cfg.check_required()
        trainer = spec.trainer_class()(cfg)
    # ConfigError (a ValueError) for bad options; missing or occupied folders, a bad store or
    # model from the trainer
    except (OSError, ValueError) as e:
        print(f"{prog}: {e}", file=sys.stderr)
        return 2
    print(trainer.train().describe())
    return 0
