"""The read side of the Python API: published feature groups, views, training data, quarantined
rows and registered models, through the stores and the registry (``engine.session.reading``).

Readers never take the project lock. No SQL here.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

from engine.errors import UsageError

if TYPE_CHECKING:
    from datetime import datetime

    import pandas

    from engine.compiler.semantics import CheckedProject
    from engine.registry.base import ModelVersion


def _open(path: str | Path, workspace: str | Path | None):
    from engine.project import validate, workspace_of
    from engine.session import reading

    checked = validate(path)
    return checked, reading(workspace_of(checked, workspace), project=checked.project)


def read_feature_group(
    path: str | Path,
    name: str,
    *,
    version: int | None = None,
    online: bool = False,
    as_of: "int | str | datetime | None" = None,
    workspace: str | Path | None = None,
) -> "pandas.DataFrame":
    """A published feature group as a DataFrame: offline history, or the online latest-per-key rows.

    ``as_of``: a commit number (``show_feature_group(...)["commits"]``) or a time (the last commit
    at or before it): the rows as that commit left them. Reads the last committed state and never
    waits for a running apply.
    """
    checked, opened = _open(path, workspace)
    with opened as stores:
        if stores.offline.version(name, version) is None:
            raise UsageError(_not_published(checked, name, version))
        return stores.offline.read(name, version, online=online, as_of=as_of)


def show_feature_group(
    path: str | Path, name: str, *, version: int | None = None, as_of: "int | str | datetime | None" = None, workspace: str | Path | None = None
) -> dict:
    """Metadata, per-feature statistics and commit history of a published feature-group version;
    with ``as_of``, which commit that names and how many rows it held."""
    checked, opened = _open(path, workspace)
    with opened as stores:
        fgv = stores.offline.version(name, version)
        if fgv is None:
            raise UsageError(_not_published(checked, name, version))
        versions = [v for (n, v, _, _) in stores.offline.versions() if n == name]
        commits = [{"version": c.version, "run_id": c.run_id, "committed_at": c.committed_at.isoformat()} for c in stores.offline.commits(name, version)]
        doc = {"id": f"feature_group:{fgv.name}@{fgv.version}", "versions": versions, **asdict(fgv), "commits": commits}
        if as_of is not None:
            commit = stores.offline.commit_as_of(name, version, as_of)
            rows = len(stores.offline.read(name, version, as_of=commit.version))
            doc["as_of"] = {"version": commit.version, "run_id": commit.run_id, "committed_at": commit.committed_at.isoformat(), "rows": rows}
            doc["row_count"] = rows
    return doc


def list_feature_groups(path: str | Path, *, workspace: str | Path | None = None) -> list[dict]:
    """Every published feature-group version in the workspace."""
    _, opened = _open(path, workspace)
    with opened as stores:
        return [{"name": n, "version": v, "rows": rows, "published_at": at} for (n, v, rows, at) in stores.offline.versions()]


def read_feature_view(path: str | Path, name: str, *, version: int | None = None, workspace: str | Path | None = None) -> "pandas.DataFrame":
    """A materialised feature view (spine rows joined point-in-time) as a DataFrame: its newest
    version, or ``version`` (an older one stays readable while a model version uses it)."""
    from engine.store.views import stored_layout

    _, opened = _open(path, workspace)
    with opened as stores:
        stored = stored_layout(stores.backend, name, version)
        if stored is None:
            at = f"@{version}" if version is not None else ""
            raise UsageError(f"feature_view:{name}{at} has not been materialised (or was collected): run `engine apply`")
        return stores.backend.frame(stored[0])


def read_training_data(
    path: str | Path, model: str, *, version: str | int | None = None, split: str | None = None, workspace: str | Path | None = None
) -> "pandas.DataFrame":
    """The training dataset a model version was trained on (column ``_split``: train/validation/test)."""
    from engine.sql.ops import Relation

    checked, opened = _open(path, workspace)
    with opened as stores:
        mv = _resolve(checked, stores, model, version)
        frame = stores.backend.frame(Relation.parse(mv.info.training_data.table))
    return frame[frame["_split"] == split].reset_index(drop=True) if split else frame


def read_predictions(path: str | Path, job: str, *, run_id: str | None = None, workspace: str | Path | None = None) -> "pandas.DataFrame":
    """What a batch or stream job scored: its predictions table (``predictions.<output.table or
    job>``), each row with the model version, feature view, time and run that made it; ``run_id``:
    one run's rows only. UsageError for an unknown or online job (online predictions are sampled by
    ``monitoring``, see ``engine monitor``) and for a job that has not run yet."""
    from engine.serving.outputs import predictions_table
    from engine.sql.ops import Scan

    checked, opened = _open(path, workspace)
    relation = predictions_table(_scored_job(checked, job))
    with opened as stores:
        if not stores.backend.exists(relation):
            raise UsageError(f"inference:{job} has not scored anything yet: run `engine apply` (or `engine run {job}` for a stream job)")
        frame = stores.backend.frame(Scan(relation))
    return frame[frame["run_id"] == run_id].reset_index(drop=True) if run_id is not None else frame


def show_predictions(path: str | Path, job: str, *, workspace: str | Path | None = None) -> dict | None:
    """A batch or stream job's predictions table in brief: rows, runs, the model versions that
    scored them and when the last run did; None before its first run."""
    from engine.serving.outputs import predictions_table
    from engine.sql.ops import Scan

    checked, opened = _open(path, workspace)
    relation = predictions_table(_scored_job(checked, job))
    with opened as stores:
        if not stores.backend.exists(relation):
            return None
        stamps = stores.backend.frame(Scan(relation, columns=("model", "model_version", "scored_at", "run_id")))
    versions = sorted({(str(m), int(v)) for m, v in zip(stamps["model"], stamps["model_version"])})
    last = stamps["scored_at"].max() if len(stamps) else None
    return {
        "table": f"{relation.schema}.{relation.name}",
        "rows": int(len(stamps)),
        "runs": int(stamps["run_id"].nunique()),
        "model_versions": [f"model:{m}@{v}" for m, v in versions],
        "last_scored_at": last.isoformat() if last is not None and not (last != last) else None,
        "last_run_id": str(stamps.loc[stamps["scored_at"].idxmax(), "run_id"]) if len(stamps) else None,
    }


def _scored_job(checked: "CheckedProject", job: str):
    from engine.errors import did_you_mean
    from engine.model.objects import InferenceMode

    jobs = checked.project.inference
    if job not in jobs:
        hint = did_you_mean(job, sorted(jobs))
        raise UsageError(f"unknown inference job '{job}'" + (f" ({hint})" if hint else "") + f"; jobs: {', '.join(sorted(jobs)) or 'none'}")
    if jobs[job].mode is InferenceMode.ONLINE:
        raise UsageError(f"inference:{job} is an online job: it keeps no predictions table (set monitoring on it to sample requests and predictions, read by `engine monitor`)")
    return jobs[job]


def read_rejects(path: str | Path, source: str | None = None, *, workspace: str | Path | None = None) -> "pandas.DataFrame":
    """Rows that sources with ``on_bad_rows: quarantine`` set aside, newest run first."""
    import pandas as pd

    from engine.state import metadata

    _, opened = _open(path, workspace)
    with opened as stores:
        rows = metadata.rejects(stores.backend.catalog, source)
    columns = ["run_id", "source", "file", "line", "column_name", "error_type", "csv_line", "message", "rejected_at"]
    return pd.DataFrame(rows, columns=columns) if rows else pd.DataFrame({"source": pd.Series([], dtype="object")})


def list_models(path: str | Path, *, workspace: str | Path | None = None) -> list[dict]:
    """Every registered model version with its test metrics and aliases."""
    _, opened = _open(path, workspace)
    with opened as stores:
        versions = stores.registry.list()
    return [_model_summary(mv) for mv in versions]


def show_model(path: str | Path, name: str, *, version: str | int | None = None, workspace: str | Path | None = None) -> dict:
    """The manifest of one model version (latest, a number, ``best:<metric>`` or an alias)."""
    checked, opened = _open(path, workspace)
    with opened as stores:
        mv = _resolve(checked, stores, name, version)
    return {**_model_summary(mv), "manifest": mv.manifest}


def compare_models(path: str | Path, a: str, b: str, *, workspace: str | Path | None = None) -> dict:
    """Two model versions side by side (``name@selector`` each; ``b`` may give only ``@selector``
    for the same model): their summaries, every param with both values, every metric per split
    with the difference ``b - a`` and which version is better by the metric's direction, and the
    features each was trained on."""
    from engine.ids import ModelRef
    from engine.model.catalogue import higher_is_better

    ref_a = ModelRef.parse(a)
    ref_b = ModelRef.parse(f"{ref_a.name}{b}" if b.startswith("@") else b)
    checked, opened = _open(path, workspace)
    with opened as stores:
        va = _resolve(checked, stores, ref_a.name, ref_a.selector)
        vb = _resolve(checked, stores, ref_b.name, ref_b.selector)
    pa, pb = va.info.params, vb.info.params
    params = [{"name": k, "a": pa.get(k), "b": pb.get(k), "same": pa.get(k) == pb.get(k) and (k in pa) == (k in pb)} for k in sorted({*pa, *pb})]
    metrics = []
    for split in ("validation", "test"):
        ma, mb = va.info.metrics.get(split) or {}, vb.info.metrics.get(split) or {}
        for name in sorted({*ma, *mb}):
            x, y = ma.get(name), mb.get(name)
            delta = y - x if x is not None and y is not None else None
            better = None
            if delta is not None and delta != 0:
                better = "b" if (delta > 0) == higher_is_better(name) else "a"
            metrics.append({"split": split, "metric": name, "a": x, "b": y, "delta": delta, "better": better})
    fa, fb = list(va.info.feature_columns), list(vb.info.feature_columns)
    return {
        "a": {**_model_summary(va), "feature_view_version": va.info.feature_view_version},
        "b": {**_model_summary(vb), "feature_view_version": vb.info.feature_view_version},
        "params": params,
        "metrics": metrics,
        "features": {"only_a": [f for f in fa if f not in fb], "only_b": [f for f in fb if f not in fa], "both": [f for f in fa if f in fb]},
    }


def check(path: str | Path, *, workspace: str | Path | None = None) -> list[str]:
    """Integrity problems of the workspace: a table whose recorded commit cannot be read (damaged
    or replaced by another tool), orphan or tampered model artifacts (G5, G6), and an online
    snapshot that is damaged or does not reflect the published state (I2)."""
    from engine.store.online import problems as online_problems

    checked, opened = _open(path, workspace)
    from engine.project import workspace_of

    with opened as stores:
        tables = stores.backend.lake.problems() if stores.backend.lake is not None else []
        if tables:  # the snapshot check reads those tables: report what is broken, not its echo
            return sorted(tables + stores.registry.check())
        return sorted(stores.registry.check() + online_problems(stores, workspace_of(checked, workspace)))


def gc(path: str | Path, *, workspace: str | Path | None = None, lock_timeout_s: float = 0.0) -> list:
    """Remove what is no longer needed: orphan model directories a crashed run left (G6); feature
    group and view versions that nothing references (not declared, not joined by number, no model
    version trained on them) once published longer than ``storage.retention`` (default 7d) ago;
    and the files of table commits older than that which no current commit uses, with the folders
    of tables dropped that long ago. Returns what was removed."""
    from datetime import timedelta

    from engine.project import validate, workspace_of
    from engine.session import writing
    from engine.state.workspace import ProjectLock

    checked = validate(path)
    ws = workspace_of(checked, workspace)
    if not ws.exists():
        raise UsageError(f"no workspace at {ws.root}: run `engine apply` first")
    retention = timedelta(seconds=checked.project.retention_seconds)
    with ProjectLock(ws, timeout_s=lock_timeout_s), writing(ws, spill=False, project=checked.project) as stores:
        removed: list = stores.registry.gc()
        removed += collect_versions(stores, checked.project, retention)
        removed += stores.backend.lake.vacuum(retention)
    return removed


def unreferenced_versions(catalog, project, registry, retention) -> list[tuple[str, str, int, list[str]]]:
    """Feature group and view versions nothing references any more, published longer than
    ``retention`` ago: (kind, name, version, their tables). Referenced: the version the spec
    declares, a group version a declared view joins by number (``weather@2``), a view version a
    registered model version was trained on and the group versions it read (they stay readable
    and servable while one uses them)."""
    from datetime import UTC, datetime

    from engine.state import metadata

    from engine.state.usage import versions_in_use

    cutoff = datetime.now(UTC) - retention
    pinned = {(j.feature_group, j.version) for fv in project.feature_views.values() for j in fv.joins if j.version is not None}
    used_views = {(mv.info.feature_view, mv.info.feature_view_version) for mv in registry.list()}
    definitions = metadata.stored_definitions(catalog)
    for view, version in used_views:  # the group versions a view version in use read (its spine, its joins)
        joined = (definitions.get(f"feature_view:{view}@{version}") or {}).get("joined") or {}
        pinned |= {(group, int(v)) for group, v in joined.items()}
    pinned |= {(k.split(":")[1].rsplit("@")[0], int(k.rsplit("@")[1])) for k in versions_in_use(catalog, definitions) if k.startswith("feature_group:")}
    out = []
    for fgv in metadata.all_feature_group_versions(catalog):
        declared = project.feature_groups.get(fgv.name)
        if (declared is not None and declared.version == fgv.version) or (fgv.name, fgv.version) in pinned:
            continue
        if datetime.fromisoformat(fgv.published_at) > cutoff:
            continue
        out.append(("feature_group", fgv.name, fgv.version, [t for t in (fgv.offline_table, fgv.online_table) if t]))
    for row in metadata.feature_view_versions(catalog):
        declared = project.feature_views.get(row["name"])
        if (declared is not None and declared.version == row["version"]) or (row["name"], row["version"]) in used_views:
            continue
        if row["published_at"] > cutoff:
            continue
        out.append(("feature_view", row["name"], row["version"], [row["table_name"]]))
    return out


def collect_versions(stores, project, retention) -> list[str]:
    """Drop the tables and records of ``unreferenced_versions`` (one catalog transaction; the
    lake's vacuum then deletes their files once past retention). Returns their ids."""
    from engine.sql.ops import Relation
    from engine.state import metadata

    backend = stores.backend
    found = unreferenced_versions(backend.catalog, project, stores.registry, retention)
    if not found:
        return []
    with backend.transaction():
        for kind, name, version, tables in found:
            for table in tables:
                relation = Relation.parse(table)
                if backend.exists(relation):
                    backend.drop(relation)
            metadata.forget_version(backend.catalog, kind, name, version)
    return [f"{kind}:{name}@{version} (no longer declared or used)" for kind, name, version, _ in found]


def _resolve(checked: "CheckedProject", stores, name: str, selector) -> "ModelVersion":
    if not stores.registry.list():
        raise UsageError(
            f"no model has been registered yet: run `engine apply` (models in the spec: {', '.join(sorted(checked.project.models)) or 'none'})"
        )
    return stores.registry.get(name, selector)


def _model_summary(mv: "ModelVersion") -> dict:
    info = mv.info
    return {
        "id": mv.ref,
        "name": mv.name,
        "version": mv.version,
        "aliases": list(mv.aliases),
        "estimator": info.estimator,
        "params": dict(info.params),
        "feature_view": info.feature_view_ref,
        "metrics": dict(info.metrics),
        "training_rows": dict(info.training_data.rows),
        "created_at": mv.created_at,
        "fingerprint": mv.fingerprint,
    }


def _not_published(checked: "CheckedProject", name: str, version: int | None) -> str:
    from engine.errors import did_you_mean

    if name not in checked.project.feature_groups:
        hint = did_you_mean(name, list(checked.project.feature_groups))
        return f"no feature group named '{name}' in the spec" + (f" ({hint})" if hint else "")
    at = f"@{version}" if version is not None else ""
    return f"feature_group:{name}{at} has not been published yet: run `engine apply`"
