"""A throwaway PostgreSQL cluster on a loopback port (tests and benchmarks of the store).

``initdb`` refuses to run as root, so as root the cluster runs as the ``postgres`` user
through ``runuser``. Connections go over TCP to 127.0.0.1 with trust auth (loopback only).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

PG_BIN = Path(os.environ.get("KVLOOP_PG_BIN", "/usr/lib/postgresql/15/bin"))


def pg_available() -> str | None:
    """``None`` if a cluster can be started here, else the reason it cannot."""
    for tool in ("initdb", "pg_ctl"):
        if not (PG_BIN / tool).exists():
            return f"PostgreSQL binaries not found: {PG_BIN / tool} (install Debian's postgresql)"
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        return "running as root and runuser is missing"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _run(cmd: list[str], user: str | None) -> None:
    if user:
        cmd = ["runuser", "-u", user, "--", *cmd]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}): "
                           f"{proc.stderr.strip() or proc.stdout.strip()}")


@contextmanager
def temporary_cluster() -> Iterator[str]:
    """Start a cluster in a new temp folder; yields an SQLAlchemy URL of its ``postgres`` db.

    The folder sits directly in the system temp dir (pytest's tmp dirs are private to root, so
    the ``postgres`` user could not reach them) and is removed afterwards.
    """
    reason = pg_available()
    if reason:
        raise RuntimeError(reason)
    user = "postgres" if os.geteuid() == 0 else None
    root = Path(tempfile.mkdtemp(prefix="kvloop-pg-"))
    data, sock = root / "pgdata", root / "sock"
    sock.mkdir()
    if user:
        shutil.chown(root, user)
        shutil.chown(sock, user)
    port = _free_port()
    _run([str(PG_BIN / "initdb"), "-D", str(data), "-U", "kvloop", "--auth=trust",
          "-E", "UTF8", "--no-sync"], user)
    opts = (f"-c listen_addresses=127.0.0.1 -p {port} -c unix_socket_directories={sock} "
            "-c fsync=off -c max_connections=50")
    _run([str(PG_BIN / "pg_ctl"), "-D", str(data), "-o", opts, "-l", str(root / "pg.log"),
          "-w", "-t", "60", "start"], user)
    try:
        yield f"postgresql+psycopg://kvloop@127.0.0.1:{port}/postgres"
    finally:
        _run([str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"], user)
        shutil.rmtree(root, ignore_errors=True)


def create_database(server_url: str, name: str) -> str:
    """Create an empty database ``name`` on the cluster; returns its URL."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    if not name.replace("_", "").isalnum():
        raise ValueError(f"database name must be alphanumeric/underscore, got {name!r}")
    engine = create_engine(server_url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        engine.dispose()
    return make_url(server_url).set(database=name).render_as_string(hide_password=False)
