"""The Python API: one short function per CLI verb, each reading as its pipeline sentence.

load -> schema check -> typed model -> semantic check -> compile (DAG) -> plan -> execute.
The CLI only parses arguments and prints what these return.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from engine.compiler.semantics import CheckedProject, check_project
from engine.compiler.steps import Plan
from engine.errors import SpecError, UsageError
from engine.runtime.events import Listener, RunResult, ignore

if TYPE_CHECKING:
    import pandas

    from engine.runtime.executor import RunOptions


def validate(path: str | Path) -> CheckedProject:
    """Check a spec without touching any database, user code or network; raise SpecError."""
    from engine.model.builder import build_project
    from engine.spec.project_files import load_spec
    from engine.spec.resources import resolve_files
    from engine.spec.schema import validate_document

    spec = load_spec(path)
    problems = validate_document(spec.data, spec.source_map)
    if problems:
        raise SpecError(problems=problems)
    files, path_problems = resolve_files(spec.data, spec.source_map, spec.root)
    try:
        project = build_project(spec.data, spec.source_map, spec.root, spec.files, files)
    except SpecError as exc:
        raise SpecError(problems=path_problems + exc.problems) from None
    if path_problems:
        raise SpecError(problems=path_problems)
    return check_project(project, spec.source_map)


def plan(path: str | Path, *, workspace: str | Path | None = None, select: tuple[str, ...] = (), force: bool = False) -> Plan:
    """What ``apply`` would do, diffed against the workspace's stored state."""
    from engine.compiler.planner import make_plan

    checked = validate(path)
    return make_plan(checked, _stored_steps(_workspace(checked, workspace)), select=select, force=force)


def lineage(path: str | Path, name: str | None = None):
    """What ``name`` is built from and what is built from it (the whole DAG when None). Pure."""
    from engine.compiler.lineage import lineage as trace
    from engine.compiler.planner import compile_steps

    return trace(compile_steps(validate(path)), name)


@dataclass(frozen=True)
class ApplyResult:
    plan: Plan
    run: RunResult | None  # None when there was nothing to do


def apply(
    path: str | Path,
    *,
    workspace: str | Path | None = None,
    select: tuple[str, ...] = (),
    force: bool = False,
    options: "RunOptions | None" = None,
    lock_timeout_s: float = 0.0,
    listener: Listener = ignore,
) -> ApplyResult:
    """Validate, plan and execute under the project lock. Unchanged spec and data: runs nothing."""
    from engine.compiler.planner import make_plan
    from engine.runtime.executor import RunOptions, execute, new_run_id
    from engine.state.workspace import ProjectLock

    checked = validate(path)
    ws = _workspace(checked, workspace)
    with ProjectLock(ws, timeout_s=lock_timeout_s):
        the_plan = make_plan(checked, _stored_steps(ws), select=select, force=force)
        if not the_plan.has_changes:
            return ApplyResult(the_plan, None)
        run = execute(the_plan, checked, ws, run_id=new_run_id(), options=options or RunOptions(), listener=listener)
    return ApplyResult(the_plan, run)


def read_feature_group(
    path: str | Path,
    name: str,
    *,
    version: int | None = None,
    online: bool = False,
    workspace: str | Path | None = None,
) -> "pandas.DataFrame":
    """A published feature group as a DataFrame: offline history, or the online latest-per-key rows."""
    from engine.state import metadata

    checked = validate(path)
    with _read_connection(_workspace(checked, workspace)) as con:
        fgv = metadata.feature_group_version(con, name, version)
        if fgv is None:
            raise UsageError(_not_published(checked, name, version))
        table = fgv.online_table if online else fgv.offline_table
        if table is None:
            raise UsageError(f"feature_group:{name}@{fgv.version} has no online table (online: false)")
        order = ", ".join(f'"{c}"' for c in (*fgv.primary_key, *([fgv.event_time] if fgv.event_time else [])))
        return con.execute(f"SELECT * FROM {table} ORDER BY {order}").df()


def show_feature_group(path: str | Path, name: str, *, version: int | None = None, workspace: str | Path | None = None) -> dict:
    """Metadata and per-feature statistics of a published feature-group version."""
    from dataclasses import asdict

    from engine.state import metadata

    checked = validate(path)
    with _read_connection(_workspace(checked, workspace)) as con:
        fgv = metadata.feature_group_version(con, name, version)
        if fgv is None:
            raise UsageError(_not_published(checked, name, version))
        versions = [v for (n, v, _, _) in metadata.feature_group_versions(con) if n == name]
    return {"id": f"feature_group:{fgv.name}@{fgv.version}", "versions": versions, **asdict(fgv)}


def list_feature_groups(path: str | Path, *, workspace: str | Path | None = None) -> list[dict]:
    """Every published feature-group version in the workspace."""
    from engine.state import metadata

    checked = validate(path)
    with _read_connection(_workspace(checked, workspace)) as con:
        return [
            {"name": n, "version": v, "rows": rows, "published_at": at}
            for (n, v, rows, at) in metadata.feature_group_versions(con)
        ]


def read_feature_view(path: str | Path, name: str, *, workspace: str | Path | None = None) -> "pandas.DataFrame":
    """A materialised feature view (spine rows joined point-in-time) as a DataFrame."""
    from engine.training.feature_view import stored_layout

    checked = validate(path)
    with _read_connection(_workspace(checked, workspace)) as con:
        stored = stored_layout(con, name) if _has_table(con, "feature_views") else None
        if stored is None:
            raise UsageError(f"feature_view:{name} has not been materialised yet: run `engine apply`")
        return con.execute(f"SELECT * FROM {stored[0]}").df()


def read_training_data(path: str | Path, model: str, *, version: str | int | None = None, split: str | None = None, workspace: str | Path | None = None) -> "pandas.DataFrame":
    """The training dataset a model version was trained on (column ``_split``: train/validation/test)."""
    mv = _model_version(path, model, version, workspace)
    checked = validate(path)
    with _read_connection(_workspace(checked, workspace)) as con:
        table = mv.manifest["training_data"]["table"]
        frame = con.execute(f"SELECT * FROM {table}").df()
    return frame[frame["_split"] == split].reset_index(drop=True) if split else frame


def read_rejects(path: str | Path, source: str | None = None, *, workspace: str | Path | None = None) -> "pandas.DataFrame":
    """Rows that sources with ``on_bad_rows: quarantine`` set aside, newest run first."""
    checked = validate(path)
    with _read_connection(_workspace(checked, workspace)) as con:
        if not _has_table(con, "rejected_rows"):
            return con.execute("SELECT NULL AS source WHERE false").df()
        where, params = ("WHERE source = ?", [source]) if source else ("", [])
        return con.execute(f"SELECT * FROM _engine.rejected_rows {where} ORDER BY rejected_at DESC, file, line", params).df()


def list_models(path: str | Path, *, workspace: str | Path | None = None) -> list[dict]:
    """Every registered model version with its test metrics and aliases."""
    from engine.registry.registry import ModelRegistry

    checked = validate(path)
    ws = _workspace(checked, workspace)
    with _read_connection(ws) as con:
        if not _has_table(con, "model_versions"):
            return []
        versions = ModelRegistry(con, ws.models_dir).list()
    return [_model_summary(mv) for mv in versions]


def show_model(path: str | Path, name: str, *, version: str | int | None = None, workspace: str | Path | None = None) -> dict:
    """The manifest of one model version (latest, a number, ``best:<metric>`` or an alias)."""
    mv = _model_version(path, name, version, workspace)
    return {**_model_summary(mv), "manifest": mv.manifest}


def _model_version(path, name, selector, workspace):
    from engine.registry.registry import ModelRegistry

    checked = validate(path)
    ws = _workspace(checked, workspace)
    with _read_connection(ws) as con:
        if not _has_table(con, "model_versions"):
            raise UsageError(f"no model has been registered yet: run `engine apply` (models in the spec: {', '.join(sorted(checked.project.models)) or 'none'})")
        return ModelRegistry(con, ws.models_dir).get(name, selector)


def _model_summary(mv) -> dict:
    m = mv.manifest
    return {
        "id": mv.ref,
        "name": mv.name,
        "version": mv.version,
        "aliases": list(mv.aliases),
        "estimator": m.get("estimator"),
        "feature_view": f"feature_view:{m.get('feature_view')}@{m.get('feature_view_version')}",
        "metrics": m.get("metrics", {}),
        "training_rows": m.get("training_data", {}).get("rows", {}),
        "created_at": mv.created_at,
        "fingerprint": mv.fingerprint,
    }


def _has_table(con, name: str) -> bool:
    return bool(con.execute("SELECT count(*) FROM information_schema.tables WHERE table_schema = '_engine' AND table_name = ?", [name]).fetchall()[0][0])


def online_state(path: str | Path, *, workspace: str | Path | None = None):
    """The online path as ``engine serve`` loads it: the current snapshot and the online jobs' models."""
    from engine.serving.online_store import online_dir, read_current
    from engine.serving.server import load_state

    checked = validate(path)
    ws = _workspace(checked, workspace)
    _, directory = read_current(online_dir(ws))
    return load_state(checked.project, ws.root, directory)


def feature_vectors(path: str | Path, feature_view: str, rows: list[dict], *, workspace: str | Path | None = None, state=None) -> dict:
    """Online feature vectors for entity keys and request values: the latest row per joined
    feature group and the on-demand features, computed by the same functions as offline."""
    state = state or online_state(path, workspace=workspace)
    return _online_call(lambda: state.vector(feature_view, rows))


def predict_online(path: str | Path, job: str, rows: list[dict], *, workspace: str | Path | None = None, state=None, from_text: bool = False) -> dict:
    """Predictions of an online inference job for rows of keys and request values (no HTTP).

    ``from_text``: values are strings to parse (rows read from CSV)."""
    from engine.serving.server import MAX_ROWS

    state = state or online_state(path, workspace=workspace)

    def run() -> dict:
        endpoint = state.job(job)
        result = None
        for start in range(0, max(len(rows), 1), MAX_ROWS):  # the HTTP row cap, per batch
            part = state.predict(endpoint, rows[start : start + MAX_ROWS], from_text=from_text)
            if result is None:
                result = part
            else:
                result["predictions"] += part["predictions"]
        return {**result, "job": job}

    return _online_call(run)


def _online_call(fn):
    from engine.errors import DataError
    from engine.serving.server import ServeError

    try:
        return fn()
    except ServeError as exc:
        details = "; ".join(f"{e['path']}: {e['message']}" for e in exc.errors)
        error = UsageError if exc.status in (404, 409) else DataError
        raise error(f"{exc.message}{': ' + details if details else ''}") from None


def check(path: str | Path, *, workspace: str | Path | None = None) -> list[str]:
    """Integrity problems of the workspace: orphan or tampered model artifacts (G5, G6)."""
    from engine.registry.registry import ModelRegistry

    checked = validate(path)
    ws = _workspace(checked, workspace)
    with _read_connection(ws) as con:
        if not _has_table(con, "model_versions"):
            return []
        return ModelRegistry(con, ws.models_dir).check()


def gc(path: str | Path, *, workspace: str | Path | None = None, lock_timeout_s: float = 0.0) -> list[Path]:
    """Remove what a crashed run left behind (orphan model directories); returns what was removed."""
    from engine.registry.registry import ModelRegistry
    from engine.state.workspace import ProjectLock

    checked = validate(path)
    ws = _workspace(checked, workspace)
    with ProjectLock(ws, timeout_s=lock_timeout_s), _read_connection(ws) as con:
        if not _has_table(con, "model_versions"):
            return []
        return ModelRegistry(con, ws.models_dir).gc()


def recover(path: str | Path, *, discard_wal: bool = False, workspace: str | Path | None = None) -> str:
    """Open the workspace database; with ``discard_wal``, first set a damaged write-ahead log aside
    (renamed, never deleted), returning to the last checkpoint (G7). Returns what was done."""
    import time

    from engine.backends.duckdb_backend import connect_read_only, wal_path
    from engine.state.workspace import ProjectLock

    checked = validate(path)
    ws = _workspace(checked, workspace)
    if not ws.exists():
        raise UsageError(f"no workspace at {ws.root}: nothing to recover")
    with ProjectLock(ws):
        wal = wal_path(ws.database)
        done = "the workspace database opens cleanly"
        if discard_wal and wal.exists():
            kept = wal.with_name(f"{wal.name}.discarded-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}")
            wal.rename(kept)
            done = f"write-ahead log set aside as {kept.name}; back at the last checkpoint"
        connect_read_only(ws.database).close()  # raises StorageIOError if it still cannot open
    return done


# --- helpers -----------------------------------------------------------------------------------


def _workspace(checked: CheckedProject, override: str | Path | None):
    from engine.state.workspace import Workspace

    return Workspace.for_project(checked.project.root, override)


def _stored_steps(ws) -> dict:
    if not ws.exists():
        return {}
    from engine.state import metadata

    with _read_connection(ws) as con:
        return metadata.stored_steps(con)


class _read_connection:
    """A read-only connection to the workspace database (LockedError while an apply writes)."""

    def __init__(self, ws):
        self.ws = ws

    def __enter__(self):
        from engine.backends.duckdb_backend import connect_read_only

        if not self.ws.exists():
            raise UsageError(f"no workspace at {self.ws.root}: run `engine apply` first")
        self.con = connect_read_only(self.ws.database)
        return self.con

    def __exit__(self, *exc):
        self.con.close()


def _not_published(checked: CheckedProject, name: str, version: int | None) -> str:
    from engine.errors import did_you_mean

    if name not in checked.project.feature_groups:
        hint = did_you_mean(name, list(checked.project.feature_groups))
        return f"no feature group named '{name}' in the spec" + (f" ({hint})" if hint else "")
    at = f"@{version}" if version is not None else ""
    return f"feature_group:{name}{at} has not been published yet: run `engine apply`"
