"""The workspace catalog: the ``_engine`` metadata tables in one SQLite file, in WAL mode.

Owns the connection to that file (one writer, many readers across processes: a reader never waits
for a writer nor holds one up), the mapping of SQLite failures to the engine's errors, and how a
timestamp is stored (ISO-8601 UTC text, microseconds). Must not touch user tables or know what the
metadata means: ``engine.state.metadata`` and ``engine.state.model_index`` own the SQL.

The main connection is an empty in-memory database and the catalog file is attached to it
``AS _engine``, so statements name tables ``_engine.<table>`` whatever the file is called.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from engine.errors import EngineError, LockedError, StorageIOError, UsageError

SCHEMA = "_engine"
BUSY_TIMEOUT_S = 5.0

# Primary SQLite result codes (https://sqlite.org/rescode.html) the engine reports as its own errors.
_BUSY, _LOCKED, _READONLY, _IOERR, _CORRUPT, _FULL, _CANTOPEN, _NOTADB = 5, 6, 8, 10, 11, 13, 14, 26


# --- timestamps ------------------------------------------------------------------------------------


def utc_text(value: object) -> str | None:
    """A time as the catalog stores it: ISO-8601 UTC text with microseconds; None stays None.

    Accepts a ``datetime`` (a pandas ``Timestamp`` is one; naive means UTC, DESIGN §3 Time), ISO
    text, or None / NaT.

    >>> from datetime import timedelta
    >>> utc_text(datetime(2026, 12, 3, 12, 2, 21, tzinfo=timezone(timedelta(hours=1))))
    '2026-12-03T11:02:21.000000+00:00'
    >>> utc_text("2026-12-03 11:02:21.123456"), utc_text(None)
    ('2026-12-03T11:02:21.123456+00:00', None)
    """
    if value is None or type(value).__name__ == "NaTType":
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if not isinstance(value, datetime):
        raise TypeError(f"a timestamp must be a datetime or ISO text, not {type(value).__name__}")
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc).isoformat(timespec="microseconds")


def utc_datetime(value: object) -> datetime | None:
    """A stored time back as an aware ``datetime`` in UTC; None stays None.

    >>> utc_datetime("2026-12-03T11:02:21.123456+00:00")
    datetime.datetime(2026, 12, 3, 11, 2, 21, 123456, tzinfo=datetime.timezone.utc)
    """
    text = utc_text(value)
    return None if text is None else datetime.fromisoformat(text)


def now_text() -> str:
    """The current time as the catalog stores it."""
    return utc_text(datetime.now(timezone.utc)) or ""


def _greatest(*values: object) -> object:
    """DuckDB's ``greatest``: the largest argument that is not NULL (NULL when all are)."""
    present = [v for v in values if v is not None]
    return max(present) if present else None


# --- the catalog -----------------------------------------------------------------------------------


class SqliteCatalog:
    """The ``Catalog`` protocol (``engine.backends.base``) on a SQLite file in WAL mode.

    ``open`` is the writer (creates the file); ``open_read_only`` a reader that sees the last
    committed state and can write nothing; ``in_memory`` a private catalog for tests. SQL may call
    ``now()`` (the transaction's start time, as stored text) and ``greatest(a, b, …)`` (NULLs
    ignored), as on DuckDB. Usable from another thread (a watchdog may ``interrupt`` or ``close``).
    """

    def __init__(self, con: sqlite3.Connection, path: Path | None, *, read_only: bool) -> None:
        self._con = con
        self.path = path
        self.read_only = read_only
        self._depth = 0
        self._stamp: str | None = None  # now() inside a transaction: its start, as DuckDB does
        self._closed = False
        con.create_function("now", 0, self._now)
        con.create_function("greatest", -1, _greatest, deterministic=True)

    # --- opening ---------------------------------------------------------------------------------

    @classmethod
    def open(cls, path: str | Path, *, busy_timeout_s: float = BUSY_TIMEOUT_S) -> "SqliteCatalog":
        """The read-write catalog at ``path`` (created if missing), in WAL mode.

        A write waits up to ``busy_timeout_s`` for another writer, then raises ``LockedError``.
        """
        path = Path(path)
        con = _connect(busy_timeout_s)
        with _closing_on_error(con), _translated(path, read_only=False):
            con.execute(f"ATTACH DATABASE ? AS {SCHEMA}", [_uri(path, "rwc")])
            con.execute(f"PRAGMA {SCHEMA}.journal_mode = WAL")
        return cls(con, path, read_only=False)

    @classmethod
    def open_read_only(cls, path: str | Path, *, busy_timeout_s: float = BUSY_TIMEOUT_S) -> "SqliteCatalog":
        """A reader of the catalog at ``path``: the last committed state, never blocked by a writer.

        Raises ``UsageError`` when there is no catalog yet (nothing was ever applied).
        """
        path = Path(path)
        if not path.is_file():
            raise UsageError(f"no workspace catalog at {path}: run `engine apply` first")
        con = _connect(busy_timeout_s)
        with _closing_on_error(con), _translated(path, read_only=True):
            con.execute(f"ATTACH DATABASE ? AS {SCHEMA}", [_uri(path, "ro")])
            con.execute("PRAGMA query_only = ON")
            con.execute(f"SELECT count(*) FROM {SCHEMA}.sqlite_master").fetchall()  # reads the header now
        return cls(con, path, read_only=True)

    @classmethod
    def in_memory(cls) -> "SqliteCatalog":
        """A private, empty catalog that disappears on close."""
        con = _connect(BUSY_TIMEOUT_S)
        con.execute(f"ATTACH DATABASE ':memory:' AS {SCHEMA}")
        return cls(con, None, read_only=False)

    def close(self) -> None:
        """Close the connection (again: nothing). An open transaction is rolled back."""
        if not self._closed:
            self._closed = True
            self._con.close()

    def interrupt(self) -> None:
        """Abort the statement running on this connection (from any thread)."""
        if not self._closed:
            self._con.interrupt()

    def __enter__(self) -> "SqliteCatalog":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- the Catalog protocol --------------------------------------------------------------------

    def query(self, sql: str, params: Sequence[object] = ()) -> list[tuple]:
        with self._guard():
            return self._con.execute(sql, list(params)).fetchall()

    def query_dicts(self, sql: str, params: Sequence[object] = ()) -> list[dict[str, Any]]:
        with self._guard():
            cursor = self._con.execute(sql, list(params))
            names = [d[0] for d in cursor.description]
            return [dict(zip(names, row)) for row in cursor.fetchall()]

    def execute(self, sql: str, params: Sequence[object] = ()) -> int:
        """Run one statement; the number of rows it changed (0 for DDL)."""
        with self._guard():
            return max(self._con.execute(sql, list(params)).rowcount, 0)

    def has_table(self, schema: str, name: str) -> bool:
        if schema != SCHEMA:
            return False
        return bool(self.query(f"SELECT count(*) FROM {SCHEMA}.sqlite_master WHERE type = 'table' AND name = ?", [name])[0][0])

    @property
    def in_transaction(self) -> bool:
        """Inside a ``transaction()`` block (at any depth)."""
        return self._depth > 0

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """BEGIN IMMEDIATE … COMMIT, or ROLLBACK on any exception. Nested blocks join the outer one.

        The writer takes the write lock at BEGIN (waiting up to the busy timeout, then
        ``LockedError``), so a transaction never fails half-way for want of it. On a read-only
        catalog the block is a plain BEGIN: one consistent snapshot for every read in it.
        """
        if self._depth:
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
            return
        with self._guard():
            self._con.execute("BEGIN" if self.read_only else "BEGIN IMMEDIATE")
        self._depth, self._stamp = 1, now_text()
        try:
            yield
            with self._guard():
                self._con.execute("COMMIT")
        except BaseException:
            self._rollback()
            raise
        finally:
            self._depth, self._stamp = 0, None

    # --- helpers ---------------------------------------------------------------------------------

    def _rollback(self) -> None:
        # A COMMIT that failed (disk full) may have ended the transaction already: "cannot rollback
        # - no transaction is active" must not hide why it failed.
        if not self._closed and self._con.in_transaction:
            try:
                self._con.execute("ROLLBACK")
            except sqlite3.Error:  # noqa: S110
                pass

    def _now(self) -> str:
        return self._stamp or now_text()

    def _guard(self) -> AbstractContextManager[None]:
        return _translated(self.path, read_only=self.read_only)


def _connect(busy_timeout_s: float) -> sqlite3.Connection:
    """An empty in-memory main database; autocommit outside explicit transactions (``BEGIN``)."""
    return sqlite3.connect(":memory:", timeout=busy_timeout_s, isolation_level=None, check_same_thread=False, uri=True)


@contextmanager
def _closing_on_error(con: sqlite3.Connection) -> Iterator[None]:
    try:
        yield
    except BaseException:
        con.close()
        raise


def _uri(path: Path, mode: str) -> str:
    return f"{path.absolute().as_uri()}?mode={mode}"


@contextmanager
def _translated(path: Path | None, *, read_only: bool) -> Iterator[None]:
    """SQLite failures of the file itself as the engine's errors; any other error unchanged."""
    try:
        yield
    except sqlite3.Error as exc:
        error = storage_error(exc, path, read_only=read_only)
        if error is None:
            raise
        raise error from exc


def storage_error(exc: sqlite3.Error, path: Path | None, *, read_only: bool) -> EngineError | None:
    """``LockedError`` (exit 75) for a catalog another process holds, ``StorageIOError`` (exit 74)
    for one that cannot be read or written; None for anything else (a bug, an interrupt)."""
    code = (getattr(exc, "sqlite_errorcode", None) or 0) & 0xFF
    where = str(path) if path is not None else "(in memory)"
    text = str(exc)
    if code in (_BUSY, _LOCKED):
        return LockedError(f"the workspace catalog {where} is in use by another engine process ({text}); try again when it has finished")
    if code in (_NOTADB, _CORRUPT):
        return StorageIOError(
            f"the workspace catalog {where} is damaged or is not an engine catalog ({text}): "
            "restore it from a backup, or move it aside and `engine apply` again to start afresh"
        )
    if code == _FULL:
        return StorageIOError(f"cannot write the workspace catalog {where}: the disk is full ({text}); free space and try again")
    if code in (_IOERR, _CANTOPEN) or (code == _READONLY and not read_only):
        return StorageIOError(
            f"cannot {'read' if read_only else 'write'} the workspace catalog {where} ({text}): "
            "check that the file and its directory exist, are writable and the disk is healthy"
        )
    return None
