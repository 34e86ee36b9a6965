"""Benchmark: building training data with the engine's point-in-time join vs. a hand-written
DuckDB ASOF query vs. pandas ``merge_asof``, on the same generated data in the same run.

Run by hand (not a test)::

    python benchmarks/training_data.py                      # 1M spine rows, 10M feature rows, 1 and 3 groups
    python benchmarks/training_data.py --spine 100000 --features 1000000 --groups 3 --skip-pandas

Each method runs in a fresh subprocess that reports its own peak resident memory (``VmHWM``), so
the figures do not include the data generator or the other methods. DuckDB methods report the best
of ``--repeat`` runs; ``--rounds`` alternates the DuckDB children to damp noise from
other processes on the machine (the minimum over rounds is kept). The three results are compared
row for row before the table is printed.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TIME_TARGET = 1.1
MEMORY_TARGET = 1.2
YEAR_MINUTES = 366 * 1_440
START_EPOCH = 1_704_067_200  # 2024-01-01T00:00:00Z


# ---------------------------------------------------------------- data


def generate(db: Path, *, spine: int, features: int, groups: int, entities: int, seed: int) -> list[int]:
    """Write ``spine`` and ``fg0..fg{groups-1}`` into ``db``; return the feature rows per group.

    The spine has a ``row_id`` (its insertion position, used only to compare results), an
    ``entity_id``, an ``event_time`` uniformly over a year (whole minutes, so some spine and feature
    times are equal) and a binary ``label``. Each feature group has unique (entity_id, event_time)
    rows, in random order, and two features.
    """
    import duckdb
    import numpy as np

    rng = np.random.default_rng(seed)
    con = duckdb.connect(str(db))
    con.execute("SET TimeZone = 'UTC'")
    data = {
        "row_id": np.arange(spine, dtype=np.int64),
        "entity_id": rng.integers(0, entities, spine),
        "minute": rng.integers(0, YEAR_MINUTES, spine),
        "label": rng.integers(0, 2, spine),
    }
    con.register("_data", data)
    con.execute(f"CREATE TABLE spine AS SELECT row_id, entity_id, to_timestamp({START_EPOCH} + 60 * minute) AS event_time, label FROM _data")
    con.unregister("_data")
    sizes = []
    for g in range(groups):
        m = features // groups
        packed = np.unique(rng.integers(0, entities, m).astype(np.int64) * YEAR_MINUTES + rng.integers(0, YEAR_MINUTES, m))
        packed = packed[rng.permutation(len(packed))]
        data = {
            "entity_id": packed // YEAR_MINUTES,
            "minute": packed % YEAR_MINUTES,
            "a": rng.standard_normal(len(packed)),
            "b": rng.integers(0, 1000, len(packed)),
        }
        con.register("_data", data)
        con.execute(
            f"CREATE TABLE fg{g} AS SELECT entity_id, to_timestamp({START_EPOCH} + 60 * minute) AS event_time, a AS f{g}_a, b AS f{g}_b FROM _data"
        )
        con.unregister("_data")
        sizes.append(len(packed))
    con.execute("CHECKPOINT")
    con.close()
    return sizes


# ---------------------------------------------------------------- the three methods (children)


def engine_sql(groups: int) -> str:
    """The engine's generated SQL for this benchmark's view."""
    from engine.backends.duckdb.point_in_time import point_in_time_sql
from engine.sql.ops import JoinSpec as JoinStep

    steps = [
        JoinStep(f'"fg{g}"', ("entity_id",), ("entity_id",), "event_time", ((f"f{g}_a", f"f{g}_a"), (f"f{g}_b", f"f{g}_b")))
        for g in range(groups)
    ]
    return point_in_time_sql('"spine"', "event_time", ["row_id", "entity_id", "event_time", "label"], steps)


def hand_sql(groups: int) -> str:
    """The same view as one would write it by hand (no spine-order guarantee)."""
    columns = "".join(f", f{g}.f{g}_a, f{g}.f{g}_b" for g in range(groups))
    joins = "".join(
        f"\nASOF LEFT JOIN fg{g} AS f{g} ON s.entity_id = f{g}.entity_id AND s.event_time >= f{g}.event_time" for g in range(groups)
    )
    return f"SELECT s.row_id, s.entity_id, s.event_time, s.label{columns}\nFROM spine AS s{joins}"


def hand_ordered_sql(groups: int) -> str:
    """The hand-written query plus the engine's guarantee: output in spine order (by its row_id)."""
    return hand_sql(groups) + "\nORDER BY s.row_id"


def peak_mb() -> float:
    """This process's peak resident set size in MB (VmHWM)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_duckdb(db: str, method: str, groups: int, repeat: int) -> dict:
    import duckdb

    sql = {"engine": engine_sql, "hand": hand_sql, "hand_ordered": hand_ordered_sql}[method](groups)
    table = f"out_{method}"
    con = duckdb.connect(db)
    con.execute("SET TimeZone = 'UTC'")
    times, cpu = [], []
    for _ in range(repeat):
        con.execute(f"DROP TABLE IF EXISTS {table}")
        start, start_cpu = time.perf_counter(), time.process_time()
        con.execute(f"CREATE TABLE {table} AS {sql}")
        times.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    con.close()
    return {"seconds": min(times), "cpu": min(cpu), "runs": times, "peak_mb": peak_mb()}


def run_pandas(db: str, groups: int) -> dict:
    import duckdb
    import pandas as pd

    con = duckdb.connect(db)
    con.execute("SET TimeZone = 'UTC'")
    start = time.perf_counter()
    spine = con.execute("SELECT * FROM spine").df()
    frames = [con.execute(f"SELECT * FROM fg{g}").df() for g in range(groups)]
    loaded, start_cpu = time.perf_counter(), time.process_time()
    out = spine.sort_values("event_time", kind="stable")
    for frame in frames:
        out = pd.merge_asof(out, frame.sort_values("event_time"), on="event_time", by="entity_id", direction="backward")
    out = out.sort_values("row_id", kind="stable").reset_index(drop=True)
    done = time.perf_counter()
    cpu = time.process_time() - start_cpu
    peak = peak_mb()
    con.register("_result", out)
    con.execute("CREATE OR REPLACE TABLE out_pandas AS SELECT * FROM _result")
    con.close()
    return {"seconds": done - loaded, "cpu": cpu, "load_seconds": loaded - start, "peak_mb": peak}


def child_main(args: argparse.Namespace) -> None:
    if args.child == "pandas":
        result = run_pandas(args.db, args.group_count)
    else:
        result = run_duckdb(args.db, args.child, args.group_count, args.repeat)
    print(json.dumps(result))


def in_child(method: str, db: Path, groups: int, repeat: int) -> dict:
    cmd = [sys.executable, __file__, "--child", method, "--db", str(db), "--group-count", str(groups), "--repeat", str(repeat)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"{method} failed:\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------- agreement


def check_agreement(db: Path, groups: int, spine: int, with_pandas: bool) -> list[str]:
    """Row counts, engine output in spine order, engine == hand-written row for row, pandas on every row."""
    import duckdb

    con = duckdb.connect(str(db))
    con.execute("SET TimeZone = 'UTC'")
    problems = []
    tables = ["out_engine", "out_hand", "out_hand_ordered", *(["out_pandas"] if with_pandas else [])]
    for table in tables:
        count = con.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
        if count != spine:
            problems.append(f"{table} has {count} rows, the spine {spine}")
    misplaced = con.execute("SELECT count(*) FROM (SELECT row_id, row_number() OVER () - 1 AS pos FROM out_engine) WHERE row_id <> pos").fetchone()[0]
    if misplaced:
        problems.append(f"{misplaced} engine rows out of spine order")
    ordered_differ = con.execute(
        "SELECT count(*) FROM out_engine AS e POSITIONAL JOIN out_hand_ordered AS h WHERE e.row_id IS DISTINCT FROM h.row_id"
    ).fetchone()[0]
    if ordered_differ:
        problems.append(f"{ordered_differ} rows of the engine and the ordered hand-written result are at different positions")
    for left, right in (("out_engine", "out_hand"), ("out_hand", "out_engine")):
        extra = con.execute(f"SELECT count(*) FROM (SELECT * FROM {left} EXCEPT ALL SELECT * FROM {right})").fetchone()[0]
        if extra:
            problems.append(f"{extra} rows of {left} are not in {right}")
    if with_pandas:
        # pandas has NaN for a missing match; compare NaN and NULL as equal, every feature column.
        checks = " OR ".join(
            f"e.{c} IS DISTINCT FROM (CASE WHEN isnan(p.{c}::DOUBLE) THEN NULL ELSE p.{c} END)" for g in range(groups) for c in (f"f{g}_a", f"f{g}_b")
        )
        differ = con.execute(
            f"SELECT count(*) FROM out_engine e JOIN out_pandas p USING (row_id) WHERE e.entity_id <> p.entity_id OR e.event_time <> p.event_time OR {checks}"
        ).fetchone()[0]
        if differ:
            problems.append(f"{differ} rows differ between the engine and pandas")
    matched = con.execute(f"SELECT avg((f{groups - 1}_a IS NOT NULL)::INT) FROM out_engine").fetchone()[0]
    con.close()
    if not problems:
        problems.append(f"agree: all {len(tables)} results ({spine:,} rows; {matched:.1%} of spine rows matched in the last group)")
    return problems


# ---------------------------------------------------------------- driver


def bench(args: argparse.Namespace, groups: int, workdir: Path) -> list[str]:
    db = workdir / f"bench_{groups}.duckdb"
    start = time.perf_counter()
    sizes = generate(db, spine=args.spine, features=args.features, groups=groups, entities=args.entities, seed=args.seed)
    lines = [
        f"\n## {args.spine:,} spine rows, {sum(sizes):,} feature rows in {groups} group(s) "
        f"({args.entities:,} entities; generated in {time.perf_counter() - start:.1f} s)",
    ]
    results: dict[str, dict] = {}
    for _ in range(args.rounds):
        for method in ("engine", "hand", "hand_ordered"):
            r = in_child(method, db, groups, args.repeat)
            best = results.get(method)
            results[method] = {
                "seconds": min(r["seconds"], best["seconds"]) if best else r["seconds"],
                "cpu": min(r["cpu"], best["cpu"]) if best else r["cpu"],
                "peak_mb": min(r["peak_mb"], best["peak_mb"]) if best else r["peak_mb"],
                "runs": (best["runs"] if best else []) + r["runs"],
            }
    if not args.skip_pandas:
        results["pandas"] = in_child("pandas", db, groups, 1)
    hand = results["hand"]
    labels = {
        "engine": "engine point_in_time_sql",
        "hand": "hand-written ASOF LEFT JOIN",
        "hand_ordered": "hand-written + ORDER BY",
        "pandas": "pandas merge_asof",
    }
    lines.append("")
    lines.append(f"| {'method':<28} | {'seconds':>8} | {'peak MB':>8} | {'time ×':>6} | {'memory ×':>8} | {'CPU s':>6} | {'CPU ×':>5} |")
    lines.append(f"|{'-' * 30}|{'-' * 9}:|{'-' * 9}:|{'-' * 7}:|{'-' * 9}:|{'-' * 7}:|{'-' * 6}:|")
    for method, r in results.items():
        lines.append(
            f"| {labels[method]:<28} | {r['seconds']:>8.2f} | {r['peak_mb']:>8.0f} | {r['seconds'] / hand['seconds']:>6.2f} | {r['peak_mb'] / hand['peak_mb']:>8.2f} | {r['cpu']:>6.2f} | {r['cpu'] / hand['cpu']:>5.2f} |"
        )
    engine = results["engine"]
    lines.append("")
    lines.append("DuckDB runs (s): " + "; ".join(f"{m}: {', '.join(f'{x:.2f}' for x in results[m]['runs'])}" for m in ("engine", "hand", "hand_ordered")))
    if "pandas" in results:
        lines.append(f"pandas: loading the tables into DataFrames took another {results['pandas']['load_seconds']:.2f} s (not in its time; in its memory)")
    time_ok = engine["seconds"] <= TIME_TARGET * hand["seconds"]
    memory_ok = engine["peak_mb"] <= MEMORY_TARGET * hand["peak_mb"]
    lines.append(
        f"targets: time {engine['seconds'] / hand['seconds']:.2f}× ≤ {TIME_TARGET}× {'met' if time_ok else 'NOT met'}; "
        f"memory {engine['peak_mb'] / hand['peak_mb']:.2f}× ≤ {MEMORY_TARGET}× {'met' if memory_ok else 'NOT met'} "
        f"(CPU time {engine['cpu'] / hand['cpu']:.2f}×: wall time is noisy when other processes share the cores)"
    )
    lines.extend(check_agreement(db, groups, args.spine, not args.skip_pandas))
    db.unlink(missing_ok=True)
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spine", type=int, default=1_000_000, help="spine rows (default 1,000,000)")
    parser.add_argument("--features", type=int, default=10_000_000, help="feature rows over all groups (default 10,000,000)")
    parser.add_argument("--groups", type=int, nargs="+", default=[1, 3], help="feature group counts to run, 1-3 (default: 1 3)")
    parser.add_argument("--entities", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--repeat", type=int, default=3, help="runs per DuckDB child, best kept (default 3)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating DuckDB children per method, best kept (default 3)")
    parser.add_argument("--skip-pandas", action="store_true", help="skip pandas merge_asof (needs several GB at full size)")
    parser.add_argument("--workdir", type=Path, default=None, help="where the temporary database goes (default: a temp dir)")
    parser.add_argument("--child", choices=["engine", "hand", "hand_ordered", "pandas"], help=argparse.SUPPRESS)
    parser.add_argument("--db", help=argparse.SUPPRESS)
    parser.add_argument("--group-count", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child_main(args)
        return 0
    if any(g < 1 or g > 3 for g in args.groups):
        parser.error("--groups takes counts between 1 and 3")
    import os

    workdir = Path(tempfile.mkdtemp(prefix="engine_bench_", dir=args.workdir))
    print(f"# training-data benchmark ({os.cpu_count()} cores, duckdb {__import__('duckdb').__version__}, pandas {__import__('pandas').__version__})")
    started = time.perf_counter()
    try:
        for groups in args.groups:
            for line in bench(args, groups, workdir):
                print(line, flush=True)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"\ntotal {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
