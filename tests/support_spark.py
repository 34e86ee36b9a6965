"""A real Spark standalone cluster for the Spark tests: one master and two workers (1 core, 1 GiB
each) on 127.0.0.1, started from pyspark's own ``bin/spark-class`` (the PyPI wheel has no
``sbin/start-master.sh``, V25), once per test process and only when a test asks for it; stopped at
the end of the session.

``shared_cluster()`` starts it on first use (the contract suite's ``Impl.make`` has no access to
fixtures); the ``spark_cluster`` fixture (tests/spark/conftest.py) hands the same cluster to tests.
The process's SparkSession (``engine.backends.spark.connect``) is shared by every test that uses
the cluster, so the JVM starts once.
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

START_TIMEOUT = 90.0


def free_port() -> int:
    return free_ports(1)[0]


def free_ports(n: int) -> list[int]:
    """``n`` distinct free ports on loopback. All sockets are held open until every port is picked,
    so the kernel cannot hand the same port out twice (it did: a worker's web UI took the master's
    and the readiness probe read the worker's HTML page)."""
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def spark_class() -> Path:
    import pyspark

    return Path(pyspark.__file__).parent / "bin" / "spark-class"


@dataclass
class SparkCluster:
    """A running standalone master with its workers."""

    master_url: str
    web_url: str
    root: Path
    processes: list[subprocess.Popen] = field(default_factory=list)

    def workers_alive(self) -> int:
        import json

        try:
            with urllib.request.urlopen(f"{self.web_url}/json/", timeout=2) as response:
                state = json.load(response)
        except (OSError, ValueError):  # not up yet, or not the master's UI (then the start times out with the logs)
            return 0
        return sum(1 for w in state.get("workers", []) if w.get("state") == "ALIVE")

    def stop(self) -> None:
        for process in reversed(self.processes):
            if process.poll() is None:
                try:
                    os.killpg(os.getpgid(process.pid), signal.SIGTERM)
                except ProcessLookupError:
                    continue
        for process in self.processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(os.getpgid(process.pid), signal.SIGKILL)
                process.wait(timeout=10)
        shutil.rmtree(self.root, ignore_errors=True)

    def log_tail(self, lines: int = 20) -> str:
        out = []
        for log in sorted(self.root.glob("*.log")):
            out.append(f"--- {log.name}\n" + "\n".join(log.read_text(errors="replace").splitlines()[-lines:]))
        return "\n".join(out)


def start_cluster(workers: int = 2) -> SparkCluster:
    """Start a master and ``workers`` workers; wait until every worker has registered."""
    root = Path(tempfile.mkdtemp(prefix="engine-spark-cluster-"))
    port, web, *worker_webs = free_ports(2 + workers)
    env = {**os.environ, "SPARK_LOCAL_IP": "127.0.0.1", "SPARK_LOG_DIR": str(root), "SPARK_WORKER_DIR": str(root / "work"), "PYSPARK_PYTHON": sys.executable}
    env.pop("PYSPARK_SUBMIT_ARGS", None)
    cluster = SparkCluster(f"spark://127.0.0.1:{port}", f"http://127.0.0.1:{web}", root)

    def launch(name: str, *args: str) -> None:
        log = open(root / f"{name}.log", "wb")  # noqa: SIM115 (closed with the process)
        cluster.processes.append(
            subprocess.Popen([str(spark_class()), *args], stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True, preexec_fn=_die_with_parent)
        )

    launch("master", "org.apache.spark.deploy.master.Master", "--host", "127.0.0.1", "--port", str(port), "--webui-port", str(web))
    for n in range(workers):
        launch(
            f"worker{n}", "org.apache.spark.deploy.worker.Worker", cluster.master_url,
            "--host", "127.0.0.1", "--cores", "1", "--memory", "1g", "--webui-port", str(worker_webs[n]),
            "--work-dir", str(root / f"work{n}"),
        )  # fmt: skip
    deadline = time.monotonic() + START_TIMEOUT
    while cluster.workers_alive() < workers:
        if time.monotonic() > deadline or any(p.poll() is not None for p in cluster.processes):
            tail = cluster.log_tail()
            cluster.stop()
            raise RuntimeError(f"the Spark cluster did not start ({workers} workers wanted):\n{tail}")
        time.sleep(0.5)
    return cluster


def _die_with_parent() -> None:
    """SIGTERM this child when the test process dies, even by a signal that skips ``atexit``
    (spark-class ends in ``exec java``, which keeps the setting)."""
    import ctypes

    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


_cluster: SparkCluster | None = None


def shared_cluster() -> SparkCluster:
    """The test process's cluster, started on first use and stopped at exit."""
    global _cluster
    if _cluster is None:
        _cluster = start_cluster()
        atexit.register(stop_shared)
    return _cluster


def stop_shared() -> None:
    global _cluster
    if _cluster is not None:
        try:
            from engine.backends.spark import connect

            connect.stop()
        finally:
            _cluster.stop()
            _cluster = None


def cluster_settings():
    """SparkSettings for the shared cluster (the session every cluster test reuses)."""
    from engine.backends.spark.connect import SparkSettings

    conf = {
        "spark.executor.memory": "768m",
        "spark.cores.max": "2",
        "spark.sql.shuffle.partitions": "2",
        "spark.driver.host": "127.0.0.1",  # the workers connect back to the driver on loopback
        "spark.driver.bindAddress": "127.0.0.1",
    }
    return SparkSettings(shared_cluster().master_url, tuple(sorted(conf.items())))


# --- comparing what two workspaces hold ------------------------------------------------------------


def lake_tables(workspace_root: Path, schemas: tuple[str, ...] = ("offline", "training")) -> dict[str, list[dict]]:
    """Every committed table of a workspace in ``schemas``, read through the lake's file lists with
    pyarrow (neither backend): ``schema.name`` -> rows."""
    return {name: table.to_pylist() for name, table in lake_arrow(workspace_root, schemas).items()}


def lake_arrow(workspace_root: Path, schemas: tuple[str, ...] = ("offline", "training")) -> dict[str, "pyarrow.Table"]:
    """``lake_tables`` as Arrow tables (for large tables: ``assert_same_tables``)."""
    import pyarrow as pa
    import pyarrow.dataset as ds

    from engine.backends.catalog import SqliteCatalog
    from engine.backends.lake import Lake
    from engine.state.workspace import Workspace

    ws = Workspace(Path(workspace_root))
    catalog = SqliteCatalog.open_read_only(ws.catalog)
    try:
        lake = Lake(ws.tables_dir, catalog, read_only=True)
        out = {}
        for relation in sorted(lake.committed()):
            if relation.schema not in schemas:
                continue
            files = lake.files(relation)
            schema = lake.schema(relation)
            out[f"{relation.schema}.{relation.name}"] = ds.dataset(files, schema=schema, format="parquet").to_table() if files else schema.empty_table()
        return out
    finally:
        catalog.close()


def lake_types(workspace_root: Path, schemas: tuple[str, ...] = ("offline", "views")) -> dict[str, dict[str, str]]:
    """The column types of every committed table in ``schemas``, as the lake records them (Arrow),
    with representation-only differences folded (large_string is string; any UTC zone name is UTC)."""
    import pyarrow as pa

    from engine.backends.catalog import SqliteCatalog
    from engine.backends.lake import Lake
    from engine.state.workspace import Workspace

    def name(t) -> str:
        if pa.types.is_large_string(t):
            return "string"
        if pa.types.is_timestamp(t):
            return f"timestamp[{t.unit}, {'UTC' if t.tz in ('UTC', 'Etc/UTC', '+00:00') else t.tz}]"
        return str(t)

    ws = Workspace(Path(workspace_root))
    catalog = SqliteCatalog.open_read_only(ws.catalog)
    try:
        lake = Lake(ws.tables_dir, catalog, read_only=True)
        return {
            f"{r.schema}.{r.name}": {f.name: name(f.type) for f in lake.schema(r)}
            for r in sorted(lake.committed()) if r.schema in schemas
        }  # fmt: skip
    finally:
        catalog.close()


def _plain(value):
    from decimal import Decimal

    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return value


def _sort_key(row: dict) -> tuple:
    import math

    out = []
    for name in sorted(row):
        v = _plain(row[name])
        if isinstance(v, float):
            v = round(v, 6) if math.isfinite(v) else repr(v)
        out.append((name, v is None, repr(v) if not isinstance(v, int | float) else v))
    return tuple(out)


def assert_same_rows(left: list[dict], right: list[dict], what: str, tolerance: float = 1e-9, *, nan_is_null: bool = False) -> None:
    """The two row lists are equal as multisets: same columns, same values, floats within
    ``tolerance`` (relative or absolute); integers and integral decimals compare as numbers.
    ``nan_is_null``: a float NaN and a NULL count as the same missing value."""
    import math

    if nan_is_null:
        left = [{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()} for row in left]
        right = [{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()} for row in right]

    assert len(left) == len(right), f"{what}: {len(left)} rows vs {len(right)}"
    if not left:
        return
    assert set(left[0]) == set(right[0]), f"{what}: columns {sorted(left[0])} vs {sorted(right[0])}"
    for a, b in zip(sorted(left, key=_sort_key), sorted(right, key=_sort_key)):
        for name in a:
            x, y = _plain(a[name]), _plain(b[name])
            if isinstance(x, float) or isinstance(y, float):
                if x is None or y is None:
                    assert x is None and y is None, f"{what}.{name}: {x!r} vs {y!r}"
                elif math.isnan(x) or math.isnan(y):
                    assert math.isnan(x) and math.isnan(y), f"{what}.{name}: {x!r} vs {y!r}"
                else:
                    assert math.isclose(x, y, rel_tol=tolerance, abs_tol=tolerance), f"{what}.{name}: {x!r} vs {y!r} in {a}"
            else:
                assert x == y, f"{what}.{name}: {x!r} vs {y!r} in {a}"


def assert_same_tables(left: "pyarrow.Table", right: "pyarrow.Table", what: str, tolerance: float = 1e-9) -> None:
    """``assert_same_rows`` for large tables, vectorised: equal as multisets, floats within
    ``tolerance`` (relative or absolute), NaN and NULL floats alike, NULL equal to NULL; integers
    and decimals compare as floats. Rows are aligned by sorting each table on every column (floats
    rounded to 6 decimals), in Arrow: pandas' per-value string keys took a minute on the flights
    example."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    assert left.num_rows == right.num_rows, f"{what}: {left.num_rows} rows vs {right.num_rows}"
    assert sorted(left.column_names) == sorted(right.column_names), f"{what}: columns {sorted(left.column_names)} vs {sorted(right.column_names)}"
    names = sorted(left.column_names)

    def numeric(t: pa.DataType) -> bool:
        return pa.types.is_decimal(t) or pa.types.is_floating(t) or pa.types.is_integer(t)

    def aligned(table: pa.Table) -> pa.Table:
        columns = {}
        for name in names:
            column = table.column(name)
            columns[name] = pc.fill_null(column.cast(pa.float64()), float("nan")) if numeric(column.type) else column
        out = pa.table(columns)
        # numpy's round (x * 1e6, rounded, / 1e6) maps two floats a few ulps apart to the very same
        # value; pyarrow's round can keep them one ulp apart, which misaligns the rows.
        keys = pa.table({n: pa.array(np.round(out[n].to_numpy(), 6)) if pa.types.is_floating(out[n].type) else out[n] for n in names})
        return out.take(pc.sort_indices(keys, sort_keys=[(n, "ascending", "at_start") for n in names]))

    a, b = aligned(left), aligned(right)
    for name in names:
        x, y = a.column(name), b.column(name)
        if pa.types.is_floating(x.type) and pa.types.is_floating(y.type):
            xs, ys = x.to_numpy(), y.to_numpy()
            same = np.isclose(xs, ys, rtol=tolerance, atol=tolerance) | (np.isnan(xs) & np.isnan(ys))
        else:
            y = y.cast(x.type) if y.type != x.type else y
            equal = pc.fill_null(pc.equal(x, y), False)
            same = pc.or_(equal, pc.and_(pc.is_null(x), pc.is_null(y))).to_numpy(zero_copy_only=False)
        if not same.all():
            i = int(np.argmin(same))
            raise AssertionError(f"{what}.{name}: {x[i].as_py()!r} vs {y[i].as_py()!r} in row {a.slice(i, 1).to_pylist()[0]}")


def model_metrics(workspace_root: Path) -> dict[str, dict]:
    """model name -> metrics of its latest version, from the registry's manifests."""
    import json

    out = {}
    for manifest in sorted(Path(workspace_root).glob("models/*/*/manifest.json")):
        data = json.loads(manifest.read_text())
        out[manifest.parent.parent.name] = data.get("metrics")
    return out
