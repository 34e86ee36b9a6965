"""Model artifacts: safe formats round-trip exactly, are hashed, verified before parsing, written
atomically (RELIABILITY V19, M1, G4, G5)."""

from __future__ import annotations

import errno
import functools
import hashlib
import io
import json
import os
import pickle
import zipfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from engine.errors import ExecutionError, StorageIOError
from engine.registry.artifacts import TRUSTED_SKLEARN_TYPES, Artifact, load_estimator, save_estimator

OWNER = "model:m@3"


def _data(task: str = "classification", n: int = 60, d: int = 4, seed: int = 0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    if task == "classification":
        return X, (X[:, 0] + 0.3 * rng.normal(size=n) > 0).astype(int)
    return X, X @ np.arange(1, d + 1) + 0.1 * rng.normal(size=n)


@functools.lru_cache(maxsize=None)
def _fitted(kind: str):
    """A fitted estimator of ``kind`` and its inputs (cached: tests must not mutate them)."""
    from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
    from sklearn.linear_model import LogisticRegression, Ridge
    from xgboost import XGBClassifier, XGBRegressor

    makers = {
        "LogisticRegression": (LogisticRegression, {}, "classification"),
        "RandomForestClassifier": (RandomForestClassifier, {"n_estimators": 5, "random_state": 0}, "classification"),
        "HistGradientBoostingClassifier": (HistGradientBoostingClassifier, {"max_iter": 5}, "classification"),
        "Ridge": (Ridge, {}, "regression"),
        "XGBClassifier": (XGBClassifier, {"n_estimators": 5, "max_depth": 3, "n_jobs": 1}, "classification"),
        "XGBRegressor": (XGBRegressor, {"n_estimators": 5, "max_depth": 3, "n_jobs": 1}, "regression"),
    }
    cls, params, task = makers[kind]
    X, y = _data(task)
    return cls(**params).fit(X, y), X


def _fixed_up(artifact: Artifact, path: Path) -> Artifact:
    """The artifact record an attacker who can also edit the index would write: hash of the new bytes."""
    data = path.read_bytes()
    return replace(artifact, sha256=hashlib.sha256(data).hexdigest(), size=len(data))


def _listing(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


# --- V19 / M1: round trips ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "kind",
    ["LogisticRegression", "RandomForestClassifier", "HistGradientBoostingClassifier", "Ridge", "XGBClassifier", "XGBRegressor"],
)
def test_V19_M1_round_trip_gives_exactly_the_same_predictions(tmp_path: Path, kind: str) -> None:
    estimator, X = _fitted(kind)
    artifact = save_estimator(estimator, tmp_path)
    expected_file = "model.ubj" if kind.startswith("XGB") else "model.skops"
    assert artifact.file == expected_file
    assert artifact.format == ("xgboost-ubj" if kind.startswith("XGB") else "skops")
    assert artifact.estimator_class.endswith(kind)
    assert _listing(tmp_path) == [expected_file]  # no temp file left behind
    data = (tmp_path / expected_file).read_bytes()
    assert artifact.sha256 == hashlib.sha256(data).hexdigest() and artifact.size == len(data)

    loaded = load_estimator(tmp_path, artifact, owner=OWNER)
    assert type(loaded) is type(estimator)
    np.testing.assert_array_equal(loaded.predict(X), estimator.predict(X))
    if hasattr(estimator, "predict_proba"):
        np.testing.assert_array_equal(loaded.predict_proba(X), estimator.predict_proba(X))


def test_artifact_dict_round_trip() -> None:
    artifact = Artifact("model.ubj", "xgboost-ubj", "ab" * 32, 12, "xgboost.XGBRegressor")
    assert Artifact.from_dict(json.loads(json.dumps(artifact.as_dict()))) == artifact


def _supported_sklearn_estimators():
    """Every scikit-learn estimator family the engine supports, with the parameter variants that
    change which types skops must trust."""
    from sklearn import dummy, ensemble, linear_model, naive_bayes, neighbors, neural_network, svm, tree

    clf = [
        linear_model.LogisticRegression(), linear_model.RidgeClassifier(), linear_model.SGDClassifier(),
        tree.DecisionTreeClassifier(), ensemble.RandomForestClassifier(n_estimators=2), ensemble.ExtraTreesClassifier(n_estimators=2),
        ensemble.GradientBoostingClassifier(n_estimators=2), ensemble.HistGradientBoostingClassifier(max_iter=2),
        neighbors.KNeighborsClassifier(3), neighbors.KNeighborsClassifier(3, algorithm="ball_tree"),
        neighbors.KNeighborsClassifier(3, algorithm="kd_tree", metric="manhattan"),
        neighbors.KNeighborsClassifier(3, algorithm="ball_tree", metric="chebyshev"),
        neighbors.KNeighborsClassifier(3, metric="minkowski", p=3),
        naive_bayes.GaussianNB(), naive_bayes.BernoulliNB(), svm.SVC(), svm.LinearSVC(),
        neural_network.MLPClassifier(max_iter=3), neural_network.MLPClassifier(solver="sgd", max_iter=3),
        dummy.DummyClassifier(),
    ]
    reg = [
        linear_model.LinearRegression(), linear_model.Ridge(), linear_model.Lasso(), linear_model.ElasticNet(),
        linear_model.SGDRegressor(), tree.DecisionTreeRegressor(), ensemble.RandomForestRegressor(n_estimators=2),
        ensemble.ExtraTreesRegressor(n_estimators=2), ensemble.GradientBoostingRegressor(n_estimators=2),
        ensemble.HistGradientBoostingRegressor(max_iter=2), neighbors.KNeighborsRegressor(3), svm.SVR(), svm.LinearSVR(),
        neural_network.MLPRegressor(max_iter=3), dummy.DummyRegressor(),
    ]
    return [(e, "classification") for e in clf] + [(e, "regression") for e in reg]


def test_M1_trusted_list_is_exactly_what_supported_estimators_need() -> None:
    """Re-derive TRUSTED_SKLEARN_TYPES: a type added or dropped by a library upgrade shows up here."""
    import warnings

    import skops.io as sio

    needed: set[str] = set()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for estimator, task in _supported_sklearn_estimators():
            X, y = _data(task, n=30, d=3)
            needed |= set(sio.get_untrusted_types(data=sio.dumps(estimator.fit(X, y))))
    assert needed == set(TRUSTED_SKLEARN_TYPES)
    assert list(TRUSTED_SKLEARN_TYPES) == sorted(TRUSTED_SKLEARN_TYPES)


class SneakyClassifier:
    """Not a scikit-learn class: skops would have to import this module to load it."""

    def __init__(self) -> None:
        self.coef_ = np.ones(3)

    def predict(self, X):
        return X[:, 0]


def test_M1_estimator_needing_an_untrusted_type_is_refused_at_save_time(tmp_path: Path) -> None:
    with pytest.raises(ExecutionError) as info:
        save_estimator(SneakyClassifier(), tmp_path, owner=OWNER)
    assert "tests.registry.test_artifacts.SneakyClassifier" in info.value.message
    assert OWNER in info.value.message
    assert _listing(tmp_path) == []


def test_M1_hist_gradient_boosting_with_native_categoricals_is_refused_naming_the_types(tmp_path: Path) -> None:
    from sklearn.ensemble import HistGradientBoostingClassifier

    X, y = _data()
    X[:, 0] = np.arange(len(X)) % 3
    model = HistGradientBoostingClassifier(max_iter=2, categorical_features=[0]).fit(X, y)
    with pytest.raises(ExecutionError, match=r"functools\.partial") as info:
        save_estimator(model, tmp_path, owner=OWNER)
    assert "outside the trusted list" in info.value.message
    assert _listing(tmp_path) == []


def test_unsupported_xgboost_class_is_refused(tmp_path: Path) -> None:
    from xgboost import XGBRFClassifier

    X, y = _data()
    with pytest.raises(ExecutionError, match="XGBRFClassifier is not supported"):
        save_estimator(XGBRFClassifier(n_estimators=2, n_jobs=1).fit(X, y), tmp_path, owner=OWNER)
    assert _listing(tmp_path) == []


# --- G5: corrupt artifacts ---------------------------------------------------------------------


@pytest.fixture
def never_parse(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record any call into a parser: a hash mismatch must be caught before parsing."""
    import skops.io as sio
    import xgboost

    calls: list[str] = []
    real_loads, real_load_model = sio.loads, xgboost.XGBModel.load_model

    def loads(*args, **kwargs):
        calls.append("skops")
        return real_loads(*args, **kwargs)

    def load_model(self, *args, **kwargs):
        calls.append("xgboost")
        return real_load_model(self, *args, **kwargs)

    monkeypatch.setattr(sio, "loads", loads)
    monkeypatch.setattr(xgboost.XGBModel, "load_model", load_model)
    return calls


def _assert_hash_mismatch(tmp_path: Path, artifact: Artifact, calls: list[str]) -> None:
    with pytest.raises(ExecutionError) as info:
        load_estimator(tmp_path, artifact, owner=OWNER)
    assert info.value.message.startswith(f"sha256 mismatch for model artifact {artifact.file} of {OWNER}: expected {artifact.sha256}")
    assert calls == []


def test_G5_truncated_ubj_is_refused(tmp_path: Path, never_parse: list[str]) -> None:
    artifact = save_estimator(_fitted("XGBClassifier")[0], tmp_path)
    path = tmp_path / artifact.file
    path.write_bytes(path.read_bytes()[: artifact.size // 2])
    _assert_hash_mismatch(tmp_path, artifact, never_parse)
    # format-level defence: even with a matching hash the truncated file is not accepted
    with pytest.raises(ExecutionError, match=r"model artifact model\.ubj of model:m@3 could not be loaded as XGBoost UBJ"):
        load_estimator(tmp_path, _fixed_up(artifact, path), owner=OWNER)


@pytest.mark.parametrize("kind", ["XGBRegressor", "LogisticRegression"])
def test_G5_flipped_byte_is_refused(tmp_path: Path, never_parse: list[str], kind: str) -> None:
    artifact = save_estimator(_fitted(kind)[0], tmp_path)
    path = tmp_path / artifact.file
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    _assert_hash_mismatch(tmp_path, artifact, never_parse)


def test_G5_swapped_files_are_refused(tmp_path: Path, never_parse: list[str]) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    first = save_estimator(_fitted("Ridge")[0], a)
    X, y = _data("regression", seed=1)
    from sklearn.linear_model import Ridge

    save_estimator(Ridge(alpha=3.0).fit(X, y), b)
    os.replace(b / "model.skops", a / "model.skops")
    _assert_hash_mismatch(a, first, never_parse)


def test_G5_missing_artifact_is_refused(tmp_path: Path) -> None:
    artifact = save_estimator(_fitted("Ridge")[0], tmp_path)
    (tmp_path / artifact.file).unlink()
    with pytest.raises(ExecutionError, match=r"model artifact model\.skops of model:m@3 is missing"):
        load_estimator(tmp_path, artifact, owner=OWNER)


@pytest.mark.parametrize("file", ["../model.skops", "/etc/passwd", "model.pkl"])
def test_G5_artifact_file_names_come_from_the_engine_only(tmp_path: Path, file: str) -> None:
    artifact = save_estimator(_fitted("Ridge")[0], tmp_path)
    with pytest.raises(ExecutionError, match="unknown format or file name"):
        load_estimator(tmp_path, replace(artifact, file=file), owner=OWNER)


class _Payload:
    """A pickle that creates ``marker`` when unpickled (what joblib.load would run, V19)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_G5_V19_pickle_renamed_to_skops_never_runs(tmp_path: Path, never_parse: list[str]) -> None:
    control = tmp_path / "control-marker"
    pickle.loads(pickle.dumps(_Payload(control)))  # the payload is live: unpickling runs it
    assert control.exists()

    models = tmp_path / "models"
    models.mkdir()
    marker = tmp_path / "marker"
    artifact = save_estimator(_fitted("LogisticRegression")[0], models)
    path = models / artifact.file
    path.write_bytes(pickle.dumps(_Payload(marker)))
    _assert_hash_mismatch(models, artifact, never_parse)
    with pytest.raises(ExecutionError, match=r"could not be loaded as skops: BadZipFile"):
        load_estimator(models, _fixed_up(artifact, path), owner=OWNER)
    assert not marker.exists()


def _edit_schema(data: bytes, edit) -> bytes:
    source = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as target:
        for name in source.namelist():
            content = source.read(name)
            if name == "schema.json":
                schema = json.loads(content)
                edit(schema)
                content = json.dumps(schema).encode()
            target.writestr(name, content)
    return out.getvalue()


def test_G5_V19_skops_schema_naming_os_system_is_refused(tmp_path: Path, never_parse: list[str]) -> None:
    artifact = save_estimator(_fitted("LogisticRegression")[0], tmp_path)
    path = tmp_path / artifact.file

    def to_os_system(schema: dict) -> None:
        schema["__module__"], schema["__class__"] = "os", "system"

    path.write_bytes(_edit_schema(path.read_bytes(), to_os_system))
    _assert_hash_mismatch(tmp_path, artifact, never_parse)
    with pytest.raises(ExecutionError) as info:
        load_estimator(tmp_path, _fixed_up(artifact, path), owner=OWNER)
    assert "UntrustedTypesFoundException" in info.value.message and "os.system" in info.value.message
    assert never_parse == ["skops"]


def test_G5_truncated_skops_is_refused(tmp_path: Path) -> None:
    artifact = save_estimator(_fitted("RandomForestClassifier")[0], tmp_path)
    path = tmp_path / artifact.file
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(ExecutionError, match="sha256 mismatch"):
        load_estimator(tmp_path, artifact, owner=OWNER)
    with pytest.raises(ExecutionError, match="BadZipFile"):
        load_estimator(tmp_path, _fixed_up(artifact, path), owner=OWNER)


def test_G5_skops_file_of_another_class_than_recorded_is_refused(tmp_path: Path) -> None:
    artifact = save_estimator(_fitted("Ridge")[0], tmp_path)
    with pytest.raises(ExecutionError, match="but the registry recorded"):
        load_estimator(tmp_path, replace(artifact, estimator_class="sklearn.linear_model._base.LinearRegression"), owner=OWNER)


# --- G4: disk full / EIO while writing -----------------------------------------------------------


class FailAt:
    """Make the ``n``-th call to any patched ``os`` function raise ``OSError(code)``."""

    FUNCTIONS = ("open", "write", "fsync", "replace", "rename", "close")

    def __init__(self, monkeypatch: pytest.MonkeyPatch, n: int, code: int = errno.ENOSPC) -> None:
        self.n, self.code, self.calls, self.fired = n, code, 0, False
        for name in self.FUNCTIONS:
            monkeypatch.setattr(os, name, self._wrap(getattr(os, name)))

    def _wrap(self, func):
        def inner(*args, **kwargs):
            self.calls += 1
            if self.calls == self.n:
                self.fired = True
                raise OSError(self.code, os.strerror(self.code))
            return func(*args, **kwargs)

        return inner


@pytest.mark.parametrize("kind", ["LogisticRegression", "XGBClassifier"])
@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EIO], ids=["ENOSPC", "EIO"])
def test_G4_io_error_at_every_call_leaves_nothing_behind(tmp_path: Path, kind: str, code: int) -> None:
    estimator, X = _fitted(kind)
    expected = "model.ubj" if kind.startswith("XGB") else "model.skops"
    for n in range(1, 60):
        directory = tmp_path / f"n{n}"
        directory.mkdir()
        with pytest.MonkeyPatch.context() as mp:
            fault = FailAt(mp, n, code)
            try:
                artifact = save_estimator(estimator, directory)
            except StorageIOError as exc:
                assert os.strerror(code) in exc.message
                failed = True
            else:
                failed = False
        if failed:
            assert fault.fired
            assert _listing(directory) == [], f"call {n} left {_listing(directory)}"
            continue
        assert not fault.fired, "a failed write went unnoticed"
        assert _listing(directory) == [expected]
        np.testing.assert_array_equal(load_estimator(directory, artifact, owner=OWNER).predict(X), estimator.predict(X))
        assert n > 3  # several failure points were exercised before success
        break
    else:
        pytest.fail("save_estimator never succeeded")


def test_G4_replace_failure_is_storage_io_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_space(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "replace", no_space)
    with pytest.raises(StorageIOError, match="No space left on device") as info:
        save_estimator(_fitted("Ridge")[0], tmp_path)
    assert info.value.exit_code == 74
    assert _listing(tmp_path) == []


_DETERMINISM_CHILD = """
import hashlib, sys, tempfile, warnings
from pathlib import Path
sys.path.insert(0, {repo!r})
from tests.registry.test_artifacts import _data, _supported_sklearn_estimators
from engine.registry.artifacts import save_estimator
import xgboost
estimators = _supported_sklearn_estimators() + [
    (xgboost.XGBClassifier(n_estimators=3, max_depth=2), "classification"), (xgboost.XGBRegressor(n_estimators=3, max_depth=2), "regression")]
junk = [object() for _ in range({shift})]  # other objects first: other id()s than the other process
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    for estimator, task in estimators:
        X, y = _data(task, n=30, d=3)
        if "random_state" in estimator.get_params():
            estimator.set_params(random_state=0)
        with tempfile.TemporaryDirectory() as d:
            artifact = save_estimator(estimator.fit(X, y), Path(d))
        print(type(estimator).__name__, artifact.sha256)
"""


def test_issue11_the_same_fitted_estimator_gives_the_same_artifact_bytes_in_every_process() -> None:
    """Artifacts are deterministic for every supported estimator kind: skops' id-based member names
    and write times are normalised (canonical_skops), XGBoost's UBJ is deterministic by itself."""
    import subprocess
    import sys

    repo = str(Path(__file__).resolve().parents[2])
    runs = [
        subprocess.run([sys.executable, "-c", _DETERMINISM_CHILD.format(repo=repo, shift=shift)], capture_output=True, text=True, timeout=300, cwd=repo)
        for shift in (0, 1000)
    ]
    assert all(r.returncode == 0 for r in runs), runs[0].stderr[-2000:] + runs[1].stderr[-2000:]
    first, second = (r.stdout.splitlines() for r in runs)
    assert len(first) == len(_supported_sklearn_estimators()) + 2
    assert first == second


def test_a_canonical_skops_archive_loads_to_the_same_predictions_and_keeps_shared_arrays_shared() -> None:
    import skops.io as sio

    from engine.registry.artifacts import canonical_skops

    X, y = _data("classification", n=40, d=3)
    estimator = RandomForestClassifierShared().fit(X, y)
    data = canonical_skops(sio.dumps(estimator))
    assert canonical_skops(data) == data  # idempotent
    loaded = sio.loads(data, trusted=sio.get_untrusted_types(data=data))
    np.testing.assert_array_equal(loaded.predict_proba(X), estimator.predict_proba(X))
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        names = archive.namelist()
        assert names[0] == "schema.json" and all(i.date_time == (1980, 1, 1, 0, 0, 0) for i in archive.infolist())
        assert all(n == "schema.json" or n.split(".")[0].isdigit() and int(n.split(".")[0]) < 1000 for n in names)


def RandomForestClassifierShared():
    from sklearn.ensemble import RandomForestClassifier

    return RandomForestClassifier(n_estimators=3, random_state=0)
