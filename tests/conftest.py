"""Shared fixtures: where the SROIE and CORD data live, and a place for test artifacts."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SROIE_DIR = Path(os.environ.get("KVLOOP_SROIE", REPO.parent / "shared" / "data" / "sroie"))
CORD_DIR = Path(os.environ.get("KVLOOP_CORD", REPO.parent / "shared" / "data" / "cord"))
ARTIFACTS = REPO / "test-artifacts"

# Single-threaded tesseract: several in parallel beat one with OpenMP threads on 2 cores.
os.environ.setdefault("OMP_THREAD_LIMIT", "1")
# Pages are read with one tesseract pass unless a test asks for engines by name
# (tests/test_ocr_engines.py, the PP-OCRv6 cases of tests/test_bad_input.py): fast, and what the
# other tests' expectations about words were written for.
os.environ.setdefault("KVLOOP_OCR_ENGINES", "psm6")


@pytest.fixture(scope="session")
def sroie_dir() -> Path:
    if not (SROIE_DIR / "key").is_dir():
        pytest.skip(f"SROIE sample not found at {SROIE_DIR} (set KVLOOP_SROIE)")
    return SROIE_DIR


@pytest.fixture(scope="session")
def cord_dir() -> Path:
    if not (CORD_DIR / "dev" / "json").is_dir():
        pytest.skip(f"CORD annotations not found at {CORD_DIR} (set KVLOOP_CORD)")
    return CORD_DIR


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


@pytest.fixture(scope="session")
def pg_server() -> Iterator[str]:
    """A throwaway PostgreSQL cluster on loopback for the whole session (its URL)."""
    from feedback_ui.store import pgtemp

    reason = pgtemp.pg_available()
    if reason:
        pytest.skip(reason)
    with pgtemp.temporary_cluster() as url:
        yield url
