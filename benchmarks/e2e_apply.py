"""Benchmark: the engine end to end — ``engine apply PROJECT --select training`` in a fresh
process, from source Parquet files to the materialised feature view — beside a hand-written DuckDB
script and pandas ``merge_asof`` on the same files, in the same run.

Run by hand (not a test)::

    python benchmarks/e2e_apply.py                                   # 1M spine x 10M per group, 1 and 3 groups, incremental
    python benchmarks/e2e_apply.py --groups 1,3                      # only the group scenario
    python benchmarks/e2e_apply.py --scale 1,4,16 --base 250000      # scaling series (1 group): 250k, 1M, 4M spine rows
    python benchmarks/e2e_apply.py --groups 1 --n 100000 --incremental --json /tmp/e2e.json   # quick
    python benchmarks/e2e_apply.py --groups 1,3 --scale 1,4 --repeat 3                 # each first apply: median of 3
    python benchmarks/e2e_apply.py --groups 1 --scale 1,4,16 --repeat 3 --floor        # ... beside the engine's dataflow by hand

Data: a spine of N rows (``row_id``, ``entity_id`` among N/10 entities, ``event_time`` over a
year in whole seconds, binary ``label``) and, per feature group, 10·N rows on the same entities
with unique (``entity_id``, ``event_time``) and three features ``a`` (normal), ``b`` (integer),
``c`` (uniform). Seeded numpy, written with pyarrow once per size into ``benchmarks/.data/``
and hard-linked into a generated project: parquet sources with glob paths, SQL feature groups
(spine: primary key ``row_id``; groups: primary key ``entity_id`` + event time, ``online: false``)
and one feature view joining every group point-in-time on ``entity_id`` (no ttl).

Each method runs as a child process, measured from outside: wall time, CPU time (user + sys) and
peak RSS from ``os.wait4``. "others" is the average number of cores that *other* processes used
while the child ran (busy time in /proc/stat minus the child's CPU time), to read the figures
against the machine's load.

* engine: ``engine validate`` once, then ``engine apply PROJECT --select training --format json``
  with the engine's defaults (threads, memory); the step timings of its JSON output say where the
  time goes (sources ingested, feature groups built, the view joined, the rest is start-up and
  bookkeeping).
* script: DuckDB, in memory: ``COPY (SELECT … FROM read_parquet(spine) ASOF LEFT JOIN
  read_parquet(fg) …) TO out.parquet`` — the same columns, no order guarantee.
* floor (``--floor``): the engine's dataflow by hand in DuckDB, without its key checks, statistics,
  validation, planning and commits: every feature group and the spine written once to Parquet as
  the engine stores them, then the same ASOF join read from those files. Its time over the
  script's is what storing the groups costs by itself; the engine's time over the floor's is what
  everything else costs.
* pandas: ``read_parquet``, ``merge_asof`` chained over the groups, ``to_parquet`` (skipped above
  ``--pandas-max`` spine rows).

Correctness, once per size: the engine's view (``engine.api.read_feature_view``), the script's and
pandas' Parquet files have N rows each and the same order-free checksum (sum of a per-row hash of
``row_id``, ``event_time``, ``label`` and every feature, NaN read as NULL), i.e. the same multiset
of rows. ``--incremental`` then times a no-op re-apply, appends 1% new rows (later event times) as
a new Parquet file to every source, re-applies, checks again, and times a second no-op. The
workspace (``.engine/``) is measured on disk against the source Parquet files.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
VIEW = "training"
FEATURES = ("a", "b", "c")
FEATURE_FACTOR = 10  # feature rows per group = 10 x spine rows
ENTITY_DIVISOR = 10  # entities = spine rows / 10
YEAR_S = 366 * 86_400
START_US = 1_704_067_200 * 1_000_000  # 2024-01-01T00:00:00Z
APPEND = 0.01
INCREMENTAL_TARGET = (0.05, 1.0)  # re-apply after a 1% append: <= 5% of the first apply + 1 s
NOOP_TARGET = 0.5
DISK_TARGET = 1.5
TIME_TARGET = 2.0  # engine wall time / the script's, at every size
MEMORY_TARGET = 1.3  # engine peak RSS / the script's


# ---------------------------------------------------------------- data


def _timestamps(seconds):
    import pyarrow as pa

    return pa.array(START_US + seconds * 1_000_000, type=pa.timestamp("us", tz="UTC"))


def spine_table(rng, rows: int, first_id: int, entities: int, t0: int, t1: int):
    import numpy as np
    import pyarrow as pa

    return pa.table(
        {
            "row_id": np.arange(first_id, first_id + rows, dtype=np.int64),
            "entity_id": rng.integers(0, entities, rows, dtype=np.int64),
            "event_time": _timestamps(rng.integers(t0, t1, rows, dtype=np.int64)),
            "label": rng.integers(0, 2, rows, dtype=np.int64),
        }
    )


def feature_table(rng, rows: int, entities: int, t0: int, t1: int):
    """``rows`` rows with unique (entity_id, event_time) in random order, times in [t0, t1)."""
    import numpy as np
    import pyarrow as pa

    span, drawn = t1 - t0, rows + rows // 1000 + 100  # a few spares for the (rare) collisions
    packed = np.unique(rng.integers(0, entities, drawn, dtype=np.int64) * span + rng.integers(0, span, drawn, dtype=np.int64))
    if len(packed) < rows:
        raise SystemExit(f"too few unique (entity, time) pairs: {len(packed)} < {rows}")
    packed = rng.permutation(packed)[:rows]
    return pa.table(
        {
            "entity_id": packed // span,
            "event_time": _timestamps(t0 + packed % span),
            "a": rng.standard_normal(rows),
            "b": rng.integers(0, 1000, rows, dtype=np.int64),
            "c": rng.random(rows),
        }
    )


def _write_once(path: Path, make) -> None:
    import pyarrow.parquet as pq

    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    pq.write_table(make(), tmp)
    os.replace(tmp, path)


def dataset(cache: Path, n: int, groups: int, seed: int) -> Path:
    """Generate (in a child process, see ``measure``) or reuse the Parquet files for spine size ``n``."""
    cmd = [sys.executable, __file__, "--child", "generate", "--cache", str(cache), "--n", str(n), "--group-count", str(groups), "--seed", str(seed)]
    subprocess.run(cmd, check=True)
    return cache / f"n{n}_seed{seed}"


def generate(cache: Path, n: int, groups: int, seed: int) -> Path:
    """Cached Parquet files for spine size ``n``: ``base/{spine,fg0..}/part-0000.parquet`` and the
    1% appends ``append/{spine,fg0..}/part-0001.parquet`` (event times in the days after the year)."""
    import numpy as np

    root = cache / f"n{n}_seed{seed}"
    entities = max(1, n // ENTITY_DIVISOR)
    later = (YEAR_S, YEAR_S + int(YEAR_S * APPEND))
    rows = {"base": n, "append": max(1, int(n * APPEND))}
    for part, (t0, t1) in (("base", (0, YEAR_S)), ("append", later)):
        name = "part-0000.parquet" if part == "base" else "part-0001.parquet"
        first_id = 0 if part == "base" else n
        rng = lambda k: np.random.default_rng([seed, n, k, 0 if part == "base" else 1])  # noqa: E731
        _write_once(root / part / "spine" / name, lambda: spine_table(rng(0), rows[part], first_id, entities, t0, t1))
        for g in range(groups):
            _write_once(root / part / f"fg{g}" / name, lambda g=g: feature_table(rng(1 + g), FEATURE_FACTOR * rows[part], entities, t0, t1))
    return root


def link_files(source: Path, target: Path) -> None:
    """Hard-link (or copy) every file of ``source`` into ``target``: the project must hold its data."""
    target.mkdir(parents=True, exist_ok=True)
    for file in sorted(source.iterdir()):
        try:
            os.link(file, target / file.name)
        except OSError:
            shutil.copy2(file, target / file.name)


# ---------------------------------------------------------------- the project


def spec(groups: int) -> dict:
    """The project: parquet sources (glob paths), row-local SQL feature groups declared
    ``incremental: {kind: append}`` (what a user writes for them), one feature view, no ttl."""
    features = {g: [f"f{g}_{c}" for c in FEATURES] for g in range(groups)}
    sources = {"spine_raw": {"format": "parquet", "path": "data/spine/*.parquet"}}
    groups_ = {
        "spine": {
            "primary_key": ["row_id"],
            "event_time": "event_time",
            "online": False,
            "incremental": {"kind": "append"},
            "sql": "SELECT row_id, entity_id, event_time, label FROM spine_raw",
        }
    }
    for g in range(groups):
        sources[f"fg{g}_raw"] = {"format": "parquet", "path": f"data/fg{g}/*.parquet"}
        renamed = ", ".join(f"{c} AS f{g}_{c}" for c in FEATURES)
        groups_[f"fg{g}"] = {
            "primary_key": ["entity_id"],
            "event_time": "event_time",
            "online": False,
            "incremental": {"kind": "append"},
            "sql": f"SELECT entity_id, event_time, {renamed} FROM fg{g}_raw",
        }
    joins = [{"feature_group": f"fg{g}", "on": ["entity_id"], "select": features[g]} for g in range(groups)]
    view = {"spine": "spine", "label": "label", "join": joins}
    return {"spec_version": 1, "project": "e2e_bench", "sources": sources, "feature_groups": groups_, "feature_views": {VIEW: view}}


def make_project(workdir: Path, data: Path, n: int, groups: int) -> Path:
    import yaml

    project = Path(tempfile.mkdtemp(prefix=f"project_n{n}_g{groups}_", dir=workdir))
    for name in ["spine", *(f"fg{g}" for g in range(groups))]:
        link_files(data / "base" / name, project / "data" / name)
    (project / "specs").mkdir()
    (project / "specs" / "bench.yaml").write_text(yaml.safe_dump(spec(groups), sort_keys=False))
    return project


# ---------------------------------------------------------------- the baselines (children)


def feature_columns(groups: int) -> list[str]:
    return [f"f{g}_{c}" for g in range(groups) for c in FEATURES]


def script_duckdb(project: Path, groups: int, out: Path) -> None:
    """The hand-written script: read the Parquet files, ASOF LEFT JOIN, write Parquet."""
    import duckdb

    con = duckdb.connect()
    columns = ", ".join(f"f{g}.{c} AS f{g}_{c}" for g in range(groups) for c in FEATURES)
    joins = "".join(
        f"\nASOF LEFT JOIN read_parquet('{project}/data/fg{g}/*.parquet') AS f{g}"
        f" ON s.entity_id = f{g}.entity_id AND s.event_time >= f{g}.event_time"
        for g in range(groups)
    )
    sql = f"SELECT s.row_id, s.event_time, s.label, {columns}\nFROM read_parquet('{project}/data/spine/*.parquet') AS s{joins}"
    con.execute(f"COPY ({sql}) TO '{out}' (FORMAT parquet)")
    con.close()


def script_floor(project: Path, groups: int, out: Path, sorted_from: int) -> None:
    """The engine's dataflow by hand, without its checks, statistics and bookkeeping: each feature
    group and the spine written once to Parquet as the engine stores them (sorted by key, one file,
    Parquet V2, from ``sorted_from`` rows: ``ORDERED_MIN_ROWS``; else one file per thread), then
    the engine's ASOF join read from those files and written, one file per thread, into the folder
    ``out``. The same statements the engine runs, less everything else it does."""
    import duckdb

    con = duckdb.connect()
    stored = Path(tempfile.mkdtemp(prefix="floor_", dir=out.parent))
    try:

        def store(name: str, select: str, source: str, key: str) -> str:
            rows = con.execute(f"SELECT count(*) FROM {source}").fetchone()[0]
            if rows >= sorted_from:
                con.execute(f"COPY ({select} ORDER BY {key}) TO '{stored / name}.parquet' (FORMAT parquet, PARQUET_VERSION v2)")
                return f"read_parquet('{stored / name}.parquet')"
            con.execute(f"COPY ({select}) TO '{stored / name}' (FORMAT parquet, PER_THREAD_OUTPUT true)")
            return f"read_parquet('{stored / name}/*.parquet')"

        raw = f"read_parquet('{project}/data/spine/*.parquet')"
        spine = store("spine", f"SELECT row_id, entity_id, event_time, label FROM {raw}", raw, "row_id, event_time")
        tables = []
        for g in range(groups):
            raw = f"read_parquet('{project}/data/fg{g}/*.parquet')"
            renamed = ", ".join(f"{c} AS f{g}_{c}" for c in FEATURES)
            tables.append(store(f"fg{g}", f"SELECT entity_id, event_time, {renamed} FROM {raw}", raw, "entity_id, event_time"))
        columns = ", ".join(f"f{g}.f{g}_{c}" for g in range(groups) for c in FEATURES)
        joins = "".join(
            f"\nASOF LEFT JOIN {table} AS f{g} ON s.entity_id = f{g}.entity_id AND s.event_time >= f{g}.event_time" for g, table in enumerate(tables)
        )
        con.execute(f"COPY (SELECT s.row_id, s.event_time, s.label, {columns}\nFROM {spine} AS s{joins}) TO '{out}' (FORMAT parquet, PER_THREAD_OUTPUT true)")
        con.close()
    finally:
        shutil.rmtree(stored, ignore_errors=True)


def sorted_from() -> int:
    """The engine's ``ORDERED_MIN_ROWS``, read from its source (this process imports no engine code)."""
    import re

    text = (REPO / "engine" / "backends" / "duckdb" / "backend.py").read_text()
    found = re.search(r"^ORDERED_MIN_ROWS = ([0-9_]+)", text, re.M)
    if found is None:
        raise SystemExit("ORDERED_MIN_ROWS not found in engine/backends/duckdb/backend.py")
    return int(found.group(1).replace("_", ""))


def script_pandas(project: Path, groups: int, out: Path) -> None:
    """pandas: read the Parquet files, merge_asof over the groups, write Parquet."""
    import pandas as pd

    result = pd.read_parquet(project / "data" / "spine").sort_values("event_time", kind="stable")
    for g in range(groups):
        frame = pd.read_parquet(project / "data" / f"fg{g}").rename(columns={c: f"f{g}_{c}" for c in FEATURES})
        result = pd.merge_asof(result, frame.sort_values("event_time"), on="event_time", by="entity_id", direction="backward")
    result[["row_id", "event_time", "label", *feature_columns(groups)]].to_parquet(out, index=False)


# ---------------------------------------------------------------- measuring a child


@dataclass
class Run:
    wall: float
    cpu: float
    peak_mb: float
    others: float | None  # average cores busy with other processes during the run
    steps: dict = field(default_factory=dict)  # engine only: seconds per step kind
    spread: list = field(default_factory=list)  # with --repeat: the wall times of every run


def median_run(runs: list, key):
    """The run whose ``key`` is the median (the lower middle one of an even count)."""
    ordered = sorted(runs, key=key)
    return ordered[(len(ordered) - 1) // 2]


def _busy_seconds() -> float | None:
    try:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except OSError:
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields[:8]
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


# The children run with Python's default bytecode cache, as on a user's machine (a pip install
# compiles it at install time): this sandbox sets PYTHONDONTWRITEBYTECODE=1, which made every run
# recompile the engine's modules (about 0.1 s of each apply). `engine validate`, run first, fills
# the cache.
CHILD_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def measure(cmd: list[str], cwd: Path) -> tuple[Run, str]:
    """Run ``cmd`` as one child; wall, user+sys CPU and peak RSS (``os.wait4``) of that child.

    Linux counts in a child's ``ru_maxrss`` the peak RSS of the memory it had before ``exec`` —
    with ``vfork`` the parent's, with ``fork`` a copy of it — so this process must stay small
    (standard library only; data generation and checks run in children of their own), and
    ``main`` warns if a child's figure does not exceed this process's own peak.
    """
    busy0 = _busy_seconds()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=cwd, stdout=out, stderr=err, env=CHILD_ENV)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        busy1 = _busy_seconds()
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(), err.read().decode()
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed (exit {proc.returncode}):\n{stderr[-4000:]}{stdout[-2000:]}")
    cpu = usage.ru_utime + usage.ru_stime
    others = None if busy0 is None or busy1 is None else max(0.0, (busy1 - busy0 - cpu) / wall)
    return Run(wall, cpu, usage.ru_maxrss / 1024, others), stdout


def engine_command(*args: str) -> list[str]:
    exe = Path(sys.executable).with_name("engine")
    return [str(exe), *args] if exe.exists() else [sys.executable, "-m", "engine", *args]


def engine_apply(project: Path) -> tuple[Run, list[dict]]:
    run, stdout = measure(engine_command("apply", str(project), "--select", VIEW, "--format", "json"), project)
    report = json.loads(stdout)
    steps = report.get("steps", [])
    for kind in ("source", "feature_group", "feature_view"):
        run.steps[kind] = sum(s.get("seconds") or 0.0 for s in steps if s["id"].startswith(kind + ":") and s["status"] == "ran")
    run.steps["other"] = run.wall - sum(run.steps.values())
    return run, steps


def baseline(method: str, project: Path, groups: int, out: Path) -> Run:
    cmd = [sys.executable, __file__, "--child", method, "--project", str(project), "--group-count", str(groups), f"--out={out}"]
    if method == "floor":
        shutil.rmtree(out, ignore_errors=True)  # the folder an earlier --repeat run wrote
        cmd.append(f"--sorted-from={sorted_from()}")
    return measure(cmd, project)[0]


# ---------------------------------------------------------------- correctness and disk


def checksum(relation: str, groups: int, con) -> tuple[int, int, int]:
    """(rows, rows matched in the last group, sum of a per-row hash): equal for equal multisets of rows."""
    values = ", ".join(f"CASE WHEN isnan({c}::DOUBLE) THEN NULL ELSE {c}::DOUBLE END" for c in feature_columns(groups))
    sql = f"SELECT count(*), count(f{groups - 1}_a), sum(hash(row_id, epoch_us(event_time), label, {values}))::VARCHAR FROM {relation}"
    rows, matched, digest = con.execute(sql).fetchone()
    return rows, matched, int(digest)


def verify_child(project: Path, groups: int, spine_rows: int, outputs: dict[str, Path]) -> tuple[bool, str]:
    import duckdb

    from engine import api

    frame = api.read_feature_view(project, VIEW)
    con = duckdb.connect()
    con.register("engine_view", frame)
    sums = {"engine": checksum("engine_view", groups, con)}
    for method, path in outputs.items():
        sums[method] = checksum(f"read_parquet('{path}')", groups, con)
    con.close()
    reference = sums["engine"]
    ok = reference[0] == spine_rows and all(s == reference for s in sums.values())
    detail = "; ".join(f"{m}: {s[0]:,} rows, checksum {s[2] % 10**8:08d}" for m, s in sums.items())
    verdict = f"agree ({reference[1] / reference[0]:.1%} of spine rows matched in fg{groups - 1})" if ok else "DISAGREE"
    return ok, f"{verdict} — {detail}"


def verify(project: Path, groups: int, spine_rows: int, outputs: dict[str, Path]) -> tuple[bool, str]:
    """Compare in a child process, so this (measuring) process stays small: see ``measure``."""
    cmd = [sys.executable, __file__, "--child", "verify", "--project", str(project), "--group-count", str(groups), "--n", str(spine_rows)]
    cmd += [f"--out={method}={path}" for method, path in outputs.items()]
    ok, check = json.loads(measure(cmd, project)[1].strip().splitlines()[-1])
    return ok, check


def disk_bytes(path: Path, *, beside: Path | None = None) -> int:
    """Bytes on disk (allocated blocks, as ``du``) of the files under ``path``, each inode once.
    ``beside``: leave out the files that are hard links to files under ``beside`` (a Parquet
    source the engine committed in place takes no space of its own), as ``du beside path``
    charges them to ``beside``."""
    taken = {p.stat().st_ino for p in beside.rglob("*") if p.is_file()} if beside is not None else set()
    total = 0
    for p in path.rglob("*"):
        if p.is_file():
            st = p.stat()
            if st.st_ino not in taken:
                taken.add(st.st_ino)
                total += st.st_blocks * 512
    return total


# ---------------------------------------------------------------- scenarios


def first_apply(args, n: int, groups: int, workdir: Path) -> dict:
    started = time.perf_counter()
    data = dataset(args.cache, n, groups, args.seed)
    project = make_project(workdir, data, n, groups)
    generated = time.perf_counter() - started
    validate, _ = measure(engine_command("validate", str(project)), project)
    # --repeat K: engine and script (and with --floor the floor) alternately, K times each, the
    # engine on a fresh workspace every time (the last one is kept for --incremental); each is
    # reported by its median run.
    engines, scripts, floors = [], [], []
    for attempt in range(args.repeat):
        if attempt:
            shutil.rmtree(project / ".engine")
        engines.append(engine_apply(project))
        scripts.append(baseline("script", project, groups, project / "script.parquet"))
        if args.floor:
            floors.append(baseline("floor", project, groups, project / "floor"))
    engine, steps = median_run(engines, key=lambda pair: pair[0].wall)
    engine.spread = [r.wall for r, _ in engines]
    script = median_run(scripts, key=lambda r: r.wall)
    script.spread = [r.wall for r in scripts]
    feature_rows = sum(s.get("rows") or 0 for s in steps if s["id"].startswith("feature_group:fg"))
    runs = {"engine": engine, "script": script}
    outputs = {"script": project / "script.parquet"}
    if floors:
        runs["floor"] = median_run(floors, key=lambda r: r.wall)
        runs["floor"].spread = [r.wall for r in floors]
        outputs["floor"] = project / "floor" / "*.parquet"  # a folder of files, as the engine writes its view
    if n <= args.pandas_max:
        runs["pandas"] = baseline("pandas", project, groups, project / "pandas.parquet")
        outputs["pandas"] = project / "pandas.parquet"
    ok, check = verify(project, groups, n, outputs)
    source, workspace = disk_bytes(project / "data"), disk_bytes(project / ".engine", beside=project / "data")
    for path in outputs.values():
        if path.name == "*.parquet":
            shutil.rmtree(path.parent)
        else:
            path.unlink()
    return {
        "n": n,
        "groups": groups,
        "feature_rows": feature_rows,
        "project": project,
        "generate_s": generated,
        "validate_s": validate.wall,
        "runs": runs,
        "pandas_skipped": n > args.pandas_max,
        "check_ok": ok,
        "check": check,
        "source_mb": source / 2**20,
        "workspace_mb": workspace / 2**20,
    }


def incremental(args, result: dict) -> dict:
    project, n, groups = result["project"], result["n"], result["groups"]
    noop, steps = engine_apply(project)
    noop_ran = [s["id"] for s in steps if s["status"] == "ran"]
    data = dataset(args.cache, n, groups, args.seed)
    for name in ["spine", *(f"fg{g}" for g in range(groups))]:
        link_files(data / "append" / name, project / "data" / name)
    again, steps = engine_apply(project)
    reasons = sorted({f"{s['id']} ({s.get('reason')})" for s in steps if s["status"] == "ran"})
    script = baseline("script", project, groups, project / "script.parquet")
    ok, check = verify(project, groups, n + max(1, int(n * APPEND)), {"script": project / "script.parquet"})
    (project / "script.parquet").unlink()
    noop_after, _ = engine_apply(project)
    first = result["runs"]["engine"].wall
    return {
        "n": n,
        "groups": groups,
        "first": result["runs"]["engine"],
        "noop": noop,
        "noop_ran": noop_ran,
        "incremental": again,
        "incremental_pct": 100 * again.wall / first,
        "incremental_target_s": INCREMENTAL_TARGET[0] * first + INCREMENTAL_TARGET[1],
        "script_after_append": script,
        "noop_after": noop_after,
        "ran": reasons,
        "check_ok": ok,
        "check": check,
        "workspace_mb": disk_bytes(project / ".engine", beside=project / "data") / 2**20,
        "source_mb": disk_bytes(project / "data") / 2**20,
    }


# ---------------------------------------------------------------- printing


def _others(run: Run) -> str:
    return "" if run.others is None else f"{run.others:.2f}"


def run_table(result: dict) -> list[str]:
    runs, script = result["runs"], result["runs"]["script"]
    lines = [
        f"\n## {result['n']:,} spine rows, {result['groups']} feature group(s), {result['feature_rows']:,} feature rows"
        + (f" (engine and script: median of {len(script.spread)} alternating runs)" if len(script.spread) > 1 else ""),
        "",
        "| method | wall s | CPU s | peak MB | time × | CPU × | memory × | others (cores) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    labels = {"engine": "`engine apply`", "script": "DuckDB script", "floor": "floor: the engine's writes + join, by hand", "pandas": "pandas merge_asof"}
    for method, r in runs.items():
        wall = f"{r.wall:.2f}" + (f" ({min(r.spread):.2f}–{max(r.spread):.2f})" if len(r.spread) > 1 else "")
        lines.append(
            f"| {labels[method]} | {wall} | {r.cpu:.2f} | {r.peak_mb:.0f} | {r.wall / script.wall:.2f} | {r.cpu / script.cpu:.2f} | "
            f"{r.peak_mb / script.peak_mb:.2f} | {_others(r)} |"
        )
    engine = runs["engine"]
    time_x, memory_x = engine.wall / script.wall, engine.peak_mb / script.peak_mb
    lines.append("")
    lines.append(
        f"targets: time ≤ {TIME_TARGET}×: {'met' if time_x <= TIME_TARGET else 'NOT met'} ({time_x:.2f}×); "
        f"memory ≤ {MEMORY_TARGET}×: {'met' if memory_x <= MEMORY_TARGET else 'NOT met'} ({memory_x:.2f}×)"
    )
    steps = engine.steps
    lines.append(
        f"engine steps: sources {steps['source']:.2f} s, feature groups {steps['feature_group']:.2f} s, view {steps['feature_view']:.2f} s, "
        f"rest (start-up, plan, bookkeeping) {steps['other']:.2f} s; `engine validate` {result['validate_s']:.2f} s"
    )
    if "floor" in runs:
        floor_x = runs["floor"].wall / script.wall
        lines.append(
            f"floor: storing each group and the spine once and joining them costs {floor_x:.2f}× the script; the engine's checks, "
            f"statistics, start-up and bookkeeping add {time_x - floor_x:.2f}× ({engine.wall - runs['floor'].wall:.2f} s); "
            f"under the {TIME_TARGET}× target they could take {max(0.0, TIME_TARGET - floor_x):.2f}× ({max(0.0, TIME_TARGET * script.wall - runs['floor'].wall):.2f} s)"
        )
    if result["pandas_skipped"]:
        lines.append(f"pandas skipped: {result['n']:,} spine rows is above --pandas-max")
    ratio = result["workspace_mb"] / result["source_mb"]
    lines.append(
        f"disk: source Parquet {result['source_mb']:.0f} MB, .engine/ {result['workspace_mb']:.0f} MB = {ratio:.2f}× "
        f"(target ≤ {DISK_TARGET}×: {'met' if ratio <= DISK_TARGET else 'NOT met'})"
    )
    lines.append(f"check: {result['check']}")
    return lines


def incremental_table(inc: dict) -> list[str]:
    first, target = inc["first"].wall, inc["incremental_target_s"]
    again, noop, after = inc["incremental"], inc["noop"], inc["noop_after"]
    lines = [
        f"\n## incremental: {inc['n']:,} spine rows, {inc['groups']} group(s), +{APPEND:.0%} rows appended to every source as a new file",
        "",
        "| apply | wall s | CPU s | peak MB | % of first apply | target | others (cores) |",
        "| --- | ---: | ---: | ---: | ---: | --- | ---: |",
        f"| first apply | {first:.2f} | {inc['first'].cpu:.2f} | {inc['first'].peak_mb:.0f} | 100% |  | {_others(inc['first'])} |",
        f"| no-op (nothing changed) | {noop.wall:.2f} | {noop.cpu:.2f} | {noop.peak_mb:.0f} | {100 * noop.wall / first:.1f}% | ≤ {NOOP_TARGET} s: "
        f"{'met' if noop.wall <= NOOP_TARGET else 'NOT met'} | {_others(noop)} |",
        f"| after a 1% append | {again.wall:.2f} | {again.cpu:.2f} | {again.peak_mb:.0f} | {inc['incremental_pct']:.1f}% | ≤ {target:.2f} s (5% + 1 s): "
        f"{'met' if again.wall <= target else 'NOT met'} | {_others(again)} |",
        f"| no-op after the append | {after.wall:.2f} | {after.cpu:.2f} | {after.peak_mb:.0f} | {100 * after.wall / first:.1f}% | ≤ {NOOP_TARGET} s: "
        f"{'met' if after.wall <= NOOP_TARGET else 'NOT met'} | {_others(after)} |",
        "",
        f"re-apply steps: sources {again.steps['source']:.2f} s, feature groups {again.steps['feature_group']:.2f} s, view {again.steps['feature_view']:.2f} s, "
        f"rest {again.steps['other']:.2f} s; ran: {', '.join(inc['ran'])}",
        f"DuckDB script on the appended files: {inc['script_after_append'].wall:.2f} s (engine re-apply {again.wall / inc['script_after_append'].wall:.2f}×)",
        f"no-op steps that ran: {', '.join(inc['noop_ran']) or 'none'}; .engine/ after the append: {inc['workspace_mb']:.0f} MB "
        f"= {inc['workspace_mb'] / inc['source_mb']:.2f}× the sources",
        f"check after the append: {inc['check']}",
    ]
    return lines


def scaling_table(results: list[dict]) -> list[str]:
    lines = [
        "\n## scaling (1 feature group). Per step: time × (exponent = log(time ×) / log(data ×); 1.0 = linear)",
        "",
        "| spine rows | feature rows | engine s | engine CPU s | engine MB | script s | script CPU s | script MB | engine/script CPU | others (cores) "
        "| data × | engine CPU × | script CPU × | engine wall × | script wall × |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]

    def growth(now: float, before: float, data: float) -> str:
        return f"{now / before:.2f} ({math.log(now / before) / math.log(data):.2f})"

    previous = None
    for r in results:
        e, s = r["runs"]["engine"], r["runs"]["script"]
        step = " |  |  |  |"
        if previous is not None:
            pe, ps = previous["runs"]["engine"], previous["runs"]["script"]
            data = r["n"] / previous["n"]
            step = f"{data:.0f} | {growth(e.cpu, pe.cpu, data)} | {growth(s.cpu, ps.cpu, data)} | {growth(e.wall, pe.wall, data)} | {growth(s.wall, ps.wall, data)}"
        lines.append(
            f"| {r['n']:,} | {r['feature_rows']:,} | {e.wall:.2f} | {e.cpu:.2f} | {e.peak_mb:.0f} | {s.wall:.2f} | {s.cpu:.2f} | {s.peak_mb:.0f} | "
            f"{e.cpu / s.cpu:.2f} | {_others(e)} | {step} |"
        )
        previous = r
    return lines


# ---------------------------------------------------------------- driver


def _as_json(value):
    if isinstance(value, Run):
        return asdict(value)
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, dict):
        return {k: _as_json(v) for k, v in value.items() if k != "project"}
    if isinstance(value, list):
        return [_as_json(v) for v in value]
    return value


def machine() -> dict:
    from importlib.metadata import version

    memory = next((int(line.split()[1]) // 1024 for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal")), None)
    commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    return {
        "cores": os.cpu_count(),
        "memory_mb": memory,
        "load_average": os.getloadavg(),
        "python": sys.version.split()[0],
        "duckdb": version("duckdb"),
        "pandas": version("pandas"),
        "pyarrow": version("pyarrow"),
        "commit": commit,
    }


def _all_runs(figures: dict) -> list[Run]:
    runs = [r for result in figures["runs"] for r in result["runs"].values()]
    for inc in figures["incremental"]:
        runs += [inc["noop"], inc["incremental"], inc["script_after_append"], inc["noop_after"]]
    return runs


def _counts(text: str) -> list[int]:
    return [int(x) for x in text.replace(" ", ",").split(",") if x]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--groups", type=_counts, help="feature-group counts at --n, e.g. 1,3 (default: 1,3 when no scenario is named)")
    parser.add_argument("--n", type=int, default=1_000_000, help="spine rows for --groups and --incremental (default 1,000,000)")
    parser.add_argument("--scale", type=_counts, help="scaling series: multiples of --base, e.g. 1,4,16 (1 feature group)")
    parser.add_argument("--base", type=int, default=250_000, help="spine rows at scale 1 (default 250,000)")
    parser.add_argument("--incremental", action="store_true", help="after each --groups run: no-op re-apply, 1%% append, re-apply (default: on when no scenario is named)")
    parser.add_argument("--pandas-max", type=int, default=4_000_000, help="skip pandas above this many spine rows (default 4,000,000)")
    parser.add_argument("--repeat", type=int, default=1, help="first applies: run the engine and the script this many times each, alternately, and report each by its median run (wall s shows the range)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--cache", type=Path, default=HERE / ".data", help="where generated Parquet and the projects go (default benchmarks/.data)")
    parser.add_argument("--keep", action="store_true", help="keep the generated projects (with their .engine/)")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument("--floor", action="store_true", help="first applies: also run the engine's dataflow by hand (each group and the spine stored once, then joined), alternately with the others")
    parser.add_argument("--child", choices=["script", "floor", "pandas", "generate", "verify"], help=argparse.SUPPRESS)
    parser.add_argument("--sorted-from", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--project", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--group-count", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--out", action="append", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child in ("script", "pandas"):
        (script_duckdb if args.child == "script" else script_pandas)(args.project, args.group_count, Path(args.out[0]))
        return 0
    if args.child == "floor":
        script_floor(args.project, args.group_count, Path(args.out[0]), args.sorted_from)
        return 0
    if args.child == "generate":
        generate(args.cache, args.n, args.group_count, args.seed)
        return 0
    if args.child == "verify":
        outputs = {m: Path(p) for m, _, p in (o.partition("=") for o in args.out or [])}
        print(json.dumps(verify_child(args.project, args.group_count, args.n, outputs)))
        return 0
    if args.groups is None and args.scale is None and not args.incremental:
        args.groups, args.incremental = [1, 3], True
    if args.incremental and not args.groups:
        args.groups = [1]

    facts = machine()
    print(
        f"# end-to-end benchmark: engine apply vs a hand-written DuckDB script ({facts['cores']} cores, {facts['memory_mb']:,} MB, "
        f"duckdb {facts['duckdb']}, pandas {facts['pandas']}, commit {facts['commit']}, load average {', '.join(f'{x:.2f}' for x in facts['load_average'])})",
        flush=True,
    )
    args.cache.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="work_", dir=args.cache))
    started = time.perf_counter()
    done: dict[tuple[int, int], dict] = {}
    figures: dict = {"machine": facts, "runs": [], "incremental": [], "scaling": []}

    def run(n: int, groups: int, then_incremental: bool) -> dict:
        if (n, groups) not in done:
            result = first_apply(args, n, groups, workdir)
            done[(n, groups)] = result
            figures["runs"].append(result)
            for line in run_table(result):
                print(line, flush=True)
            if then_incremental:
                inc = incremental(args, result)
                figures["incremental"].append(inc)
                for line in incremental_table(inc):
                    print(line, flush=True)
            if not args.keep:
                shutil.rmtree(result["project"], ignore_errors=True)
        return done[(n, groups)]

    try:
        for groups in args.groups or []:
            run(args.n, groups, args.incremental)
        if args.scale:
            series = [run(args.base * k, 1, False) for k in args.scale]
            figures["scaling"] = series
            for line in scaling_table(series):
                print(line, flush=True)
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    figures["total_s"] = time.perf_counter() - started
    figures["load_average_end"] = os.getloadavg()
    print(f"\ntotal {figures['total_s']:.0f} s; load average at the end {', '.join(f'{x:.2f}' for x in figures['load_average_end'])}")
    parent_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    figures["parent_peak_mb"] = parent_mb
    suspect = [r for r in _all_runs(figures) if r.peak_mb <= parent_mb * 1.05]
    if suspect:
        print(f"WARNING: {len(suspect)} peak-memory figures are within 5% of this process's own peak ({parent_mb:.0f} MB) and may be it")
    if args.json:
        args.json.write_text(json.dumps(_as_json(figures), indent=2))
    failed = [r for r in figures["runs"] + figures["incremental"] if not r["check_ok"]]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
