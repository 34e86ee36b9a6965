"""Environments: build changes beside the default environment, then promote them without recomputing.

``engine apply --env dev`` applies the project into ``<workspace>/envs/dev``, a workspace cloned
from the default one (``prod``): its catalog is a consistent copy (SQLite's backup), and every
table, model artifact and online snapshot of ``prod`` is *shared* through hard links (each Delta
table's small log is copied, its Parquet files linked: no data is copied or recomputed). The
planner then runs only what changed against that state, so the unchanged physical data is reused
as SQLMesh's virtual environments reuse unchanged tables. A file a job writes goes under the
environment (``envs/dev/outputs/<its path>``), never over the project's own.

``engine promote dev`` makes the default environment's state dev's, atomically and without running a
step: each table dev wrote is committed into prod's table from dev's Parquet files (hard-linked,
``Lake.adopt``), and prod's metadata (what was built, with which fingerprints and definitions,
model versions and aliases) becomes dev's, all in one catalog transaction; readers see the old
state or the new one. Model artifacts and job output files are linked or moved into place first,
the online snapshot is republished after. Promotion is refused (exit 3, nothing switched) when prod
changed since dev was cloned from it, or when dev does not reflect the project as it is on disk.

``engine diff A B`` compares two environments object by object: rows, columns and statistics.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from engine.errors import PlanError, UsageError
from engine.state.workspace import ProjectLock, Workspace

DEFAULT = "prod"
NAME = re.compile(r"^[a-z][a-z0-9_]{0,30}$")
RECORD = "env.json"
OUTPUTS = "outputs"
# Catalog tables the lake owns (promotion records its own commits) or that are per-workspace logs.
_LAKE_TABLES = {"tables", "table_commits"}


def check_name(name: str) -> str:
    """``name`` if it can name an environment; UsageError (exit 2) otherwise."""
    if name == DEFAULT:
        raise UsageError(f"'{DEFAULT}' is the default environment: apply without --env")
    if not NAME.match(name):
        raise UsageError(f"invalid environment name {name!r}: lowercase letters, digits and '_', starting with a letter (at most 31)")
    return name


def env_workspace(ws: Workspace, name: str) -> Workspace:
    """The workspace of environment ``name`` (the default one for ``prod``)."""
    return ws if name == DEFAULT else Workspace(ws.root / "envs" / check_name(name))


# --- the state an environment was cloned from -------------------------------------------------------


def state_token(catalog_path: Path) -> str:
    """What a workspace has published, as a digest (``environment_catalog.published_token``)."""
    from engine.state.environment_catalog import published_token

    return published_token(catalog_path)


def table_versions(catalog_path: Path) -> dict[str, int]:
    """``schema.table`` -> committed version in the workspace catalog at ``catalog_path``."""
    from engine.state import environment_catalog

    return environment_catalog.table_versions(catalog_path)


def read_record(env: Workspace) -> dict | None:
    try:
        return json.loads((env.root / RECORD).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def write_record(env: Workspace, record: dict) -> None:
    """``env.json``, atomically (a torn one reads as absent: the next apply clones afresh)."""
    from engine.state.atomic import write_atomic

    write_atomic(env.root / RECORD, (json.dumps(record, indent=2, sort_keys=True) + "\n").encode())


# --- cloning ---------------------------------------------------------------------------------------


def _share_tree(src: Path, dst: Path) -> None:
    """``dst`` as a copy of ``src`` sharing its immutable files: Parquet, Arrow and artifacts are
    hard-linked; JSON (Delta logs, manifests, pointers) and anything that cannot be linked is
    copied, so a later in-place rewrite of one never shows through in the other."""
    for folder, dirs, files in os.walk(src):
        rel = Path(folder).relative_to(src)
        (dst / rel).mkdir(parents=True, exist_ok=True)
        copy = "_delta_log" in rel.parts
        for name in files:
            a, b = Path(folder) / name, dst / rel / name
            if copy or name.endswith((".json", ".crc")) or name in ("CURRENT", "lock"):
                if name != "lock":
                    shutil.copy2(a, b)
                continue
            try:
                os.link(a, b)
            except OSError:
                shutil.copy2(a, b)


def clone(prod: Workspace, env: Workspace) -> dict:
    """(Re)create ``env`` from ``prod``'s last published state (the caller holds prod's lock, so
    no apply publishes meanwhile); returns the environment's record."""
    parent = env.root.parent
    parent.mkdir(parents=True, exist_ok=True)
    tmp = parent / f".tmp-{env.root.name}-{uuid.uuid4().hex[:8]}"
    try:
        tmp.mkdir()
        staged = Workspace(tmp)
        if prod.catalog.is_file():
            from engine.state.environment_catalog import backup

            backup(prod.catalog, staged.catalog)
        for name in ("tables", "models", "online"):
            if (prod.root / name).is_dir():
                _share_tree(prod.root / name, staged.root / name)
        for name in ("digests.json", "libraries.json"):
            if (prod.root / name).is_file():
                shutil.copy2(prod.root / name, staged.root / name)
        record = {
            "name": env.root.name,
            "base": state_token(prod.catalog),
            "base_tables": table_versions(staged.catalog),
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        write_record(staged, record)
        if env.root.exists():
            trash = parent / f".trash-{env.root.name}-{uuid.uuid4().hex[:8]}"
            os.rename(env.root, trash)
            shutil.rmtree(trash, ignore_errors=True)
        os.rename(tmp, env.root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return record


def ensure(prod: Workspace, name: str, *, lock_timeout_s: float = 0.0) -> tuple[Workspace, str | None]:
    """The workspace of environment ``name``, cloned from prod when it does not exist or prod
    published something since (a *rebase*: its own builds are redone by the apply that follows);
    with a note saying which, or None when it was up to date."""
    env = env_workspace(prod, name)
    record = read_record(env)
    if record is not None and record.get("base") == state_token(prod.catalog):
        return env, None
    if prod.exists():
        with ProjectLock(prod, timeout_s=lock_timeout_s):
            clone(prod, env)
    else:
        clone(prod, env)
    if record is None:
        return env, f"environment '{name}' created from {DEFAULT} (its tables, models and online snapshot shared, nothing copied or recomputed)"
    return env, f"environment '{name}' rebased on {DEFAULT}, which published since it was created: what it changes is built again"


# --- promotion ---------------------------------------------------------------------------------------


@dataclass
class Promotion:
    """What ``promote`` switched."""

    env: str
    tables: list[str] = field(default_factory=list)  # committed into prod from the environment
    dropped: list[str] = field(default_factory=list)
    models: list[str] = field(default_factory=list)  # model versions prod gained
    files: list[str] = field(default_factory=list)  # job outputs moved into the project
    snapshot: str | None = None

    def as_dict(self) -> dict:
        return {"env": self.env, "tables": self.tables, "dropped": self.dropped, "models": self.models, "files": self.files, "snapshot": self.snapshot}


def check_promotable(prod: Workspace, env: Workspace, name: str, pending: list[str]) -> dict:
    """The environment's record, when it can be promoted; PlanError (exit 3) otherwise, naming why.
    ``pending``: the steps a plan of the project on disk would run in the environment."""
    record = read_record(env)
    if record is None or not env.exists():
        raise UsageError(f"no environment '{name}': create it with `engine apply --env {name}`")
    if record.get("base") != state_token(prod.catalog):
        raise PlanError(
            f"environment '{name}' is behind {DEFAULT}: {DEFAULT} published since it was created ({record.get('created_at')}); "
            f"`engine apply --env {name}` rebases it, then promote again. Nothing was switched."
        )
    if pending:
        shown = ", ".join(pending[:5]) + (f" and {len(pending) - 5} more" if len(pending) > 5 else "")
        raise PlanError(
            f"environment '{name}' does not reflect the project on disk: {shown} would still run; "
            f"`engine apply --env {name}` first. Nothing was switched."
        )
    return record


def _data_files(lake, relation) -> list[tuple[str, int]]:
    import pyarrow.parquet as pq

    out = []
    for file in lake.files(relation):
        path = Path(file)
        if not path.is_absolute():
            path = lake.path(relation) / path
        out.append((str(path), pq.ParquetFile(path).metadata.num_rows))
    return out


def promote(prod: Workspace, env: Workspace, name: str, record: dict, project) -> Promotion:
    """Switch prod to ``env``'s state (the caller holds both locks and checked the record)."""
    from engine.backends.catalog import SqliteCatalog

    result = Promotion(name)
    prod.create()
    base = record.get("base_tables") or {}
    now_tables = table_versions(env.catalog)
    changed = sorted(t for t, v in now_tables.items() if base.get(t) != v)
    dropped = sorted(t for t in base if t not in now_tables)
    # Model artifacts and job outputs first: files nothing references until the catalog says so.
    result.models = _link_models(env, prod)
    moved = _stage_outputs(env, project.root)
    catalog = SqliteCatalog.open(prod.catalog)
    try:
        _switch(catalog, env, prod, name, changed, dropped, result)
    except BaseException:
        for tmp, _ in moved:
            tmp.unlink(missing_ok=True)
        raise
    finally:
        catalog.close()
    for src, dst in moved:  # the catalog now names what produced them
        os.replace(src, dst)
        result.files.append(str(dst.relative_to(project.root.resolve())))
    for name_ in ("libraries.json",):
        if (env.root / name_).is_file():
            shutil.copy2(env.root / name_, prod.root / name_)
    return result


def _switch(catalog, env: Workspace, prod: Workspace, name: str, changed: list[str], dropped: list[str], result: Promotion) -> None:
    """One catalog transaction: the tables the environment wrote committed into prod's, prod's
    metadata replaced by the environment's. Nothing of it is visible unless all of it is."""
    from engine.backends.catalog import SqliteCatalog
    from engine.backends.lake import Lake

    src_lake = Lake(env.tables_dir, SqliteCatalog.open_read_only(env.catalog), read_only=True)
    try:
        _replace(catalog, src_lake, Lake(prod.tables_dir, catalog), env, name, changed, dropped, result)
    finally:
        src_lake.catalog.close()


def _replace(catalog, src_lake, lake, env: Workspace, name: str, changed: list[str], dropped: list[str], result: Promotion) -> None:
    """The body of ``_switch``: ``src_lake`` the environment's tables, ``lake`` prod's."""
    from engine.faults import fault_point
    from engine.sql.ops import Relation
    from engine.state import environment_catalog

    lake.run_id = f"promote-{name}-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}"
    names = [t for t in environment_catalog.attach(catalog, env.catalog) if t not in _LAKE_TABLES]
    with catalog.transaction(), lake.transaction():
        for key in changed:
            schema, table = key.split(".", 1)
            relation = Relation(schema, table)
            files = _data_files(src_lake, relation)
            if lake.adopt(relation, files, src_lake.schema(relation)) is None:
                raise PlanError(f"cannot link the files of {key} from environment '{name}' into {DEFAULT} (another file system?); nothing was switched")
            result.tables.append(key)
        for key in dropped:
            schema, table = key.split(".", 1)
            if lake.version(Relation(schema, table)) is not None:
                lake.drop(Relation(schema, table))
                result.dropped.append(key)
        for table in names:
            environment_catalog.replace_table(catalog, table)
        fault_point("mid_promote")  # G1: prod's tables hold new commits the catalog does not record yet


def _link_models(env: Workspace, prod: Workspace) -> list[str]:
    """Hard-link (or copy) the model version folders prod lacks; their ids."""
    out = []
    if not env.models_dir.is_dir():
        return out
    for model in sorted(p for p in env.models_dir.iterdir() if p.is_dir()):
        for version in sorted((p for p in model.iterdir() if p.is_dir()), key=lambda p: p.name):
            target = prod.models_dir / model.name / version.name
            if not target.exists():
                _share_tree(version, target)
                out.append(f"model:{model.name}@{version.name}")
    return out


def _stage_outputs(env: Workspace, project_root: Path) -> list[tuple[Path, Path]]:
    """Each file the environment's jobs wrote, copied to a temp name in the environment and paired
    with its place in the project: promotion renames them into place once the catalog switched."""
    root = env.root / OUTPUTS
    pairs = []
    if not root.is_dir():
        return pairs
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        target = (project_root / path.relative_to(root)).resolve()
        if not target.is_relative_to(project_root.resolve()):
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = env.root / "tmp"
        staging.mkdir(parents=True, exist_ok=True)
        tmp = staging / f"promote-{uuid.uuid4().hex[:8]}-{target.name}"  # a crash leaves it here, not in the project
        shutil.copy2(path, tmp)
        pairs.append((tmp, target))
    return pairs


# --- diff -------------------------------------------------------------------------------------------

_STATS = ("count", "nulls", "distinct", "mean", "std", "min", "p50", "max")


def _objects(ws: Workspace) -> dict[str, dict]:
    """Object id -> what a diff compares, from a workspace's catalog (read-only; {} when empty)."""
    from engine.backends.catalog import SqliteCatalog
    from engine.state import environment_catalog, metadata, model_index

    if not ws.catalog.is_file():
        return {}
    out: dict[str, dict] = {}
    with SqliteCatalog.open_read_only(ws.catalog) as catalog:
        for fgv in metadata.all_feature_group_versions(catalog):
            out[f"feature_group:{fgv.name}@{fgv.version}"] = {
                "rows": fgv.row_count, "fingerprint": fgv.fingerprint, "columns": dict(fgv.columns),
                "stats": {c: {k: v for k, v in (st or {}).items() if k in _STATS} for c, st in (fgv.stats or {}).items()},
            }
        for row in environment_catalog.view_summaries(catalog):
            layout = json.loads(row["layout"]) if isinstance(row["layout"], str) else row["layout"]
            out[f"feature_view:{row['name']}@{row['version']}"] = {
                "rows": row["row_count"], "fingerprint": row["fingerprint"], "columns": {c: "" for c in (layout or {}).get("columns", [])}, "stats": {},
            }
        aliases: dict[tuple[str, int], list[str]] = {}
        for name, alias, version in model_index.aliases(catalog):
            aliases.setdefault((name, int(version)), []).append(alias)
        for row in model_index.version_rows(catalog):
            manifest = json.loads(row["manifest"])
            out[f"model:{row['name']}@{row['version']}"] = {
                "rows": None, "fingerprint": row["fingerprint"], "columns": {c: "" for c in manifest.get("feature_columns", [])}, "stats": {},
                "metrics": manifest.get("metrics", {}), "aliases": sorted(aliases.get((row["name"], int(row["version"])), [])),
            }
    return out


def diff(a: Workspace, b: Workspace, names: tuple[str, str]) -> dict:
    """Object by object, what differs between two environments' workspaces: presence, rows,
    columns (added, removed, retyped), per-column statistics, and for models metrics and aliases."""
    left, right = _objects(a), _objects(b)
    objects = []
    for key in sorted(set(left) | set(right)):
        x, y = left.get(key), right.get(key)
        if x is None or y is None:
            objects.append({"object": key, "status": f"only in {names[0] if y is None else names[1]}"})
            continue
        entry: dict = {"object": key, "rows": [x["rows"], y["rows"]]}
        entry["columns"] = {
            "added": [c for c in y["columns"] if c not in x["columns"]],
            "removed": [c for c in x["columns"] if c not in y["columns"]],
            "retyped": [[c, x["columns"][c], y["columns"][c]] for c in x["columns"] if c in y["columns"] and x["columns"][c] != y["columns"][c]],
        }
        entry["stats"] = [
            {"column": c, "stat": k, "a": x["stats"][c].get(k), "b": y["stats"][c].get(k)}
            for c in x["stats"] if c in y["stats"]
            for k in _STATS if x["stats"][c].get(k) != y["stats"][c].get(k)
        ]
        if "metrics" in x:
            entry["metrics"] = [x["metrics"], y["metrics"]] if x["metrics"] != y["metrics"] else None
            entry["aliases"] = [x["aliases"], y["aliases"]] if x["aliases"] != y["aliases"] else None
        same_data = x["fingerprint"] == y["fingerprint"] and x["rows"] == y["rows"] and not entry["stats"]
        changed = not same_data or any(entry["columns"].values()) or entry.get("metrics") or entry.get("aliases")
        entry["status"] = "changed" if changed else "same"
        objects.append(entry)
    return {"a": names[0], "b": names[1], "objects": objects, "changed": sum(o["status"] != "same" for o in objects)}


__all__ = ["DEFAULT", "Promotion", "check_name", "check_promotable", "clone", "diff", "ensure", "env_workspace", "promote", "read_record", "state_token", "table_versions", "write_record"]
