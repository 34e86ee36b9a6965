"""Contract-suite fixtures: one parametrised fixture per protocol, listing its implementations.

STYLE habit 9, ARCHITECTURE-TARGET §5.3 step 9. Every test under ``tests/contract`` talks to an
implementation only through its protocol (``Backend``, ``OfflineStore``, ``OnlineStore``,
``ModelRegistry``). A new implementation (a Spark backend, an MLflow registry) joins the suite by
adding one ``Impl`` to the list below; if it needs a component that is not installed, it names
that module in ``requires`` and its tests are skipped with a visible reason instead of failing.

The only implementation-specific code lives here, in each ``Impl``'s ``make`` (and, for the
registry, ``tamper``): opening a backend, creating its schemas, building a store on it.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from engine.sql.ops import Relation

UTC = timezone.utc
T0 = datetime(2024, 1, 1, tzinfo=UTC)


# --- implementations ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Impl:
    """One implementation of a protocol: how to build it in a test's ``tmp_path``.

    ``make`` builds it: backends from ``tmp_path``, offline stores from a backend, online stores
    from a workspace, registries from ``tmp_path`` as ``(registry, cleanup)``. ``requires`` lists
    the modules it imports (one missing → its tests are skipped, the reason shown). ``persistent``:
    its data survives close, and ``reopen(tmp_path)`` opens the same storage again. ``tamper(registry,
    version)`` corrupts a registered artifact the way a disk or a person would (G5).
    """

    id: str
    make: Callable[..., Any]
    requires: tuple[str, ...] = ()
    persistent: bool = False
    reopen: Callable[..., Any] | None = None
    tamper: Callable[..., None] | None = None
    marks: tuple[str, ...] = ()  # pytest markers of its tests (``spark``: selectable with -m)


def _require(impl: Impl) -> None:
    for module in impl.requires:
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"{impl.id}: {module} is not installed, so this implementation cannot run here")


def _duckdb_open(path: Path | None):
    """A DuckDB backend through the registry of backends: every table in memory (``path`` None),
    or over a workspace folder: the SQLite catalog and the Delta lake, as ``engine apply`` opens it."""
    from engine.backends import load
    from engine.backends.catalog import SqliteCatalog
    from engine.backends.lake import Lake

    cls = load("duckdb")
    if path is None:
        return cls.in_memory()
    path.mkdir(parents=True, exist_ok=True)
    catalog = SqliteCatalog.open(path / "catalog.sqlite")
    return cls.open(catalog, Lake(path / "tables", catalog))


BACKENDS = [
    Impl("duckdb-memory", lambda tmp: _duckdb_open(None)),
    Impl(
        "duckdb-lake",
        lambda tmp: _duckdb_open(tmp / "ws"),
        persistent=True,
        reopen=lambda tmp: _duckdb_open(tmp / "ws"),
    ),
    Impl(
        "spark-cluster",
        lambda tmp: _spark_open(tmp / "ws"),
        requires=("pyspark",),
        persistent=True,
        reopen=lambda tmp: _spark_open(tmp / "ws"),
        marks=("spark",),
    ),
]


def _spark_open(path: Path):
    """A Spark backend over a workspace folder, on the session's real standalone cluster (a master
    and two workers on 127.0.0.1, tests/support_spark.py), whose SparkSession every test reuses."""
    from engine.backends import load
    from engine.backends.catalog import SqliteCatalog
    from engine.backends.lake import Lake
    from tests.support_spark import cluster_settings

    path.mkdir(parents=True, exist_ok=True)
    catalog = SqliteCatalog.open(path / "catalog.sqlite")
    return load("spark").open(catalog, Lake(path / "tables", catalog), temp_directory=path / "tmp", settings=cluster_settings())


def _params(impls: list[Impl]) -> list:
    return [pytest.param(i, id=i.id, marks=[getattr(pytest.mark, m) for m in i.marks]) for i in impls]


@pytest.fixture(params=_params(BACKENDS))
def backend_impl(request) -> Impl:
    _require(request.param)
    return request.param


@pytest.fixture
def backend(backend_impl: Impl, tmp_path: Path) -> Iterator[Any]:
    """An open, empty backend (schemas ``staging``, ``offline``, ``online``, ... exist)."""
    opened = backend_impl.make(tmp_path)
    try:
        yield opened
    finally:
        opened.close()


def _table_offline_store(backend):
    from engine.state import metadata
    from engine.store.offline import TableOfflineStore

    metadata.ensure_schema(backend.catalog)
    return TableOfflineStore(backend)


OFFLINE_STORES = [Impl("table", _table_offline_store)]


@pytest.fixture(params=OFFLINE_STORES, ids=[i.id for i in OFFLINE_STORES])
def offline_store(request, backend):
    """An offline store on ``backend`` (so it runs once per backend implementation)."""
    _require(request.param)
    return request.param.make(backend)


def _snapshot_online_store(workspace):
    from engine.store.online import SnapshotOnlineStore

    return SnapshotOnlineStore(workspace)


ONLINE_STORES = [Impl("snapshot", _snapshot_online_store)]


@pytest.fixture
def workspace(tmp_path: Path):
    """An empty engine workspace (``.engine``) in ``tmp_path``."""
    from engine.state.workspace import Workspace

    ws = Workspace(tmp_path / ".engine")
    ws.create()
    return ws


@pytest.fixture(params=ONLINE_STORES, ids=[i.id for i in ONLINE_STORES])
def online_store(request, workspace):
    _require(request.param)
    return request.param.make(workspace)


class Clock:
    """A deterministic UTC clock: each call is one minute later."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        self.now += timedelta(minutes=1)
        return self.now


def _local_registry(tmp: Path):
    from engine.registry.local import LocalRegistry

    backend = _duckdb_open(tmp / "registry")
    registry = LocalRegistry(backend.catalog, tmp / "models", clock=Clock())
    return registry, backend.close


def _tamper_local(registry, mv) -> None:
    """Flip one byte of the stored artifact file."""
    path = registry.models_dir / mv.name / str(mv.version) / mv.artifact.file
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def _mlflow_registry(tmp: Path):
    """An MLflow registry on the session's real ``mlflow server`` (tests/support_mlflow.py), in a
    namespace of its own; the server is thrown away at the end of the session, so no cleanup."""
    from tests.support_mlflow import new_registry

    return new_registry(tmp, clock=Clock()), lambda: None


def _tamper_mlflow(registry, mv) -> None:
    """Flip one byte of the artifact in the server's artifact store."""
    from tests.support_mlflow import tamper

    tamper(registry, mv)


REGISTRIES = [
    Impl("local", _local_registry, tamper=_tamper_local),
    Impl("mlflow", _mlflow_registry, requires=("mlflow",), tamper=_tamper_mlflow),
]


@pytest.fixture(params=REGISTRIES, ids=[i.id for i in REGISTRIES])
def registry_impl(request) -> Impl:
    _require(request.param)
    return request.param


@pytest.fixture
def registry(registry_impl: Impl, tmp_path: Path):
    made, cleanup = registry_impl.make(tmp_path)
    try:
        yield made
    finally:
        cleanup()


# --- a tiny checked project (for FeatureGroup objects) -----------------------------------------------


@pytest.fixture(scope="session")
def shop(tmp_path_factory):
    """The ``tiny_project`` spec of tests/conftest.py, validated once: its ``CheckedProject``."""
    from engine import api
    from tests.conftest import ORDERS_CSV, TINY_SPEC, USERS_CSV, USERS_PY, write

    root = tmp_path_factory.mktemp("contract") / "shop"
    write(root, "specs/shop.yaml", TINY_SPEC)
    write(root, "data/orders.csv", ORDERS_CSV)
    write(root, "data/users.csv", USERS_CSV)
    write(root, "shop_features/__init__.py", "")
    write(root, "shop_features/users.py", USERS_PY)
    return api.validate(root)


# --- data builders --------------------------------------------------------------------------------


def ts(seconds: float) -> datetime:
    """An aware UTC time ``seconds`` after 2024-01-01T00:00Z."""
    return T0 + timedelta(seconds=seconds)


def arrow(columns: dict[str, list], types: dict[str, str] | None = None):
    """An Arrow table from Python lists. ``types`` maps a column to int/float/str/bool/time
    (time: aware datetimes → timestamp[us, UTC]); other columns are inferred."""
    import pyarrow as pa

    kinds = {
        "int": pa.int64(),
        "float": pa.float64(),
        "str": pa.string(),
        "bool": pa.bool_(),
        "time": pa.timestamp("us", tz="UTC"),
    }
    arrays = {}
    for name, values in columns.items():
        kind = (types or {}).get(name)
        if kind is None and any(isinstance(v, datetime) for v in values):
            kind = "time"
        arrays[name] = pa.array(values, kinds[kind]) if kind else pa.array(values)
    return pa.table(arrays)


def rows(backend, source) -> list[dict]:
    """``backend.fetch(source)`` as a list of dicts (in the order the backend returned them)."""
    return backend.fetch(source).to_pylist()


def staging(name: str) -> Relation:
    return Relation("staging", name)


ORDERS_TYPES = {"order_id": "int", "user_id": "int", "amount": "float", "ordered_at": "time"}


def orders(*records: tuple[int, int, float, float]):
    """Staged rows of the tiny project's ``orders`` group: (order_id, user_id, amount, seconds)."""
    return arrow(
        {
            "order_id": [r[0] for r in records],
            "user_id": [r[1] for r in records],
            "amount": [r[2] for r in records],
            "ordered_at": [ts(r[3]) for r in records],
        },
        ORDERS_TYPES,
    )


def put(backend, target: Relation, data, **kwargs) -> int:
    return backend.write(target, data, **kwargs)


def append(backend, target: Relation, data, keys, **kwargs) -> int:
    return backend.append_new(target, data, keys, **kwargs)


def user_filter(text: str, *, gated: bool = True):
    """A feature view's ``filter`` as callers build it: checked and parsed by the gate
    (``gate_filter``). ``gated=False`` parses without the gate's checks, to stand for a hole in
    the gate that the backend's sandbox must still stop (Q1, V2)."""
    from engine.sql.ops import UserFilter

    if gated:
        from engine.sql.gate import gate_filter

        condition, problems = gate_filter(text)
        assert condition is not None and not problems, problems
        return UserFilter(condition)
    import sqlglot
    from sqlglot import exp

    return UserFilter(sqlglot.parse_one(text, read="duckdb", into=exp.Condition))
