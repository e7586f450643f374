"""Back a whole store up to one JSONL file and restore it: every row of every table, ids kept.

``kvloop store export --kind backup`` / ``kvloop store import``. The file (``.gz``: gzipped)::

    {"kvloop_store_backup": 1, "schema_revision": "0003"}      # header
    {"table": "documents", "row": {"id": "r001", ...}}          # tables in dependency order,
    ...                                                         # rows by primary key
    {"end": {"documents": 12, "extractions": 12, ...}}          # rows per table

Datetimes are ISO 8601 in UTC, JSON columns are JSON, everything else is written as it is
stored, so a restore gives the same rows (ids included: undos and actions point at saves by
id). The export reads one snapshot. The restore takes an empty database, builds the schema of
the backup's revision, inserts the rows and migrates them to the newest revision, all in one
transaction: a bad line, a file cut short (no ``end`` line) or a count that does not match
leaves the database as it was.
"""

from __future__ import annotations

import gzip
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any, cast

from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, DateTime, MetaData, Table, func, inspect, select, text
from sqlalchemy.exc import DBAPIError

from feedback_ui.store import migrate
from feedback_ui.store.clock import as_utc
from feedback_ui.store.engine import WRITE, make_engine
from feedback_ui.store.errors import StoreError
from feedback_ui.store.models import Base
from feedback_ui.store.store import FeedbackStore

FORMAT = 1
TABLES: tuple[str, ...] = ("documents", "extractions", "saves", "actions", "leases",
                           "lease_events")
"""Every table, parents first (a restore inserts in this order)."""
_CHUNK = 500


class BackupError(StoreError):
    """A backup file that cannot be restored, or a store it cannot be restored into."""


@dataclass
class BackupReport:
    """Rows per table written or restored, and the schema revision of the backup."""

    path: Path
    schema_revision: str
    rows: dict[str, int] = field(default_factory=dict)

    def summary(self, verb: str) -> str:
        counts = ", ".join(f"{n} {t}" for t, n in self.rows.items())
        return f"{verb} {sum(self.rows.values())} row(s) ({counts}); schema {self.schema_revision}"


@contextmanager
def _open(path: Path, mode: str, gz: bool) -> Iterator[IO[str]]:
    if gz:
        with gzip.open(path, mode + "t", encoding="utf-8") as zipped:
            yield cast(IO[str], zipped)  # text mode: str lines
    else:
        with open(path, mode, encoding="utf-8") as fh:
            yield fh


def _dump(table: Table, row: Any) -> dict[str, Any]:
    out = {}
    for col in table.columns:
        v = row._mapping[col.name]
        out[col.name] = as_utc(v).isoformat() if isinstance(v, datetime) else v
    return out


def export_backup(store: FeedbackStore, path: str | Path) -> BackupReport:
    """Write every row of ``store`` to ``path`` (written beside, then renamed into place)."""
    path = Path(path)
    tables = Base.metadata.tables
    assert set(tables) == set(TABLES), f"backup does not list tables {set(tables) ^ set(TABLES)}"
    report = BackupReport(path, store.schema_revision)
    part = path.with_name(path.name + ".part")
    # One snapshot for all tables: REPEATABLE READ on PostgreSQL; on SQLite (WAL) a read
    # transaction sees the database as of its first read.
    pg = store.engine.dialect.name == "postgresql"
    opts = {"isolation_level": "REPEATABLE READ"} if pg else {}
    try:
        with store.engine.connect().execution_options(**opts) as conn, conn.begin(), \
                _open(part, "w", gz=path.suffix == ".gz") as fh:
            fh.write(json.dumps({"kvloop_store_backup": FORMAT,
                                 "schema_revision": store.schema_revision}) + "\n")
            for name in TABLES:
                t = tables[name]
                q = select(t).order_by(*t.primary_key.columns).execution_options(yield_per=_CHUNK)
                n = 0
                for row in conn.execute(q):
                    fh.write(json.dumps({"table": name, "row": _dump(t, row)},
                                        ensure_ascii=False) + "\n")
                    n += 1
                report.rows[name] = n
            fh.write(json.dumps({"end": report.rows}) + "\n")
    except BaseException:
        part.unlink(missing_ok=True)  # never leave half a backup behind
        raise
    os.replace(part, path)
    return report


# -- restore ---------------------------------------------------------------------------------

def _revisions() -> list[str]:
    """Every revision the store ships, oldest first."""
    script = ScriptDirectory.from_config(migrate.alembic_config())
    return [s.revision for s in reversed(list(script.walk_revisions()))]


def _header(path: Path, line: str) -> str:
    try:
        head = json.loads(line)
    except json.JSONDecodeError:
        head = None
    if not isinstance(head, dict) or head.get("kvloop_store_backup") != FORMAT:
        raise BackupError(f"{path} line 1: not a kvloop store backup (made by `kvloop store "
                          "export --kind backup`)")
    rev = head.get("schema_revision")
    known = _revisions()
    if rev not in known:
        raise BackupError(f"{path}: schema revision {rev!r} is unknown to this kvloop (it knows "
                          f"{', '.join(known)}); restore it with the kvloop that made it")
    return str(rev)


def _require_empty(conn: Connection, url: str) -> None:
    names = set(inspect(conn).get_table_names()) & set(TABLES)
    full = {n: c for n in sorted(names)
            if (c := conn.scalar(select(func.count()).select_from(Table(n, MetaData()))))}
    if full:
        counts = ", ".join(f"{n} {t}" for t, n in full.items())
        raise BackupError(f"store {url} already holds rows ({counts}); restore a backup into "
                          "a new, empty store")


def _load(table: Table, row: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for col in table.columns:
        v = row.get(col.name)
        if v is not None and isinstance(col.type, DateTime):
            v = datetime.fromisoformat(v)
        out[col.name] = v
    return out


class _Reader:
    """The data lines of a backup, checked: known table and columns, dependency order."""

    def __init__(self, path: Path, tables: dict[str, Table]) -> None:
        self.path, self.tables = path, tables
        self.rows: dict[str, int] = {}
        self.end: dict[str, int] | None = None

    def fail(self, lineno: int, why: str) -> BackupError:
        return BackupError(f"{self.path} line {lineno}: {why}")

    def records(self, lines: Iterator[tuple[int, str]]
                ) -> Iterator[tuple[int, str, dict[str, Any]]]:
        order = 0
        for lineno, line in lines:
            if self.end is not None:
                raise self.fail(lineno, "data after the end line")
            try:
                d = json.loads(line)
            except json.JSONDecodeError as e:
                raise self.fail(lineno, f"not valid JSON ({e.msg})") from e
            if not isinstance(d, dict):
                raise self.fail(lineno, f"not a backup record: {line[:80]!r}")
            if "end" in d:
                end = d["end"]
                if not isinstance(end, dict) or not all(isinstance(n, int) for n in end.values()):
                    raise self.fail(lineno, "the end line must count rows per table: "
                                            f"{line[:80]!r}")
                self.end = end
                continue
            name, row = d.get("table"), d.get("row")
            if name not in self.tables or not isinstance(row, dict):
                raise self.fail(lineno, f"not a row of a store table: {line[:80]!r}")
            if TABLES.index(name) < order:
                raise self.fail(lineno, f"a {name} row after {TABLES[order]} rows (the file "
                                        "lists tables parents first)")
            order = TABLES.index(name)
            unknown = set(row) - set(self.tables[name].columns.keys())
            if unknown:
                raise self.fail(lineno, f"{name} has no column(s) {sorted(unknown)}")
            self.rows[name] = self.rows.get(name, 0) + 1
            try:
                yield lineno, name, _load(self.tables[name], row)
            except (TypeError, ValueError) as e:
                raise self.fail(lineno, f"{name}: {e}") from e


def _insert(conn: Connection, reader: _Reader, lines: Iterator[tuple[int, str]]) -> None:
    """Insert the rows ``lines`` hold, ``_CHUNK`` at a time; a chunk the database refuses (a
    row pointing at one that is not there, a duplicate id) is named by its lines."""
    batch: list[dict[str, Any]] = []
    name, first, last = "", 0, 0

    def flush() -> None:
        if not batch:
            return
        try:
            conn.execute(reader.tables[name].insert(), batch)
        except DBAPIError as e:
            raise BackupError(f"{reader.path} lines {first}-{last}: the {name} rows break the "
                              f"store's rules ({str(e.orig).strip()}); nothing restored") from e
        batch.clear()

    for lineno, table, row in reader.records(lines):
        if table != name or len(batch) >= _CHUNK:
            flush()
            name, first = table, lineno
        batch.append(row)
        last = lineno
    flush()


def reset_sequences(conn: Connection) -> None:
    """After rows were inserted with their ids: move PostgreSQL's id sequences past them
    (SQLite takes max(id) + 1 by itself)."""
    if conn.dialect.name != "postgresql":
        return
    present = set(inspect(conn).get_table_names())
    for name in (t for t in TABLES if t in present):
        t = Base.metadata.tables[name]
        pk = list(t.primary_key.columns)
        if len(pk) == 1 and pk[0].autoincrement is True:
            conn.execute(text(f"SELECT setval(pg_get_serial_sequence('{name}', '{pk[0].name}'), "
                              f"COALESCE((SELECT MAX({pk[0].name}) FROM {name}), 0) + 1, false)"))


def import_backup(url: str | Path, path: str | Path) -> BackupReport:
    """Restore the backup at ``path`` into the empty store at ``url`` (migrated to the newest
    revision); nothing is written unless every line is good and the counts match."""
    path = Path(path)
    if not path.is_file():
        raise BackupError(f"{path}: no such backup file")
    engine = make_engine(url)
    try:
        with _open(path, "r", gz=path.suffix == ".gz") as fh, \
                engine.connect().execution_options(**WRITE) as conn, conn.begin():
            lines = ((i, ln) for i, ln in enumerate(fh, 1) if ln.strip())
            first = next(lines, None)
            if first is None:
                raise BackupError(f"{path}: the file is empty")
            rev = _header(path, first[1])
            migrate.lock(conn)
            _require_empty(conn, str(url))
            cfg = migrate.alembic_config()
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, "base")  # the tables are empty: build them at `rev`
            command.upgrade(cfg, rev)
            meta = MetaData()
            meta.reflect(conn, only=[t for t in TABLES if t in inspect(conn).get_table_names()])
            reader = _Reader(path, dict(meta.tables))
            _insert(conn, reader, lines)
            if reader.end is None:
                raise BackupError(f"{path}: the file is cut short (no end line); nothing "
                                  "restored")
            got = {t: reader.rows.get(t, 0) for t in reader.end}
            if got != reader.end or set(reader.rows) - set(reader.end):
                raise BackupError(f"{path}: the end line counts {reader.end} rows but the file "
                                  f"holds {reader.rows}; nothing restored")
            command.upgrade(cfg, "head")
            reset_sequences(conn)
    except UnicodeDecodeError as e:
        raise BackupError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from e
    except (OSError, EOFError) as e:  # gzip: a truncated or corrupt archive
        raise BackupError(f"{path}: cannot read ({e})") from e
    finally:
        engine.dispose()
    return BackupReport(path, rev, {t: reader.rows.get(t, 0) for t in TABLES
                                    if t in reader.tables})
