"""The error tree: every failure the engine reports, with its exit code. Owns no I/O.

A user error carries one or more positioned ``Problem``s; the CLI renders them as
``file:line:col key.path: message (hint)``. Exit codes are mapped here and nowhere else.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum

KeyPath = tuple[str | int, ...]


class ExitCode(IntEnum):
    OK = 0
    INTERNAL = 1
    USAGE = 2
    SPEC_INVALID = 3
    DATA_CHECK_FAILED = 4
    EXECUTION_FAILED = 5
    IO_ERROR = 74
    LOCKED = 75
    INTERRUPTED = 130


def format_path(path: KeyPath) -> str:
    """Render a key path the way users write it.

    >>> format_path(("feature_groups", "weather", "primary_key", 1))
    'feature_groups.weather.primary_key[1]'
    >>> format_path(())
    '<root>'
    """
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "<root>"


@dataclass(frozen=True, order=True)
class Problem:
    """One thing wrong with the user's input, pointing at where it is."""

    file: str = ""
    line: int = 0
    column: int = 0
    path: KeyPath = field(default=(), compare=False)
    message: str = field(default="", compare=True)
    hint: str | None = field(default=None, compare=False)

    def render(self) -> str:
        if not self.file:
            where = "<spec>"
        elif self.line <= 0:
            where = self.file
        else:
            where = f"{self.file}:{self.line}:{self.column}"
        text = f"{where}: {format_path(self.path)}: {self.message}"
        if self.hint:
            text += f" ({self.hint})"
        return text

    def as_dict(self) -> dict[str, object]:
        return {
            "file": self.file,
            "line": self.line,
            "column": self.column,
            "path": format_path(self.path),
            "message": self.message,
            "hint": self.hint,
        }


def _sort_key(p: Problem) -> tuple:
    return (p.file, p.line, p.column, format_path(p.path), p.message)


class EngineError(Exception):
    """Base of every error the engine raises on purpose."""

    exit_code: ExitCode = ExitCode.INTERNAL

    def __init__(self, message: str = "", problems: list[Problem] | None = None):
        self.problems: list[Problem] = sorted(problems or [], key=_sort_key)
        super().__init__(message or (self.problems[0].render() if self.problems else ""))

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else ""


class UsageError(EngineError):
    """The command line itself is wrong (unknown option, missing path)."""

    exit_code = ExitCode.USAGE


class RequestError(UsageError):
    """A request the online service refuses: its HTTP ``status``, a message and per-field
    ``errors`` (``{"path": "$.rows[0].x", "message": ...}``, JSON paths)."""

    def __init__(self, status: int, message: str, errors: list[dict] | None = None):
        super().__init__(message)
        self.status = status
        self.errors: list[dict] = list(errors or [])

    def body(self) -> dict:
        """The JSON body of the refusal: ``{"detail": message, "errors": [...]}``."""
        return {"detail": self.message, "errors": self.errors}


class SpecError(EngineError):
    """The spec is invalid: YAML, schema, semantics or the SQL gate. Nothing ran."""

    exit_code = ExitCode.SPEC_INVALID


class PlanError(SpecError):
    """The spec is valid on its own but cannot be applied over the stored state (breaking change)."""


class DataError(EngineError):
    """Data failed a check (expectations, keys, empty input). Nothing was published."""

    exit_code = ExitCode.DATA_CHECK_FAILED


class ExecutionError(EngineError):
    """A user transform (SQL or Python) failed while running. Nothing was published."""

    exit_code = ExitCode.EXECUTION_FAILED


class StorageIOError(EngineError):
    """The workspace could not be read or written (disk full, unreadable database)."""

    exit_code = ExitCode.IO_ERROR


class LockedError(EngineError):
    """Another engine process holds the project lock."""

    exit_code = ExitCode.LOCKED


class InternalError(EngineError):
    """A bug in the engine."""

    exit_code = ExitCode.INTERNAL


class ProblemCollector:
    """Collect problems, then raise once (STYLE habit 3)."""

    def __init__(self) -> None:
        self.problems: list[Problem] = []

    def add(self, problem: Problem) -> None:
        self.problems.append(problem)

    def extend(self, problems: list[Problem]) -> None:
        self.problems.extend(problems)

    def __bool__(self) -> bool:
        return bool(self.problems)

    def raise_if_any(self, error: type[EngineError] = SpecError) -> None:
        if self.problems:
            unique = list(dict.fromkeys(self.problems))
            raise error(problems=unique)


def did_you_mean(word: str, candidates: list[str] | tuple[str, ...] | set[str]) -> str | None:
    """A hint naming the closest candidate, if any is close.

    >>> did_you_mean("primary_keys", ["primary_key", "event_time"])
    "did you mean 'primary_key'?"
    >>> did_you_mean("zzz", ["primary_key"]) is None
    True
    """
    import difflib

    match = difflib.get_close_matches(word, sorted(candidates), n=1, cutoff=0.6)
    return f"did you mean '{match[0]}'?" if match else None


def is_storage_failure(exc: BaseException) -> bool:
    """Disk full, file too large or an I/O error while writing the workspace (G3: exit 74).

    An ``OSError`` with one of those errnos, or a backend exception whose message says so, whatever
    its class: DuckDB reports a failed write as an ``IOException``, but a write that fails at
    COMMIT as a ``TransactionException`` ("Failed to commit: Could not write file …"), and a
    database invalidated by one as a ``FatalException``. Matched by class module and message, so no
    backend is imported here. An error raised while handling a storage failure (a ROLLBACK or a
    cleanup statement refused with "Current transaction is aborted") is one too: the chain of
    ``__cause__`` / ``__context__`` is followed.

    >>> import errno; is_storage_failure(OSError(errno.ENOSPC, "No space left on device"))
    True
    >>> is_storage_failure(OSError(errno.ENOENT, "No such file or directory"))
    False
    """
    import errno

    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen and len(seen) < 16:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in (errno.ENOSPC, errno.EFBIG, errno.EIO, errno.EDQUOT):
            return True
        if _backend_write_failure(current):
            return True
        current = current.__cause__ or current.__context__
    return False


_WRITE_FAILURE_MARKERS = (
    "no space left",
    "file too large",
    "could not write",
    "could not truncate",
    "could not fsync",
    "fsync failed",
    "disk quota exceeded",
    "disk is full",
    "input/output error",
)


def _backend_write_failure(exc: BaseException) -> bool:
    """A backend (DuckDB) exception saying a write to disk failed; any of its exception classes."""
    module = type(exc).__module__ or ""
    if not (module.startswith(("duckdb", "_duckdb")) or type(exc).__name__ == "IOException"):
        return False
    text = str(exc).lower()
    return any(marker in text for marker in _WRITE_FAILURE_MARKERS)
