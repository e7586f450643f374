"""Finished steps of a long experiment, on disk: what makes a run resumable.

A step is finished when its record ``DIR/<step>.json`` exists. The record is written last,
atomically (a temporary file renamed), after everything the step produced is complete, so a
killed run leaves either a finished step or none, and running again redoes only unfinished
steps. Each record keeps the settings the step was made with; asking for a finished step with
other settings is an error (``SettingsMismatch``) rather than a silently stale result.
"""

from __future__ import annotations

import json
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

    def put(self, name: str, settings: dict[str, Any], result: dict[str, Any]) -> None:
        p = self.path(name)
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.with_suffix(".tmp")
        tmp.write_text(json.dumps({"settings": settings, "result": result}, indent=1,
                                  default=str), encoding="utf-8")
        tmp.rename(p)

    def drop(self, name: str) -> None:
        self.path(name).unlink(missing_ok=True)
