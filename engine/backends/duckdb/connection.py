"""DuckDB connections (UTC session, optional sandbox) and bounded statement execution; no feature-store logic.

Never imported by ``engine validate``. The sandbox (RELIABILITY V2-V5, R4): once
``enable_external_access=false`` and ``lock_configuration=true`` are set, SQL on the connection
cannot read or write files, attach databases, install or load extensions, or change settings —
while the engine's own tables stay readable and writable. Settings are per database instance (V5):
every connection of the process to the same file shares them.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING

from engine.errors import ExecutionError, InternalError, is_storage_failure  # noqa: F401 (re-exported)

if TYPE_CHECKING:
    import duckdb


def connect(
    path: str | Path | None,
    *,
    sandboxed: bool,
    memory_limit: str | None = None,
    threads: int | None = None,
    temp_directory: Path | None = None,
) -> duckdb.DuckDBPyConnection:
    """Open a DuckDB connection whose session runs in UTC; lock it down when ``sandboxed``.

    ``path=None`` opens an in-memory database. Resource settings and the spill directory are
    applied before the configuration is locked (afterwards they cannot change, V3). Spilling to
    ``temp_directory`` keeps working with external access disabled.
    """
    con = _open(path, read_only=False)
    try:
        if _setting(con, "lock_configuration"):
            # Another connection of this process already locked this database instance (V5).
            if sandboxed and not _setting(con, "enable_external_access") and _tz_is_utc(con):
                return con
            raise InternalError(
                f"database {path} is already open in this process with a locked configuration; "
                "close every connection to it before reopening it unsandboxed"
            )
        # GLOBAL so that cursors and later connections of the instance are UTC too: after the
        # lock they could not set it themselves, and would inherit the process TZ.
        statements: list[str] = ["SET GLOBAL TimeZone = 'UTC'", "SET TimeZone = 'UTC'"]
        if memory_limit is not None:
            statements.append(f"SET memory_limit = {_literal(memory_limit)}")
        if threads is not None:
            statements.append(f"SET threads = {int(threads)}")
        if temp_directory is not None:
            statements.append(f"SET temp_directory = {_literal(str(temp_directory))}")
        for statement in statements:
            con.execute(statement)
        if sandboxed:
            lock_down(con)
    except BaseException:
        con.close()
        raise
    return con


def lock_down(con: duckdb.DuckDBPyConnection) -> None:
    """The sandbox, irreversibly (V2, V3): no files, network, extensions or setting changes.

    Order matters: a temp_directory must be set before external access is disabled, and
    lock_configuration comes last (it freezes every other setting).
    """
    for statement in (
        "SET enable_external_access = false",
        "SET autoinstall_known_extensions = false",
        "SET autoload_known_extensions = false",
        "SET allow_community_extensions = false",
        "SET lock_configuration = true",
    ):
        con.execute(statement)


def run_sql(
    con: duckdb.DuckDBPyConnection,
    sql: str,
    *,
    timeout_s: float | None,
    params: list | None = None,
    select_only: bool = False,
) -> duckdb.DuckDBPyConnection:
    """Execute exactly one statement, interrupting it after ``timeout_s`` seconds (V11).

    DuckDB has no statement timeout, so a timer calls ``con.interrupt()``. With ``select_only``
    the statement must be a SELECT by DuckDB's own parser (V17): a second layer behind the gate.
    Every DuckDB failure becomes an ``ExecutionError`` carrying DuckDB's first message line.
    """
    import duckdb

    try:
        statements = con.extract_statements(sql)
    except duckdb.Error as exc:
        raise ExecutionError(f"SQL does not parse: {_first_line(exc)}") from exc
    if len(statements) != 1:
        raise ExecutionError(f"exactly one SQL statement expected (found {len(statements)})")
    if select_only and statements[0].type != duckdb.StatementType.SELECT:
        kind = statements[0].type.name
        raise ExecutionError(f"only SELECT is allowed (found {kind})")

    guard = _Deadline(con, timeout_s)
    _RUNNING.add(con)
    try:
        with guard:
            return con.execute(sql, params) if params is not None else con.execute(sql)
    except duckdb.InterruptException as exc:
        if guard.fired:
            raise ExecutionError(f"SQL timed out after {_seconds(timeout_s)}s") from exc
        from engine import interrupts

        interrupts.request()  # not our timer: the user pressed Ctrl-C
        raise ExecutionError("SQL was interrupted") from exc
    except duckdb.OutOfMemoryException as exc:
        raise ExecutionError(f"SQL exceeded the memory limit: {_first_line(exc)}") from exc
    except duckdb.PermissionException as exc:
        raise ExecutionError(f"SQL refused by the sandbox: {_first_line(exc)}") from exc
    except duckdb.Error as exc:
        raise ExecutionError(_first_line(exc)) from exc
    finally:
        _RUNNING.discard(con)


_RUNNING: set = set()  # connections inside run_sql, so a stop request can interrupt them


def interrupt_running() -> None:
    """Interrupt every statement run_sql is executing (called from a watcher thread on SIGTERM/SIGINT)."""
    for con in list(_RUNNING):
        try:
            con.interrupt()
        except Exception:  # already finished or closed
            pass


class _Deadline:
    """Interrupt a connection's running statement after a delay, never after it has finished."""

    def __init__(self, con: duckdb.DuckDBPyConnection, timeout_s: float | None) -> None:
        self._con = con
        self._timeout_s = timeout_s
        self._lock = threading.Lock()
        self._done = False
        self._timer: threading.Timer | None = None
        self.fired = False

    def _fire(self) -> None:
        with self._lock:
            if self._done:
                return
            self.fired = True
            self._con.interrupt()

    def __enter__(self) -> _Deadline:
        if self._timeout_s is not None:
            self._timer = threading.Timer(self._timeout_s, self._fire)
            self._timer.daemon = True
            self._timer.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        with self._lock:
            self._done = True
        if self._timer is not None:
            self._timer.cancel()


def _setting(con: duckdb.DuckDBPyConnection, name: str) -> object:
    row = con.execute("SELECT current_setting(?)", [name]).fetchone()
    value = row[0] if row else None
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    return value


def _tz_is_utc(con: duckdb.DuckDBPyConnection) -> bool:
    return str(_setting(con, "TimeZone")).upper() in ("UTC", "ETC/UTC")


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _seconds(timeout_s: float | None) -> str:
    if timeout_s is None:
        return "?"
    return str(int(timeout_s)) if float(timeout_s).is_integer() else f"{timeout_s:g}"


def _open(path: str | Path | None, *, read_only: bool) -> duckdb.DuckDBPyConnection:
    """duckdb.connect, with open failures turned into what the user can act on (V7, G7)."""
    import duckdb

    from engine.errors import LockedError, StorageIOError

    if path is None:
        return duckdb.connect(":memory:")
    try:
        return duckdb.connect(str(path), read_only=read_only)
    except duckdb.Error as exc:
        text = _first_line(exc)
        if "lock" in text.lower():
            raise LockedError(f"the workspace database is in use by another engine process ({text})") from exc
        if "WAL" in text:
            raise StorageIOError(
                f"cannot open the workspace database {path}: its write-ahead log is damaged ({text}). "
                "`engine recover PATH --discard-wal` sets the log aside (it is kept, not deleted) and returns "
                "to the last checkpoint; the next apply rebuilds what the log held"
            ) from exc
        raise StorageIOError(f"cannot open the workspace database {path}: {text}") from exc


def wal_path(path: str | Path) -> Path:
    return Path(f"{path}.wal")


def connect_read_only(path: str | Path) -> duckdb.DuckDBPyConnection:
    """A read-only connection in UTC, for plan/show/read. LockedError while an apply writes (V7)."""
    con = _open(path, read_only=True)
    con.execute("SET TimeZone = 'UTC'")
    return con


def check_single_select(con: duckdb.DuckDBPyConnection, sql: str) -> None:
    """DuckDB's own parser must see exactly one SELECT (V17): the layer behind the sqlglot gate."""
    import duckdb

    try:
        statements = con.extract_statements(sql)
    except duckdb.Error as exc:
        raise ExecutionError(f"SQL does not parse: {_first_line(exc)}") from exc
    if len(statements) != 1 or statements[0].type != duckdb.StatementType.SELECT:
        kinds = ", ".join(s.type.name for s in statements)
        raise ExecutionError(f"exactly one SELECT statement expected (found {kinds or 'nothing'})")
