"""One path from the command line and config files to any trainer's config dataclass.

``parse_config(SomeConfig, argv)`` reads the dataclass's fields once, through
``transformers.HfArgumentParser`` (what TRL's scripts use): every field is a flag
(``--max-docs`` or ``--max_docs``; booleans also ``--no-<name>``; lists take several
values), its ``metadata["help"]`` the help text. ``--config FILE`` (JSON or YAML, keys are
field names) supplies values first; flags given on the command line override them. Unknown
keys in a file and unknown flags are errors naming them, and the dataclass's
``__post_init__`` validates the result.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

from transformers import HfArgumentParser

from training.config import ConfigError, check_fields

__all__ = ["ConfigError", "make_parser", "parse_config", "read_config_file"]

T = TypeVar("T")


def read_config_file(path: str | Path) -> dict[str, Any]:
    """Field values from a JSON or YAML file (by extension; YAML for anything but .json)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"{p}: cannot read the config file ({e.strerror or e})") from e
    try:
        if p.suffix.lower() == ".json":
            data = json.loads(text)
        else:
            import yaml
            data = yaml.safe_load(text)
    except Exception as e:  # json.JSONDecodeError, yaml.YAMLError
        raise ConfigError(f"{p}: not valid {'JSON' if p.suffix == '.json' else 'YAML'} "
                          f"({e})") from e
    if not isinstance(data, dict):
        raise ConfigError(f"{p}: a config file must hold a mapping of field names to values")
    return data


def make_parser(cls: type[Any], prog: str | None = None,
                description: str | None = None) -> HfArgumentParser:
    """The flags of ``cls``'s fields, plus ``--config FILE``."""
    parser = HfArgumentParser(cls, prog=prog, description=description)  # type: ignore[arg-type]
    parser.add_argument("--config", default=None, metavar="FILE",
                        help="JSON or YAML file of field values (flags override it)")
    return parser


def parse_config(cls: type[T], argv: Sequence[str], prog: str | None = None,
                 description: str | None = None) -> T:
    """``cls`` from ``argv`` (and its ``--config`` file); ``ConfigError`` when invalid."""
    parser = make_parser(cls, prog, description)
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--config", default=None)
    known, _ = pre.parse_known_args(list(argv))
    if known.config:
        values = read_config_file(known.config)
        check_fields(cls, values, known.config)
        parser.set_defaults(**values)
    try:
        outputs = parser.parse_args_into_dataclasses(args=list(argv), look_for_args_file=False)
    except ValueError as e:  # __post_init__ or HfArgumentParser's own checks
        raise ConfigError(str(e)) from e
    return outputs[0]  # the rest is the namespace holding --config
