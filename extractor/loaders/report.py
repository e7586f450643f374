"""What a loader returns: the documents it read and, for every file it could not, why."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from extractor.document import Document


class DocumentLoadError(ValueError):
    """A file could not be turned into a document; the message names the file and the reason."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.reason = reason


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
