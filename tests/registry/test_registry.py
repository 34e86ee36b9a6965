"""The model registry: versions, idempotent registration, aliases, best-by-metric look-up,
integrity checks and crash leftovers (DESIGN §4 workspace, RELIABILITY G4, G5, G6)."""

from __future__ import annotations

from tests.support import golden_checker

import errno
import json
import os
import re
import shutil
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest

from engine.errors import ExecutionError, ExitCode, StorageIOError, UsageError
from engine.backends.catalog import SqliteCatalog
from engine.backends.duckdb import DuckDBBackend
from engine.backends.lake import Lake
from engine.registry.local import LocalRegistry as ModelRegistry
from engine.state.model_index import ensure_schema as _ensure_index
from tests.registry.test_artifacts import FailAt



check_golden = golden_checker('registry')


class Clock:
    """A deterministic clock: each call is one minute later."""

    def __init__(self) -> None:
        self.now = datetime(2024, 1, 1, tzinfo=timezone.utc)

    def __call__(self) -> datetime:
        self.now += timedelta(minutes=1)
        return self.now


def _connect(root: Path) -> DuckDBBackend:
    """A read-write backend over the workspace folder ``root`` (``.engine``), as ``engine apply``
    opens it: the metadata in ``catalog.sqlite`` (SQLite, WAL), the tables a Delta lake in ``tables/``."""
    root.mkdir(parents=True, exist_ok=True)
    catalog = SqliteCatalog.open(root / "catalog.sqlite")
    return DuckDBBackend.open(catalog, Lake(root / "tables", catalog))


def _catalog_tables(catalog: SqliteCatalog) -> set[str]:
    return {r[0] for r in catalog.query("SELECT name FROM _engine.sqlite_master WHERE type = 'table'")}


def ensure_registry_schema(backend: DuckDBBackend) -> None:
    _ensure_index(backend.catalog)


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    return tmp_path / ".engine"


@pytest.fixture
def registry(workspace: Path):
    workspace.mkdir()
    con = _connect(workspace)
    yield ModelRegistry(con.catalog, workspace / "models", clock=Clock())
    con.close()


def _X(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(40, 3))
    return X, (X[:, 0] + 0.5 * rng.normal(size=40) > 0).astype(int)


def _model(kind: str = "logreg", seed: int = 0):
    X, y = _X(seed)
    if kind == "xgb":
        from xgboost import XGBClassifier

        return XGBClassifier(n_estimators=3, max_depth=2, n_jobs=1).fit(X, y)
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=1.0 + seed).fit(X, y)


def _manifest(**test_metrics: float) -> dict:
    return {
        "estimator": "sklearn.linear_model.LogisticRegression",
        "params": {"C": 1.0},
        "metrics": {"train": {"roc_auc": 1.0}, "test": dict(test_metrics)},
        "feature_view": "delays",
        "feature_view_version": 1,
        "feature_columns": ["a", "b", "c"],
        "label": "is_delayed",
    }


def _files(root: Path) -> list[str]:
    if not root.exists():
        return []
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*"))


# --- register / get / list ---------------------------------------------------------------------


def test_register_writes_an_immutable_version_directory_and_index_row(registry: ModelRegistry, workspace: Path) -> None:
    model = _model()
    mv = registry.register("delay_model", "fp-1", _manifest(roc_auc=0.8), model)
    assert (mv.name, mv.version, mv.fingerprint, mv.aliases) == ("delay_model", 1, "fp-1", ())
    assert mv.created_at == "2024-01-01T00:01:00+00:00"
    assert _files(workspace / "models") == ["delay_model", "delay_model/1", "delay_model/1/manifest.json", "delay_model/1/model.skops"]
    text = (workspace / "models/delay_model/1/manifest.json").read_text(encoding="utf-8")
    on_disk = json.loads(text)
    assert text == json.dumps(on_disk, sort_keys=True, indent=2, ensure_ascii=False) + "\n"
    assert on_disk == mv.manifest
    assert on_disk["artifact"]["file"] == "model.skops" and on_disk["engine_version"]
    assert (on_disk["name"], on_disk["version"], on_disk["fingerprint"]) == ("delay_model", 1, "fp-1")
    assert on_disk["feature_view"] == "delays" and on_disk["metrics"]["test"] == {"roc_auc": 0.8}

    X, _ = _X()
    np.testing.assert_array_equal(registry.load(mv).predict_proba(X), model.predict_proba(X))
    assert registry.check() == []


def test_versions_count_up_and_list_orders_them(registry: ModelRegistry) -> None:
    for i in range(3):
        registry.register("delay_model", f"fp-{i}", _manifest(roc_auc=0.5 + i / 10), _model(seed=i))
    registry.register("churn", "fp-x", _manifest(), _model("xgb"))
    assert [(mv.name, mv.version) for mv in registry.list()] == [("churn", 1), ("delay_model", 1), ("delay_model", 2), ("delay_model", 3)]
    assert [mv.version for mv in registry.list("delay_model")] == [1, 2, 3]
    assert registry.list("nothing") == []
    assert registry.get("delay_model").version == 3
    assert registry.get("delay_model", "latest").version == 3
    assert registry.get("delay_model", 2).fingerprint == "fp-1"
    assert registry.get("delay_model", "1").fingerprint == "fp-0"
    assert registry.get("churn").manifest["artifact"]["format"] == "xgboost-ubj"


def test_same_fingerprint_returns_the_existing_version_and_writes_nothing(registry: ModelRegistry, workspace: Path) -> None:
    first = registry.register("delay_model", "fp-1", _manifest(roc_auc=0.8), _model())
    before = {p: p.stat().st_mtime_ns for p in (workspace / "models").rglob("*")}
    # an estimator that could not even be saved: proves nothing is written on a fingerprint hit
    again = registry.register("delay_model", "fp-1", _manifest(roc_auc=0.1), object())
    assert again == first
    assert {p: p.stat().st_mtime_ns for p in (workspace / "models").rglob("*")} == before
    assert [mv.version for mv in registry.list()] == [1]
    assert registry.find_by_fingerprint("delay_model", "fp-1") == first
    assert registry.find_by_fingerprint("delay_model", "fp-2") is None
    assert registry.find_by_fingerprint("other", "fp-1") is None


def test_versions_are_immutable_and_never_reuse_a_leftover_directory(registry: ModelRegistry, workspace: Path) -> None:
    registry.register("delay_model", "fp-1", _manifest(), _model())
    leftover = workspace / "models/delay_model/2"
    leftover.mkdir()
    (leftover / "keep.txt").write_text("from a crash")
    mv = registry.register("delay_model", "fp-2", _manifest(), _model(seed=1))
    # Numbers never skip (issue 13 item 7): the leftover is set aside, not reused nor deleted.
    assert mv.version == 2
    (aside,) = [p for p in leftover.parent.iterdir() if p.name.startswith(".orphan-2-")]
    assert (aside / "keep.txt").read_text() == "from a crash"
    assert not (leftover / "keep.txt").exists()
    with pytest.raises(Exception, match="already exists; versions are immutable"):
        registry.stage("delay_model", 1, "fp-9", _manifest(), _model())


def test_index_survives_reopening_the_database(workspace: Path) -> None:
    workspace.mkdir()
    con = _connect(workspace)
    mv = ModelRegistry(con.catalog, workspace / "models").register("m", "fp", _manifest(), _model())
    ModelRegistry(con.catalog, workspace / "models").set_alias("m", "production", 1)
    con.close()
    assert (workspace / "catalog.sqlite").is_file()
    con = _connect(workspace)
    reopened = ModelRegistry(con.catalog, workspace / "models")
    again = reopened.get("m", "production")
    assert (again.version, again.fingerprint, again.manifest) == (1, "fp", mv.manifest)
    X, _ = _X()
    np.testing.assert_array_equal(reopened.load(again).predict(X), _model().predict(X))
    con.close()
    # a reader (`engine show`, serving) sees the same committed index through a read-only catalog
    with SqliteCatalog.open_read_only(workspace / "catalog.sqlite") as catalog:
        read = ModelRegistry(catalog, workspace / "models").get("m", "production")
        assert (read.version, read.fingerprint, read.manifest) == (1, "fp", mv.manifest)


def test_ensure_registry_schema_is_idempotent(tmp_path: Path) -> None:
    con = _connect(tmp_path / ".engine")
    before = _catalog_tables(con.catalog)  # the lake's own tables (_engine.tables, ...)
    ensure_registry_schema(con)
    created = _catalog_tables(con.catalog)
    ensure_registry_schema(con)
    assert _catalog_tables(con.catalog) == created
    assert sorted(created - before) == ["model_aliases", "model_versions"]
    assert con.catalog.has_table("_engine", "model_versions") and con.catalog.has_table("_engine", "model_aliases")
    con.close()


# --- aliases and best-by-metric ----------------------------------------------------------------


def test_aliases_point_to_one_version_and_can_move(registry: ModelRegistry) -> None:
    for i in range(3):
        registry.register("m", f"fp-{i}", _manifest(), _model(seed=i))
    registry.set_alias("m", "production", 1)
    registry.set_alias("m", "staging", 3)
    assert registry.get("m", "production").version == 1
    assert registry.get("m", 1).aliases == ("production",)
    registry.set_alias("m", "production", 2)
    assert registry.get("m", "production").version == 2
    assert registry.get("m", 1).aliases == ()
    assert [mv.aliases for mv in registry.list("m")] == [(), ("production",), ("staging",)]


def test_best_by_metric_respects_direction_and_skips_missing_values(registry: ModelRegistry) -> None:
    registry.register("m", "a", _manifest(roc_auc=0.70, log_loss=0.40, rmse=3.0), _model(seed=0))
    registry.register("m", "b", _manifest(roc_auc=0.90, log_loss=0.55, mae=2.0), _model(seed=1))
    registry.register("m", "c", _manifest(roc_auc=0.80, log_loss=0.35), _model(seed=2))
    registry.register("m", "d", _manifest(), _model(seed=3))  # no test metrics at all
    assert registry.get("m", "best:roc_auc").version == 2
    assert registry.get("m", "best:log_loss").version == 3  # lower is better
    assert registry.get("m", "best:rmse").version == 1
    assert registry.get("m", "best:mae").version == 2


def test_best_by_metric_ties_go_to_the_newest_version(registry: ModelRegistry) -> None:
    for i in range(3):
        registry.register("m", f"fp-{i}", _manifest(accuracy=0.5), _model(seed=i))
    assert registry.get("m", "best:accuracy").version == 3


def _usage_error(registry: ModelRegistry, call) -> str:
    with pytest.raises(UsageError) as info:
        call(registry)
    assert info.value.exit_code == 2
    return info.value.message


USAGE_CASES = {
    "unknown_model_did_you_mean": lambda r: r.get("delay_modle"),
    "unknown_model_no_hint": lambda r: r.get("zzz"),
    "unknown_version": lambda r: r.get("delay_model", 9),
    "unknown_version_string": lambda r: r.get("delay_model", "07"),
    "unknown_alias_did_you_mean": lambda r: r.get("delay_model", "prodution"),
    "unknown_alias_no_hint": lambda r: r.get("delay_model", "canary"),
    "unknown_metric_did_you_mean": lambda r: r.get("delay_model", "best:roc_au"),
    "unknown_metric_no_hint": lambda r: r.get("delay_model", "best:f1"),
    "alias_reserved": lambda r: r.set_alias("delay_model", "latest", 1),
    "alias_invalid": lambda r: r.set_alias("delay_model", "Prod 1", 1),
    "alias_unknown_version": lambda r: r.set_alias("delay_model", "production", 5),
}


@pytest.mark.parametrize("case", sorted(USAGE_CASES))
def test_unknown_selectors_are_usage_errors_listing_the_options(registry: ModelRegistry, case: str) -> None:
    registry.register("delay_model", "fp-1", _manifest(roc_auc=0.8, log_loss=0.3), _model(seed=0))
    registry.register("delay_model", "fp-2", _manifest(roc_auc=0.7), _model(seed=1))
    registry.register("churn_model", "fp-3", _manifest(), _model(seed=2))
    registry.set_alias("delay_model", "production", 2)
    check_golden(f"usage_{case}", _usage_error(registry, USAGE_CASES[case]))


def test_empty_registry_says_so(registry: ModelRegistry) -> None:
    check_golden("usage_empty_registry", _usage_error(registry, lambda r: r.get("delay_model")))


# --- G5: tampering -----------------------------------------------------------------------------


def test_G5_tampered_manifest_is_refused_at_load(registry: ModelRegistry, workspace: Path) -> None:
    mv = registry.register("m", "fp", _manifest(roc_auc=0.8), _model())
    path = workspace / "models/m/1/manifest.json"
    path.write_text(path.read_text().replace("0.8", "0.9"))
    with pytest.raises(ExecutionError, match=r"^sha256 mismatch for manifest\.json of model:m@1: expected "):
        registry.load(mv)
    problems = registry.check()
    assert len(problems) == 1 and problems[0].startswith("sha256 mismatch for manifest.json of model:m@1")


@pytest.mark.parametrize("kind", ["logreg", "xgb"])
def test_G5_tampered_or_swapped_artifact_is_refused_at_load(registry: ModelRegistry, workspace: Path, kind: str) -> None:
    registry.register("m", "fp-1", _manifest(), _model(kind, seed=0))
    second = registry.register("m", "fp-2", _manifest(), _model(kind, seed=1))
    file = second.artifact.file
    os.replace(workspace / "models/m/1" / file, workspace / "models/m/2" / file)  # swap in v1's artifact
    with pytest.raises(ExecutionError, match=rf"^sha256 mismatch for model artifact {file} of model:m@2: expected {second.artifact.sha256}"):
        registry.load(second)
    problems = registry.check()
    assert problems == sorted(
        [f"model artifact {file} of model:m@1 is missing: {workspace / 'models/m/1' / file}", problems[1]]
    )
    assert problems[1].startswith(f"sha256 mismatch for model artifact {file} of model:m@2")


# --- G6: half-written entries ------------------------------------------------------------------


def test_G6_crash_between_rename_and_commit_leaves_an_orphan_that_gc_removes(registry: ModelRegistry, workspace: Path) -> None:
    registry.register("m", "fp-1", _manifest(), _model())
    # the first half of register() ran, then the process died before the index commit
    orphan, _ = registry.stage("m", 2, "fp-2", _manifest(), _model(seed=1))
    assert orphan == workspace / "models/m/2" and (orphan / "model.skops").exists()
    assert [mv.version for mv in registry.list("m")] == [1]
    assert registry.get("m").version == 1
    assert registry.find_by_fingerprint("m", "fp-2") is None
    with pytest.raises(UsageError):
        registry.get("m", 2)
    check_golden("check_orphan", "\n".join(registry.check()))

    assert registry.gc() == [orphan]
    assert not orphan.exists()
    assert registry.check() == []
    assert _files(workspace / "models/m/1") == ["manifest.json", "model.skops"]
    # the retrain after the crash gets a fresh version and a clean directory
    assert registry.register("m", "fp-2", _manifest(), _model(seed=1)).version == 2


def test_G6_leftover_temp_directory_is_reported_and_removed(registry: ModelRegistry, workspace: Path) -> None:
    registry.register("m", "fp-1", _manifest(), _model())
    tmp = workspace / "models/m/.tmp-deadbeef"
    tmp.mkdir()
    (tmp / "model.skops").write_bytes(b"half")
    assert registry.check() == ["models/m/.tmp-deadbeef: leftover temporary directory; `engine gc` removes it"]
    assert registry.gc() == [tmp]
    assert registry.check() == [] and registry.gc() == []


def _sqlite_error(code: int, name: str, text: str) -> sqlite3.OperationalError:
    """The error SQLite raises for a failing disk: ``code`` is its primary result code."""
    error = sqlite3.OperationalError(text)
    error.sqlite_errorcode, error.sqlite_errorname = code, name
    return error


SQLITE_IOERR = (10, "SQLITE_IOERR", "disk I/O error")
SQLITE_FULL = (13, "SQLITE_FULL", "database or disk is full")


class _FailingSqlite:
    """The catalog's SQLite connection, with the statements ``fails`` picks failing as SQLite fails on
    a bad or full disk; everything else passes through. ``ends_transaction``: the failure has already
    rolled the transaction back (as SQLite may do on SQLITE_FULL / SQLITE_IOERR), so a later ROLLBACK
    finds no transaction."""

    def __init__(self, con: sqlite3.Connection, fails: Callable[[str], bool], error: tuple[int, str, str], *, ends_transaction: bool) -> None:
        self.con, self.fails, self.error, self.ends_transaction = con, fails, error, ends_transaction
        self.fired = 0

    def execute(self, sql: str, *args):
        if self.fails(sql):
            self.fired += 1
            if self.ends_transaction and self.con.in_transaction:
                self.con.execute("ROLLBACK")
            raise _sqlite_error(*self.error)
        return self.con.execute(sql, *args)

    def __getattr__(self, name: str):
        return getattr(self.con, name)


@contextmanager
def _failing_catalog(catalog: SqliteCatalog, fails: Callable[[str], bool], error: tuple[int, str, str], *, ends_transaction: bool = False) -> Iterator[_FailingSqlite]:
    real = catalog._con
    proxy = _FailingSqlite(real, fails, error, ends_transaction=ends_transaction)
    catalog._con = proxy
    try:
        yield proxy
    finally:
        catalog._con = real


def _is_version_insert(sql: str) -> bool:
    return re.match(r"\s*INSERT\s+INTO\s+_engine\.model_versions\b", sql, re.IGNORECASE) is not None


def _is_commit(sql: str) -> bool:
    return sql.strip().upper() == "COMMIT"


@pytest.mark.parametrize("ends_transaction", [False, True], ids=["transaction-open", "transaction-ended"])
def test_G6_failed_index_insert_leaves_no_row_and_no_directory(registry: ModelRegistry, workspace: Path, ends_transaction: bool) -> None:
    registry.register("m", "fp-1", _manifest(), _model())
    with _failing_catalog(registry.catalog, _is_version_insert, SQLITE_IOERR, ends_transaction=ends_transaction) as failing:
        with pytest.raises(StorageIOError, match=r"^cannot write the workspace catalog .*catalog\.sqlite \(disk I/O error\)") as info:
            registry.register("m", "fp-2", _manifest(), _model(seed=1))
    assert failing.fired == 1  # the failure happened inside the registry transaction, at the insert
    assert info.value.exit_code == ExitCode.IO_ERROR
    assert isinstance(info.value.__cause__, sqlite3.OperationalError)
    assert not registry.catalog.in_transaction and not registry.catalog._con.in_transaction  # rolled back
    assert [mv.version for mv in registry.list()] == [1]
    assert _files(workspace / "models/m") == ["1", "1/manifest.json", "1/model.skops"]
    assert registry.check() == []


@pytest.mark.parametrize("ends_transaction", [False, True], ids=["transaction-open", "transaction-ended"])
def test_G6_failed_commit_rolls_back_and_removes_the_new_directory(registry: ModelRegistry, workspace: Path, ends_transaction: bool) -> None:
    """The catalog's COMMIT fails (disk full while SQLite writes its WAL)."""
    registry.register("m", "fp-1", _manifest(), _model())
    with _failing_catalog(registry.catalog, _is_commit, SQLITE_FULL, ends_transaction=ends_transaction) as failing:
        with pytest.raises(StorageIOError, match=r"the disk is full \(database or disk is full\)") as info:
            registry.register("m", "fp-2", _manifest(), _model(seed=1))
    assert failing.fired == 1
    assert info.value.exit_code == ExitCode.IO_ERROR
    assert not registry.catalog.in_transaction and not registry.catalog._con.in_transaction
    assert [mv.version for mv in registry.list()] == [1]  # rolled back, and the connection is usable
    assert _files(workspace / "models/m") == ["1", "1/manifest.json", "1/model.skops"]
    assert registry.check() == []
    assert registry.register("m", "fp-2", _manifest(), _model(seed=1)).version == 2


def test_G6_deleted_version_directory_is_reported(registry: ModelRegistry, workspace: Path) -> None:
    mv = registry.register("m", "fp-1", _manifest(), _model())
    shutil.rmtree(workspace / "models/m/1")
    with pytest.raises(ExecutionError, match=r"manifest\.json of model:m@1 is missing"):
        registry.load(mv)
    assert len(registry.check()) == 2


# --- G4: disk full while registering -----------------------------------------------------------


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EIO], ids=["ENOSPC", "EIO"])
def test_G4_io_error_at_every_call_leaves_the_registry_unchanged(registry: ModelRegistry, workspace: Path, code: int) -> None:
    registry.register("m", "fp-1", _manifest(), _model())
    before = _files(workspace / "models")
    model = _model("xgb")
    for n in range(1, 80):
        with pytest.MonkeyPatch.context() as mp:
            fault = FailAt(mp, n, code)
            try:
                mv = registry.register("m", "fp-2", _manifest(), model)
            except StorageIOError:
                failed = True
            else:
                failed = False
        if failed:
            assert fault.fired
            assert _files(workspace / "models") == before, f"call {n} left files behind"
            assert [v.version for v in registry.list()] == [1]
            assert registry.check() == []
            continue
        assert not fault.fired
        assert mv.version == 2 and n > 5
        assert registry.check() == []
        break
    else:
        pytest.fail("register never succeeded")
