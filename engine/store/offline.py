"""The offline store: feature-group versions as tables on a backend, with schema evolution,
breaking-change checks and atomic publish.

Offline: history, one row per (primary key, event time). A (non-incremental) feature group's
apply is one commit that *replaces* its rows, so the table equals what the sources yield now
(DESIGN §3); earlier commits stay readable (``as_of``). An incremental group's apply publishes
the same way: its staged rows are its previous rows combined with what the new input rows changed
(``engine.runtime.incremental``), so the commit still holds exactly what a full recompute gives.
Online: the latest row per primary key. Both commits and the metadata row are recorded in one transaction, so readers see the old version
or the new, never a mix. The backend compiles the latest-per-key; this module owns the rules. Must
not touch training or HTTP.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, runtime_checkable

from engine.backends.base import Backend
from engine.errors import PlanError, UsageError
from engine.model.objects import FeatureGroup
from engine.sql.ops import LatestPerKey, Relation, key_columns
from engine.state import metadata
from engine.state.metadata import FeatureGroupVersion

if TYPE_CHECKING:
    import pandas

_WIDENINGS = {
    ("TINYINT", "SMALLINT"), ("TINYINT", "INTEGER"), ("TINYINT", "BIGINT"),
    ("SMALLINT", "INTEGER"), ("SMALLINT", "BIGINT"), ("INTEGER", "BIGINT"),
    ("FLOAT", "DOUBLE"), ("TINYINT", "DOUBLE"), ("SMALLINT", "DOUBLE"), ("INTEGER", "DOUBLE"),
    ("TIMESTAMP", "TIMESTAMP WITH TIME ZONE"), ("DATE", "TIMESTAMP WITH TIME ZONE"),
    # Not widenings, but the engine's own normalisation: a windowed sum of integers was a HUGEINT
    # (stored as DECIMAL(38,0)) and is a BIGINT since; the values are the same integers.
    ("DECIMAL(38,0)", "BIGINT"), ("HUGEINT", "BIGINT"),
}


def physical_name(fg_name: str, version: int) -> str:
    """Table name of a feature-group version (same in the offline and online schemas).

    >>> physical_name("weather", 2)
    'weather__v2'
    """
    return f"{fg_name}__v{version}"


def offline_relation(fg_name: str, version: int) -> Relation:
    return Relation("offline", physical_name(fg_name, version))


def online_relation(fg_name: str, version: int) -> Relation:
    return Relation("online", physical_name(fg_name, version))


def source_relation(name: str) -> Relation:
    """Where an ingested source's rows live."""
    return Relation("src", name)


def input_relation(project, offline: "OfflineStore", name: str) -> Relation:
    """The physical relation of a source, or of a feature group's current version."""
    if name in project.sources:
        return source_relation(name)
    fg = project.feature_groups[name]
    return offline.relation(fg.name, fg.version)


def breaking_changes(old: FeatureGroupVersion, fg: FeatureGroup, new_columns: dict[str, str]) -> list[str]:
    """What makes ``new_columns`` incompatible with the stored version (DESIGN §3 Versions, F9, F10).

    Adding a column or widening a type is not breaking; removing or narrowing/retyping a column,
    or changing the primary key or event time, is.
    """
    problems = []
    if tuple(old.primary_key) != tuple(fg.primary_key):
        problems.append(f"primary key changed from {list(old.primary_key)} to {list(fg.primary_key)}")
    if old.event_time != fg.event_time:
        problems.append(f"event time changed from {old.event_time!r} to {fg.event_time!r}")
    for name, typ in old.columns.items():
        if name not in new_columns:
            problems.append(f"column '{name}' removed")
        elif new_columns[name] != typ and (typ, new_columns[name]) not in _WIDENINGS:
            problems.append(f"column '{name}' changed type from {typ} to {new_columns[name]}")
    return problems


@runtime_checkable
class OfflineStore(Protocol):
    """Published feature-group versions. One contract suite (tests/contract) runs on every implementation."""

    def relation(self, name: str, version: int) -> Relation: ...
    def version(self, name: str, version: int | None = None) -> FeatureGroupVersion | None: ...
    def versions(self) -> list[tuple[str, int, int, str]]: ...
    def all_versions(self) -> list[FeatureGroupVersion]: ...
    def publish(
        self, fg: FeatureGroup, staged: Relation, *, run_id: str, fingerprint: str, fitted: dict, fault_point=..., rows_written: int | None = None
    ) -> FeatureGroupVersion: ...
    def publish_append(
        self, fg: FeatureGroup, added: Relation, *, run_id: str, fingerprint: str, fitted: dict, fault_point=..., check_table=...
    ) -> FeatureGroupVersion: ...
    def read(self, name: str, version: int | None = None, *, online: bool = False, as_of=None) -> "pandas.DataFrame": ...
    def commits(self, name: str, version: int | None = None) -> list: ...


class TableOfflineStore:
    """Feature-group versions as tables of the backend's database (``offline.<name>__v<version>``),
    indexed in the catalog."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend

    def relation(self, name: str, version: int) -> Relation:
        return offline_relation(name, version)

    def version(self, name: str, version: int | None = None) -> FeatureGroupVersion | None:
        return metadata.feature_group_version(self.backend.catalog, name, version)

    def versions(self) -> list[tuple[str, int, int, str]]:
        """(name, version, row_count, published_at) of every published version."""
        return metadata.feature_group_versions(self.backend.catalog)

    def all_versions(self) -> list[FeatureGroupVersion]:
        """Every published version, ordered by name and version."""
        return metadata.all_feature_group_versions(self.backend.catalog)

    def read(self, name: str, version: int | None = None, *, online: bool = False, as_of=None) -> "pandas.DataFrame":
        """A published version's rows (offline history, or the online latest per key), in key order;
        with ``as_of`` (a commit number, or a time: the last commit at or before it) as they were then."""
        from engine.sql.ops import Scan

        fgv = self.version(name, version)
        if fgv is None:
            raise UsageError(f"feature_group:{name}{f'@{version}' if version is not None else ''} has not been published yet: run `engine apply`")
        table = fgv.online_table if online else fgv.offline_table
        if table is None:
            raise UsageError(f"feature_group:{name}@{fgv.version} has no online table (online: false)")
        relation = Relation.parse(table)
        if as_of is not None:
            relation = self._as_of(relation, as_of)
        return self.backend.frame(Scan(relation, order_by=key_columns(fgv.primary_key, fgv.event_time)))

    def commits(self, name: str, version: int | None = None) -> list:
        """The recorded commits of a version's offline table (``Commit``: version, run, time), oldest first."""
        fgv = self.version(name, version)
        lake = getattr(self.backend, "lake", None)
        if fgv is None or lake is None:
            return []
        return lake.commits(Relation.parse(fgv.offline_table))

    def commit_as_of(self, name: str, version: int | None, as_of):
        """The recorded commit of a version's offline table that ``as_of`` names (UsageError if none)."""
        fgv = self.version(name, version)
        lake = getattr(self.backend, "lake", None)
        if fgv is None or lake is None:
            raise UsageError(f"feature_group:{name} keeps no history here: as_of needs a workspace")
        relation = Relation.parse(fgv.offline_table)
        number = lake.version_as_of(relation, as_of)
        return next(c for c in lake.commits(relation) if c.version == number)

    def _as_of(self, relation: Relation, as_of) -> Relation:
        lake = getattr(self.backend, "lake", None)
        if lake is None:
            raise UsageError("this workspace keeps no history (an in-memory backend): as_of needs a workspace")
        return self.backend.at_version(relation, lake.version_as_of(relation, as_of))

    def publish(
        self,
        fg: FeatureGroup,
        staged: Relation,
        *,
        run_id: str,
        fingerprint: str,
        fitted: dict,
        fault_point=lambda name: None,
        rows_written: int | None = None,
    ) -> FeatureGroupVersion:
        """Commit the staged rows as the offline table's new rows and their latest per key as the
        online table, with the metadata row, atomically. PlanError for a breaking change (nothing
        recorded)."""
        backend = self.backend
        offline = offline_relation(fg.name, fg.version)
        online = online_relation(fg.name, fg.version)
        rows = backend.count(staged)
        with backend.transaction():
            if staged != offline:  # else written there already, in this transaction
                backend.create(offline, staged, replace=True)
            columns = backend.columns(offline)  # as stored (the table format may widen a type)
            check_compatible(backend, fg, columns)
            fault_point("inside_publish")
            if fg.online:
                backend.create(online, LatestPerKey(staged, fg.primary_key, fg.event_time), replace=True)
            version = _version_row(fg, columns, fitted, backend.statistics(staged), rows, fingerprint, run_id)
            metadata.upsert_feature_group(backend.catalog, version, rows if rows_written is None else rows_written)
        return version


    def publish_append(
        self,
        fg: FeatureGroup,
        added: Relation,
        *,
        run_id: str,
        fingerprint: str,
        fitted: dict,
        fault_point=lambda name: None,
        check_table=lambda table: None,
    ) -> FeatureGroupVersion:
        """Commit ``added`` (rows whose keys the table does not hold yet: the caller checked) as an
        append to the offline table, so that the commit only adds files; the statistics are the
        stored ones merged with the new rows' (``engine.store.statistics``). ``check_table`` sees
        the whole table before anything is recorded (table-level expectations). Atomic as
        ``publish``."""
        from engine.store import statistics

        backend = self.backend
        offline = offline_relation(fg.name, fg.version)
        online = online_relation(fg.name, fg.version)
        old = metadata.feature_group_version(backend.catalog, fg.name, fg.version)
        if old is None:
            raise PlanError(f"{fg.id}: nothing stored to append to")
        new_rows = backend.count(added)
        with backend.transaction():
            if new_rows:
                backend.append(offline, added)
            columns = backend.columns(offline)
            check_compatible(backend, fg, columns)
            check_table(offline)
            fault_point("inside_publish")
            if fg.online and new_rows:
                if old.online_table == str(online) and backend.exists(online):
                    # The latest row per key of (the previous latest rows + the new rows): the new
                    # rows carry keys the table does not hold, so this is the latest over the whole
                    # history, read from one row per key instead of every row ever stored.
                    backend.append(online, added)
                    backend.create(online, LatestPerKey(online, fg.primary_key, fg.event_time), replace=True)
                else:
                    backend.create(online, LatestPerKey(offline, fg.primary_key, fg.event_time), replace=True)
            rows = old.row_count + new_rows
            stats = statistics.merge(old.stats or {}, backend.statistics(added), old.row_count, new_rows) if new_rows else old.stats
            version = _version_row(fg, columns, fitted, stats if stats is not None else backend.statistics(offline), rows, fingerprint, run_id)
            metadata.upsert_feature_group(backend.catalog, version, new_rows)
        return version


def _version_row(fg: FeatureGroup, columns: dict[str, str], fitted: dict, stats: dict, rows: int, fingerprint: str, run_id: str) -> FeatureGroupVersion:
    """The metadata row of a publication of ``fg`` (its tables named by ``offline_relation`` and
    ``online_relation``)."""
    return FeatureGroupVersion(
        name=fg.name,
        version=fg.version,
        offline_table=str(offline_relation(fg.name, fg.version)),
        online_table=str(online_relation(fg.name, fg.version)) if fg.online else None,
        primary_key=fg.primary_key,
        event_time=fg.event_time,
        columns=columns,
        fitted=fitted,
        stats=stats,
        row_count=rows,
        fingerprint=fingerprint,
        run_id=run_id,
        published_at="",
    )


def required_bumps(catalog, groups, columns) -> list[str]:
    """Before anything runs: every feature group in ``groups`` whose new output (``columns``:
    name -> column -> type, as the semantic check inferred them, or None where unknown) would be a
    breaking change to its published version, with the bump it needs — all of them at once,
    instead of one failed apply each (issue 10). Structure only: a removed column, a changed
    primary key or event time. Types are not compared here (storage normalises them: an event
    time is stored as TIMESTAMPTZ, a HUGEINT as a DECIMAL); the publish-time check
    (``check_compatible``) still compares the stored types."""
    out = []
    for fg in groups:
        old = metadata.feature_group_version(catalog, fg.name, fg.version)
        new = columns.get(fg.name)
        if old is None or new is None:
            continue
        known = {c: old.columns.get(c, t) for c, t in new.items()}
        problems = breaking_changes(old, fg, known)
        if problems:
            out.append(
                f"{fg.id}: breaking change without a new version: {'; '.join(problems)}. "
                f"Bump feature_groups.{fg.name}.version to {fg.version + 1}; version {fg.version} stays readable."
            )
    return out


def check_compatible(backend: Backend, fg: FeatureGroup, new_columns: dict[str, str]) -> FeatureGroupVersion | None:
    """The stored version of ``fg``, after checking the new output does not break it."""
    old = metadata.feature_group_version(backend.catalog, fg.name, fg.version)
    if old is None:
        return None
    problems = breaking_changes(old, fg, new_columns)
    if problems:
        raise PlanError(
            f"{fg.id}: breaking change without a new version: {'; '.join(problems)}. "
            f"Bump feature_groups.{fg.name}.version to {fg.version + 1}; version {fg.version} stays readable."
        )
    return old
