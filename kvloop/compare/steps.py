"""Finished steps of a long experiment, on disk: what makes a run resumable.

A step is finished when its record ``DIR/<step>.json`` exists. The record is written last,
atomically (a temporary file renamed), after everything the step produced is complete, so a
killed run leaves either a finished step or none, and running again redoes only unfinished
steps. Each record keeps the settings the step was made with; asking for a finished step with
other settings is an error (``SettingsMismatch``) rather than a silently stale result.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any


class SettingsMismatch(RuntimeError):
    """A finished step was made with other settings."""


class StepCache:
    """Step records under ``folder`` (``name`` may contain ``/`` for sub-folders)."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)

    def path(self, name: str) -> Path:
        return self.folder / f"{name}.json"

    def get(self, name: str, settings: dict[str, Any]) -> dict[str, Any] | None:
        """The result of finished step ``name`` made with ``settings``; ``None`` if unfinished."""
        p = self.path(name)
        if not p.is_file():
            return None
        rec = json.loads(p.read_text(encoding="utf-8"))
        if rec["settings"] != json.loads(json.dumps(settings)):
            diff = {k: (rec["settings"].get(k), v) for k, v in settings.items()
                    if rec["settings"].get(k) != v}
            raise SettingsMismatch(f"{p}: made with other settings {diff} (finished, asked); "
                                   f"use another output folder or delete {p}")
        return rec["result"]

    def recorded(self, name: str) -> dict[str, Any] | None:
        """The result of finished step ``name`` as recorded, its settings not checked (for
        reports that read what a run did); ``None`` if unfinished."""
        p = self.path(name)
        return _result(p) if p.is_file() else None

    def recorded_matching(self, pattern: str) -> Iterator[tuple[Path, dict[str, Any]]]:
        """Each finished step whose record matches the glob ``pattern``, with its result."""
        for p in self.folder.glob(pattern):
            yield p, _result(p)

    def put(self, name: str, settings: dict[str, Any], result: dict[str, Any]) -> None:
        p = self.path(name)
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.with_suffix(".tmp")
        tmp.write_text(json.dumps({"settings": settings, "result": result}, indent=1,
                                  default=str), encoding="utf-8")
        tmp.rename(p)

    def drop(self, name: str) -> None:
        self.path(name).unlink(missing_ok=True)


def _result(p: Path) -> dict[str, Any]:
    return json.loads(p.read_text(encoding="utf-8")).get("result") or {}
