"""What a loader returns: the documents it read and, for every file it could not, why."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from extractor.document import Document


def printable(text: str) -> str:
    """``text`` fit to print, write as UTF-8 JSON and store in SQL: the bytes of a file name
    that is not UTF-8 (Python's surrogate escapes) are shown as ``\\xNN``."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        try:
            return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
        except UnicodeEncodeError:  # a lone surrogate that no file name produced
            return text.encode("utf-8", "backslashreplace").decode("utf-8")


class DocumentLoadError(ValueError):
    """A file could not be turned into a document; the message names the file and the reason."""

    def __init__(self, path: str, reason: str) -> None:
        self.path = printable(str(path))
        self.reason = printable(reason)
        super().__init__(f"{self.path}: {self.reason}")


@dataclass
class LoadFailure:
    path: str
    reason: str


@dataclass
class LoadReport:
    """Documents read from a source; a batch goes on past a bad file and lists it here."""

    documents: list[Document] = field(default_factory=list)
    failures: list[LoadFailure] = field(default_factory=list)

    def add_failure(self, err: DocumentLoadError) -> None:
        self.failures.append(LoadFailure(err.path, err.reason))

    def add(self, item: Document | LoadFailure) -> None:
        """A streamed loader's item: a document, or the failure in its place."""
        if isinstance(item, LoadFailure):
            self.failures.append(item)
        else:
            self.documents.append(item)

    def extend(self, other: LoadReport) -> None:
        self.documents.extend(other.documents)
        self.failures.extend(other.failures)

    def summary(self) -> str:
        lines = [f"loaded {len(self.documents)} document(s), {len(self.failures)} failure(s)"]
        lines += [f"  FAILED {f.path}: {f.reason}" for f in self.failures]
        return "\n".join(lines)


def read_json(path: str | Path, what: str, encoding: str = "utf-8") -> Any:
    """Parse a JSON file; a missing, unreadable or malformed file raises ``DocumentLoadError``
    naming the file, what it should be (``what``: "key file", "FUNSD file", ...) and why."""
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding=encoding))
    except FileNotFoundError:
        raise DocumentLoadError(str(path), f"{what} is missing") from None
    except (OSError, UnicodeDecodeError) as e:
        raise DocumentLoadError(str(path), f"cannot read {what} ({e})") from None
    except json.JSONDecodeError as e:
        raise DocumentLoadError(str(path), f"{what} is not valid JSON ({e.msg}, "
                                           f"line {e.lineno})") from None


ALLOW_PARTIAL_HELP = ("exit 0 even when some files or documents failed, as long as one "
                      "succeeded (by default any failure makes the exit status 1)")


def batch_status(n_failed: int, n_ok: int, allow_partial: bool = False) -> tuple[int, str | None]:
    """Exit status of a batch command and the line that explains it (``None`` when all went
    well): 1 when nothing succeeded or, unless ``allow_partial``, when anything failed."""
    if n_ok == 0:
        return 1, ("no document could be read" if n_failed else "the input holds no documents")
    if not n_failed:
        return 0, None
    if allow_partial:
        return 0, f"{n_failed} failure(s) accepted (--allow-partial)"
    return 1, (f"{n_failed} file(s) or document(s) failed: exit status 1 "
               "(--allow-partial accepts a partial batch)")
