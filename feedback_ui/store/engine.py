"""Engines for the feedback store: SQLite (WAL, busy timeout) by default, any SQLAlchemy URL.

SQLite needs two things for several operator processes writing at once: WAL (readers never
block the writer) and ``BEGIN IMMEDIATE`` for write transactions, so a writer takes the lock
up front and waits (busy timeout) instead of failing when it upgrades a read lock.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url

BUSY_TIMEOUT_S = 30.0
WRITE = {"kvloop_write": True}
"""Execution options for a write transaction (``BEGIN IMMEDIATE`` on SQLite)."""


def normalize_url(url: str | Path) -> str:
    """Accept a plain file path or an SQLAlchemy URL; pick psycopg 3 for ``postgresql://``."""
    url = str(url)
    if "://" not in url:
        return f"sqlite:///{Path(url).expanduser().resolve()}"
    u = make_url(url)
    if u.drivername == "postgresql":
        u = u.set(drivername="postgresql+psycopg")
    return u.render_as_string(hide_password=False)


def make_engine(url: str | Path, **kwargs: Any) -> Engine:
    """An engine for ``url`` with the SQLite pragmas and transaction mode the store relies on."""
    url = normalize_url(url)
    if not url.startswith("sqlite"):
        return create_engine(url, pool_pre_ping=True, **kwargs)
    path = make_url(url).database
    if path and path != ":memory:":
        parent = Path(path).parent
        if not parent.is_dir():
            raise FileNotFoundError(f"store {url}: folder {parent} does not exist")
    engine = create_engine(url, connect_args={"timeout": BUSY_TIMEOUT_S,
                                              "check_same_thread": False}, **kwargs)
    _sqlite_events(engine)
    return engine


def _sqlite_events(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy (not the sqlite3 module) decide when transactions begin.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_S * 1000)}")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Any) -> None:
        write = conn.get_execution_options().get("kvloop_write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"
