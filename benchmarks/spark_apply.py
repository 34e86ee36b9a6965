"""Benchmark: the end-to-end point-in-time apply of ``benchmarks/e2e_apply.py`` (``engine apply
PROJECT --select training`` in a fresh process, Parquet sources to the materialised feature view)
on three backends: DuckDB, Spark ``local[2]``, and Spark on a standalone cluster (a master and two
1-core workers on 127.0.0.1, started here from pyspark's ``spark-class``).

Run by hand (not a test), small sizes on a shared 2-core machine::

    python benchmarks/spark_apply.py                         # 2k, 10k, 50k spine rows (x10 feature rows)
    python benchmarks/spark_apply.py --sizes 1000,5000 --json /tmp/spark.json

The data, the generated project and the measurement (wall, CPU user+sys and peak RSS of the
``engine`` child, ``os.wait4``; "others": cores other processes kept busy meanwhile) are
``e2e_apply``'s. On the cluster the executors are separate processes: their CPU is *not* in the
child's figures but shows in "others" (the cluster is idle otherwise). Each backend applies into
its own workspace; the training views are then compared as multisets (floats to 1e-9).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import e2e_apply as e2e  # noqa: E402  (helpers: data, project, measurement)

METHODS = ("duckdb", "spark-local", "spark-cluster")


def apply(method: str, project: Path, master: str | None) -> e2e.Run:
    env_before = dict(os.environ)
    if method != "duckdb":
        os.environ["ENGINE_SPARK_MASTER"] = master or "local[2]"
    try:
        cmd = e2e.engine_command("apply", str(project), "--select", e2e.VIEW, "--format", "json", "--backend", "duckdb" if method == "duckdb" else "spark")
        run, _ = e2e.measure(cmd, project)
    finally:
        os.environ.clear()
        os.environ.update(env_before)
    return run


def compare(projects: dict[str, Path]) -> str:
    """The training views of every method equal DuckDB's (a child process, so this one stays small)."""
    import subprocess

    code = (
        "import sys, json; from pathlib import Path; sys.path.insert(0, sys.argv[1]);"
        "from tests.support_spark import lake_tables, assert_same_rows;"
        "ps = json.loads(sys.argv[2]); ref = lake_tables(Path(ps['duckdb']) / '.engine', ('views', 'training'));"
        "[assert_same_rows(lake_tables(Path(p) / '.engine', ('views', 'training'))[k], v, f'{m} {k}') for m, p in ps.items() for k, v in ref.items()];"
        "print(sum(len(v) for v in ref.values()))"
    )
    proc = subprocess.run([sys.executable, "-c", code, str(HERE.parent), json.dumps({m: str(p) for m, p in projects.items()})], capture_output=True, text=True)
    return f"agree ({proc.stdout.strip()} view rows each)" if proc.returncode == 0 else f"DISAGREE: {proc.stderr.strip().splitlines()[-1:]}"


def table(results: list[dict]) -> list[str]:
    lines = [
        "| spine rows | feature rows | backend | wall s | CPU s | peak RSS MB | wall / DuckDB | CPU / DuckDB | RSS / DuckDB | others (cores) |",
        "| ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in results:
        base = r["runs"]["duckdb"]
        for method in METHODS:
            run = r["runs"].get(method)
            if run is None:
                continue
            others = "" if run["others"] is None else f"{run['others']:.2f}"
            lines.append(
                f"| {r['n']:,} | {r['n'] * e2e.FEATURE_FACTOR:,} | {method} | {run['wall']:.1f} | {run['cpu']:.1f} | {run['peak_mb']:.0f} | "
                f"{run['wall'] / base['wall']:.1f}x | {run['cpu'] / base['cpu']:.1f}x | {run['peak_mb'] / base['peak_mb']:.1f}x | {others} |"
            )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=lambda s: [int(x) for x in s.split(",")], default=[2_000, 10_000, 50_000], help="spine rows (default 2000,10000,50000)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--cache", type=Path, default=HERE / ".data")
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    methods = [m for m in args.methods.split(",") if m]
    cluster = None
    if "spark-cluster" in methods:
        from tests.support_spark import start_cluster

        cluster = start_cluster(workers=2)
    results = []
    try:
        workdir = Path(tempfile.mkdtemp(prefix="spark_apply_", dir=args.cache if args.cache.exists() else None))
        for n in args.sizes:
            data = e2e.dataset(args.cache, n, 1, args.seed)
            runs, projects = {}, {}
            for method in methods:
                project = e2e.make_project(workdir, data, n, 1)
                run = apply(method, project, cluster.master_url if method == "spark-cluster" and cluster else None)
                runs[method] = {"wall": run.wall, "cpu": run.cpu, "peak_mb": run.peak_mb, "others": run.others}
                projects[method] = project
                print(f"n={n:,} {method}: {run.wall:.1f} s wall, {run.cpu:.1f} s CPU, {run.peak_mb:.0f} MB", flush=True)
            check = compare(projects) if "duckdb" in projects and len(projects) > 1 else "not compared"
            print(f"n={n:,}: {check}", flush=True)
            results.append({"n": n, "runs": runs, "check": check})
    finally:
        if cluster is not None:
            cluster.stop()
    print("\n".join(table(results)))
    if args.json:
        args.json.write_text(json.dumps({"machine": e2e.machine(), "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
