"""Writing a new model version: complete or not at all, never over another one.

Trainers that start from a saved model write their result into a temporary folder beside
``out`` and rename it into place when everything is written, so a killed run leaves no
half-written model under the name a user would load, and the parent is never touched.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def new_version_dir(out: str | Path) -> Iterator[Path]:
    """A fresh folder to write into, renamed to ``out`` when the block ends without error
    (removed otherwise). ``FileExistsError`` when ``out`` exists, before or after the work."""
    out = Path(out)
    if out.exists():
        raise FileExistsError(f"{out}: already exists; a trainer writes a new version and "
                              "never overwrites one")
    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        yield work
        shutil.rmtree(work / "checkpoint-last", ignore_errors=True)  # the finished model is it
        if out.exists():
            raise FileExistsError(f"{out}: appeared while training; the new version is left "
                                  f"in {work}")
        work.rename(out)
    except BaseException:
        if not out.exists() or not work.samefile(out):
            shutil.rmtree(work, ignore_errors=True)
        raise
