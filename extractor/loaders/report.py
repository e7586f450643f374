"""What a loader returns: the documents it read and, for every file it could not, why."""

from __future__ import annotations

from dataclasses import dataclass, field

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
