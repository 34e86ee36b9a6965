"""DuckDB connections (UTC session, optional sandbox) and bounded statement execution; no feature-store logic.

Never imported by ``engine validate``. The sandbox (RELIABILITY V2-V5, R4): once
``enable_external_access=false`` and ``lock_configuration=true`` are set, SQL on the connection
cannot read or write files, attach databases, install or load extensions, or change settings —
while the engine's own tables stay readable and writable. Settings are per database instance (V5):
every connection of the process to the same file shares them.
"""

from __future__ import annotations

from collections.abc import Sequence

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
            if _abandoned_on(path) and _tz_is_utc(con):
                # A statement the SQL watchdog gave up on keeps the sandboxed instance open until
                # the process exits: the run's own bookkeeping (recording the failure) runs on it,
                # with less access than it asked for, never more.
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


def lock_down(con: duckdb.DuckDBPyConnection, readable: Sequence[Path] = ()) -> None:
    """The sandbox, irreversibly (V2, V3): no files, network, extensions or setting changes, except
    reading under the ``readable`` folders (the lake's tables, which the engine's views read).

    Order matters: a temp_directory and the allowed folders must be set before external access is
    disabled, and lock_configuration comes last (it freezes every other setting).
    """
    if readable:
        folders = ", ".join(_literal(str(Path(p).resolve()) + "/") for p in readable)
        con.execute(f"SET allowed_directories = [{folders}]")
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
    """Execute exactly one statement, stopping it after ``timeout_s`` seconds (V11, Q8).

    DuckDB has no statement timeout, and ``interrupt()`` is only looked at between vectors and
    operators: a per-row bomb inside one vector (a ``repeat()`` or a regex over megabytes for each
    of a thousand rows) runs on for tens of seconds after it. So with a timeout the statement runs
    on a worker thread under a watchdog (:class:`_Watchdog`): it interrupts at ``timeout_s`` and
    again every 0.2 s, and at twice the limit fails the call with "SQL timed out" even if the
    statement still runs, leaving it behind (:func:`abandoned`) so that the process never hangs. A
    statement that writes (``CREATE TABLE … AS``), outside a transaction, on a database file, runs
    on its own connection to the same database (same instance, same sandbox, V5), so ``con`` stays
    usable after one is left behind; a SELECT runs on ``con`` (its rows are read from it).

    With ``select_only`` the statement must be a SELECT by DuckDB's own parser (V17): a second
    layer behind the gate. Every DuckDB failure becomes an ``ExecutionError`` carrying DuckDB's
    first message line, except a failed write to disk, raised as it is (exit 74, G3). Returns the
    connection holding the statement's result (``con`` for a statement run on its own connection).
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

    if timeout_s is None:
        runner, watchdog = con, None
    else:
        runner, database = _statement_connection(con, statements[0])
        watchdog = _Watchdog(runner, float(timeout_s), database)
    try:
        if watchdog is None:
            _RUNNING.add(con)
            try:
                return con.execute(sql, params) if params is not None else con.execute(sql)
            finally:
                _RUNNING.discard(con)
        result = watchdog.run(sql, params)
        return con if runner is not con else result
    except duckdb.InterruptException as exc:
        if watchdog is not None and watchdog.fired:
            raise ExecutionError(f"SQL timed out after {_seconds(timeout_s)}s") from exc
        from engine import interrupts

        interrupts.request()  # not our watchdog: the user pressed Ctrl-C
        raise ExecutionError("SQL was interrupted") from exc
    except duckdb.OutOfMemoryException as exc:
        raise ExecutionError(f"SQL exceeded the memory limit: {_first_line(exc)}") from exc
    except duckdb.PermissionException as exc:
        raise ExecutionError(f"SQL refused by the sandbox: {_first_line(exc)}") from exc
    except duckdb.Error as exc:
        if is_storage_failure(exc):
            raise  # the disk, not the SQL: the runtime reports it as exit 74 naming the workspace
        raise ExecutionError(_first_line(exc)) from exc
    finally:
        if runner is not con and (watchdog is None or not watchdog.abandoned):
            runner.close()


_RUNNING: set = set()  # connections running a statement for run_sql, so a stop request can interrupt them
_ABANDONED: list = []  # (connection, thread, database) of statements the watchdog gave up on (kept alive until exit)


def interrupt_running() -> None:
    """Interrupt every statement run_sql is executing (called from a watcher thread on SIGTERM/SIGINT)."""
    for con in list(_RUNNING):
        try:
            con.interrupt()
        except Exception:  # already finished or closed
            pass


def abandoned() -> int:
    """How many statements the watchdog gave up on in this process (each still holds its connection)."""
    return sum(1 for _, thread, _ in _ABANDONED if thread.is_alive())


def _abandoned_on(path: str | Path | None) -> bool:
    if path is None:
        return False
    target = str(Path(path).resolve())
    return any(database == target and thread.is_alive() for _, thread, database in _ABANDONED)


def _statement_connection(con: duckdb.DuckDBPyConnection, statement) -> tuple[duckdb.DuckDBPyConnection, str | None]:
    """The connection a watched statement runs on, and its database file when it is not ``con``:
    its own connection to ``con``'s database file when it writes rows (CREATE, INSERT, UPDATE,
    DELETE) outside a transaction (so that a connection left busy by an abandoned statement is not
    ``con``; for an in-memory database, a cursor: a new connection to the same instance), else
    ``con`` itself (a SELECT's rows are read from ``con``; a setting or a TEMP object lives on its
    connection; a transaction's uncommitted tables are visible to ``con`` only)."""
    import re

    import duckdb

    kinds = {duckdb.StatementType.CREATE, duckdb.StatementType.INSERT, duckdb.StatementType.UPDATE, duckdb.StatementType.DELETE}
    if statement.type not in kinds or re.match(r"\s*CREATE\s+(OR\s+REPLACE\s+)?TEMP(ORARY)?\b", statement.query, re.IGNORECASE):
        return con, None  # a SELECT's rows, a SET, a TEMP object: they live on the connection itself
    try:
        row = con.execute("SELECT path FROM duckdb_databases() WHERE database_name = current_database()").fetchone()
        path = row[0] if row else None
        if _in_transaction(con):
            return con, None
        if not path:
            return con.cursor(), f":memory:{id(con)}"
        # Same file, no config: DuckDB hands out a connection to the open instance, sandbox and all (V5).
        return duckdb.connect(str(path)), str(Path(path).resolve())
    except duckdb.Error:
        return con, None


def _in_transaction(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether ``con`` is inside BEGIN … COMMIT (autocommit gives every statement a new id)."""
    first = con.execute("SELECT txid_current()").fetchone()
    second = con.execute("SELECT txid_current()").fetchone()
    return first == second


class _Watchdog:
    """Run one statement on a worker thread; interrupt it at the limit and every 0.2 s after; at
    twice the limit give up on it (the call fails, the statement is left running on its connection
    until it ends or the process exits) so that the caller never waits past 2x the limit."""

    REPEAT_S = 0.2

    def __init__(self, con: duckdb.DuckDBPyConnection, timeout_s: float, database: str | None = None) -> None:
        self._con = con
        self._database = database  # the file of a connection of its own, else None
        self._timeout_s = max(0.0, timeout_s)
        self.fired = False
        self.abandoned = False

    def _interrupt(self, done: threading.Event) -> None:
        if done.is_set():
            return
        try:
            self._con.interrupt()
        except Exception:  # closed meanwhile
            pass

    def run(self, sql: str, params: list | None) -> duckdb.DuckDBPyConnection:
        import time

        done = threading.Event()
        outcome: dict[str, object] = {}
        con = self._con

        def work() -> None:
            try:
                outcome["result"] = con.execute(sql, params) if params is not None else con.execute(sql)
            except BaseException as exc:  # handed to the caller's thread
                outcome["error"] = exc
            finally:
                done.set()

        thread = threading.Thread(target=work, name="engine-sql", daemon=True)
        started = time.monotonic()
        soft, hard = started + self._timeout_s, started + 2 * self._timeout_s
        _RUNNING.add(con)
        thread.start()
        try:
            next_interrupt = soft
            while not done.wait(max(0.0, min(next_interrupt, hard) - time.monotonic())):
                now = time.monotonic()
                if now >= hard:
                    self._abandon(thread)
                    raise ExecutionError(
                        f"SQL timed out after {_seconds(self._timeout_s)}s "
                        f"(it ignored the interrupt and was abandoned at {_seconds(2 * self._timeout_s)}s)"
                    )
                if now >= next_interrupt:
                    self.fired = True
                    self._interrupt(done)
                    next_interrupt = now + self.REPEAT_S
        except BaseException as exc:
            if not isinstance(exc, ExecutionError):  # Ctrl-C / SIGTERM in this thread: stop the statement too
                self._interrupt(done)
                if not done.wait(min(2.0, self._timeout_s or 2.0)):
                    self._abandon(thread)
            raise
        finally:
            if not self.abandoned:
                _RUNNING.discard(con)
        if "error" in outcome:
            raise outcome["error"]  # type: ignore[misc]
        return outcome["result"]  # type: ignore[return-value]

    def _abandon(self, thread: threading.Thread) -> None:
        """Keep the busy connection (and so its database instance) alive until the process exits."""
        self.abandoned = True
        _ABANDONED.append((self._con, thread, self._database))
        _exit_without_waiting()


_EXIT_GUARDED = False
_EXIT_CODE: list = []  # [code] once sys.exit was called, after a statement was abandoned


def _exit_without_waiting() -> None:
    """Make the process exit at once, with its own exit code, while an abandoned statement runs.

    DuckDB's own interpreter-exit handler ends every running result and so waits for the
    statement (and, if it ends meanwhile, a daemon thread leaving C code during finalisation aborts
    the process). Exit handlers run last-registered first: ours, registered after DuckDB's, exits
    with the code given to ``sys.exit`` (recorded by a thin wrapper) before DuckDB's handler runs.
    The file lock is released by the kernel; the abandoned statement never committed.
    """
    import atexit
    import sys

    global _EXIT_GUARDED
    if _EXIT_GUARDED:
        return
    _EXIT_GUARDED = True
    real_exit = sys.exit

    def exit(code: object = None) -> None:  # noqa: A001 (same signature as sys.exit)
        _EXIT_CODE[:] = [code]
        real_exit(code)

    sys.exit = exit
    atexit.register(_exit_now)


def _exit_now() -> None:
    import os
    import sys

    if not abandoned() or not _EXIT_CODE:
        return  # nothing left running, or the interpreter ends without sys.exit: the normal path
    code = _EXIT_CODE[0]
    if code is not None and not isinstance(code, int):
        sys.stderr.write(f"{code}\n")
        code = 1
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # noqa: S112 (closed or broken pipe: nothing more to say)
            continue
    os._exit(code or 0)


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
    """duckdb.connect, with open failures turned into what the user can act on. The engine opens
    DuckDB in memory (the workspace's tables are Delta tables); a file is a test's or a user's."""
    import duckdb

    from engine.errors import LockedError, StorageIOError

    if path is None:
        return duckdb.connect(":memory:")
    try:
        return duckdb.connect(str(path), read_only=read_only)
    except duckdb.Error as exc:
        text = _first_line(exc)
        if "lock" in text.lower():
            raise LockedError(f"the database {path} is in use by another process ({text})") from exc
        raise StorageIOError(f"cannot open the database {path}: {text}") from exc


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
