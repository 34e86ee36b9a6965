"""Where an apply's time goes, statement by statement: runs ``engine apply ARGS`` in this process
with the DuckDB backend's connection wrapped, then prints the slowest statements and the total.

    python benchmarks/profile_apply.py PROJECT --select training

A profiling aid, not a benchmark (the wrapper adds a little time per statement; the figures are the
statements' own wall times).
"""

from __future__ import annotations

import sys
import time

from engine.backends.duckdb import backend as duckdb_backend

TIMINGS: list[tuple[float, str]] = []


class _Timed:
    def __init__(self, con) -> None:
        self._con = con

    def __getattr__(self, name):
        return getattr(self._con, name)

    def execute(self, sql, *args, **kwargs):
        started = time.perf_counter()
        try:
            return self._con.execute(sql, *args, **kwargs)
        finally:
            TIMINGS.append((time.perf_counter() - started, " ".join(str(sql).split())[:160]))

    def sql(self, sql, *args, **kwargs):
        started = time.perf_counter()
        try:
            return self._con.sql(sql, *args, **kwargs)
        finally:
            TIMINGS.append((time.perf_counter() - started, " ".join(str(sql).split())[:160]))


def main() -> None:
    original = duckdb_backend.DuckDBBackend.con
    duckdb_backend.DuckDBBackend.con = property(lambda self: _Timed(original.fget(self)))
    from engine.cli import main as cli

    def finish(code: int) -> None:  # the CLI ends with os._exit; here the report must print first
        raise SystemExit(code)

    cli._finish = finish
    sys.argv = ["engine", "apply", *sys.argv[1:]]
    started = time.perf_counter()
    try:
        cli.main()
    except SystemExit:
        pass
    finally:
        wall = time.perf_counter() - started
        for seconds, sql in sorted(TIMINGS, reverse=True)[:20]:
            print(f"{seconds:7.3f} s  {sql}", file=sys.stderr)
        print(f"SQL {sum(t for t, _ in TIMINGS):.2f} s in {len(TIMINGS)} statements; apply {wall:.2f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
