"""Bring a store's schema to the newest revision (Alembic, shipped inside the package).

Runs when a store is opened. Several processes may open a new store at once, so the upgrade
runs under a lock: ``BEGIN IMMEDIATE`` on SQLite, an advisory transaction lock on PostgreSQL.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, text

from feedback_ui.store.engine import WRITE

MIGRATIONS = Path(__file__).with_name("migrations")
_PG_LOCK_KEY = 0x6B766C6F6F70  # "kvloop": any fixed key shared by every store process


def alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None, "the store ships no migration"
    return head


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def lock(conn: Connection) -> None:
    """Serialise schema changes: on PostgreSQL an advisory lock held until the transaction
    ends (on SQLite the caller's ``BEGIN IMMEDIATE`` already excludes other writers)."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_LOCK_KEY})


def upgrade(engine: Engine) -> str:
    """Upgrade ``engine``'s database to the head revision; returns that revision."""
    head = head_revision()
    if current_revision(engine) == head:
        return head
    cfg = alembic_config()
    with engine.connect().execution_options(**WRITE) as conn, conn.begin():
        lock(conn)
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
    return head
