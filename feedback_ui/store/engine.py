"""Engines for the feedback store: SQLite (WAL, busy timeout) by default, any SQLAlchemy URL.

SQLite needs two things for several operator processes writing at once: WAL (readers never
block the writer) and ``BEGIN IMMEDIATE`` for write transactions, so a writer takes the lock
up front and waits (busy timeout) instead of failing when it upgrades a read lock.

Values always reach the database as bound parameters. PostgreSQL text cannot hold NUL
(``\\x00``); its engine checks the parameters first and names the one at fault (psycopg's
own error would quote the whole statement and every parameter, pages included).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url

from feedback_ui.store.errors import UnstorableValueError

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
        engine = create_engine(url, pool_pre_ping=True, **kwargs)
        if engine.dialect.name == "postgresql":
            event.listen(engine, "before_cursor_execute", _refuse_nul)
        return engine
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


def _refuse_nul(_conn: Any, _cursor: Any, _statement: str, parameters: Any, _context: Any,
                executemany: bool) -> None:
    rows = parameters if executemany else [parameters]
    for row in rows or ():
        items = row.items() if isinstance(row, dict) else enumerate(row or ())
        for key, value in items:
            if isinstance(value, str) and "\x00" in value:
                raise UnstorableValueError(
                    f"PostgreSQL text cannot hold the NUL character (\\x00): parameter "
                    f"{key!r} = {value[:60]!r}; nothing was written, remove the character")


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"
