"""Writing a new model version: complete or not at all, never over another one, resumable.

A trainer writes its result into ``.<name>.partial`` beside ``out`` and renames it into place
when everything is written, so a killed run leaves no half-written model under the name a user
would load, and the parent is never touched. The partial folder has a fixed name so that the
same command, run again after a kill, finds the run's ``checkpoint-last`` there and the loop
(``training.loop``) resumes from it; a failed run keeps the folder only when it holds such a
checkpoint (and says so), otherwise it is removed. A lock file beside ``out`` keeps two runs off
one partial folder (the lock dies with its process, so a kill never leaves it held).

Several processes (``accelerate launch``): only the main one (``RANK`` 0) owns the partial
folder and renames it; the others get a scratch folder of their own, removed at the end,
because the loop checkpoints and the trainer saves from the main process only.
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

log = logging.getLogger(__name__)

PARTIAL_SUFFIX = ".partial"
CHECKPOINT_DIRS = ("checkpoint-last", "checkpoint-next")  # training.loop writes these


def partial_dir(out: str | Path) -> Path:
    """Where the run writing ``out`` works until it renames its result into place."""
    out = Path(out)
    return out.parent / f".{out.name}{PARTIAL_SUFFIX}"


def is_partial_dir(path: str | Path) -> bool:
    p = Path(path)
    return p.name.startswith(".") and p.name.endswith(PARTIAL_SUFFIX) and p.is_dir()


def has_checkpoint(work: Path) -> bool:
    return any((work / name).is_dir() for name in CHECKPOINT_DIRS)


def process_rank() -> int:
    """This process's rank under ``accelerate launch``/``torchrun`` (0 when launched alone)."""
    return int(os.environ.get("RANK", "0"))


@contextmanager
def _lock(out: Path) -> Iterator[None]:
    """``.<name>.lock`` beside ``out``, held for the block (``FileExistsError`` when taken)."""
    path = out.parent / f".{out.name}.lock"
    while True:
        fh = open(path, "a+")  # noqa: SIM115 (held for the whole block)
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            fh.close()
            raise FileExistsError(f"{out}: another training run is writing it now "
                                  f"(lock {path} held)") from e
        try:  # the holder before us may have removed the file: lock the one in place
            if os.stat(path).st_ino == os.fstat(fh.fileno()).st_ino:
                break
        except FileNotFoundError:
            pass
        fh.close()
    try:
        yield
    finally:
        path.unlink(missing_ok=True)
        fh.close()


@contextmanager
def new_version_dir(out: str | Path) -> Iterator[Path]:
    """A folder to write ``out`` into, renamed to ``out`` when the block ends without error.

    ``FileExistsError`` when ``out`` exists (before or after the work) or another run is
    writing it. Within another ``new_version_dir`` block (``out`` is its partial folder), the
    folder itself: the outer block renames it."""
    out = Path(out)
    if is_partial_dir(out):
        yield out
        return
    if process_rank() != 0:
        scratch = Path(tempfile.mkdtemp(prefix=f".{out.name}.rank{process_rank()}."))
        try:
            yield scratch
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        return
    if out.exists():
        raise FileExistsError(f"{out}: already exists; a trainer writes a new version and "
                              "never overwrites one")
    out.parent.mkdir(parents=True, exist_ok=True)
    with _lock(out):
        work = partial_dir(out)
        if work.exists() and not has_checkpoint(work):
            shutil.rmtree(work)  # killed before its first checkpoint: nothing to resume
        if work.exists():
            log.info("%s: found the checkpoint of an interrupted run in %s; resuming", out, work)
        work.mkdir(exist_ok=True)
        try:
            yield work
        except BaseException:
            if has_checkpoint(work):
                log.warning("%s: the run stopped; its checkpoint is kept in %s: run the same "
                            "command again to resume, or delete that folder to start afresh",
                            out, work)
            else:
                shutil.rmtree(work, ignore_errors=True)
            raise
        for name in CHECKPOINT_DIRS:  # the finished model is the run's result
            shutil.rmtree(work / name, ignore_errors=True)
        if out.exists():
            raise FileExistsError(f"{out}: appeared while training; the new version is left "
                                  f"in {work}")
        work.rename(out)
