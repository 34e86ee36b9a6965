"""Offline and online feature-group tables on DuckDB: naming, schema evolution, atomic publish.

Offline: history, one row per (primary key, event time); writing the same key and time again
replaces the row (last write wins). Online: the latest row per primary key. Both are replaced in
one transaction with the metadata row, so readers see the old version or the new, never a mix.
Must not touch training or HTTP.
"""

from __future__ import annotations

from engine.errors import PlanError
from engine.model.objects import FeatureGroup
from engine.sql.quote import qualified, quote_ident
from engine.state import metadata
from engine.state.metadata import FeatureGroupVersion

_WIDENINGS = {
    ("TINYINT", "SMALLINT"), ("TINYINT", "INTEGER"), ("TINYINT", "BIGINT"),
    ("SMALLINT", "INTEGER"), ("SMALLINT", "BIGINT"), ("INTEGER", "BIGINT"),
    ("FLOAT", "DOUBLE"), ("TINYINT", "DOUBLE"), ("SMALLINT", "DOUBLE"), ("INTEGER", "DOUBLE"),
    ("TIMESTAMP", "TIMESTAMP WITH TIME ZONE"), ("DATE", "TIMESTAMP WITH TIME ZONE"),
}


def physical_name(fg_name: str, version: int) -> str:
    """Table name of a feature-group version (same in the offline and online schemas).

    >>> physical_name("weather", 2)
    'weather__v2'
    """
    return f"{fg_name}__v{version}"


def offline_relation(fg_name: str, version: int) -> str:
    return qualified("offline", physical_name(fg_name, version))


def online_relation(fg_name: str, version: int) -> str:
    return qualified("online", physical_name(fg_name, version))


def relation_columns(con, relation_sql: str) -> dict[str, str]:
    """Column name -> DuckDB type of a relation, in order."""
    rows = con.execute(f"DESCRIBE SELECT * FROM {relation_sql}").fetchall()
    return {r[0]: r[1] for r in rows}


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


def check_compatible(con, fg: FeatureGroup, new_columns: dict[str, str]) -> FeatureGroupVersion | None:
    """The stored version of ``fg``, after checking the new output does not break it."""
    old = metadata.feature_group_version(con, fg.name, fg.version)
    if old is None:
        return None
    problems = breaking_changes(old, fg, new_columns)
    if problems:
        raise PlanError(
            f"{fg.id}: breaking change without a new version: {'; '.join(problems)}. "
            f"Bump feature_groups.{fg.name}.version to {fg.version + 1}; version {fg.version} stays readable."
        )
    return old


def publish(
    con,
    fg: FeatureGroup,
    staging: str,
    *,
    run_id: str,
    fingerprint: str,
    fitted: dict,
    fault_point=lambda name: None,
) -> FeatureGroupVersion:
    """Merge the staged rows into the offline table and rebuild the online table, atomically."""
    columns = relation_columns(con, staging)
    old = check_compatible(con, fg, columns)
    offline = offline_relation(fg.name, fg.version)
    online = online_relation(fg.name, fg.version)
    keys = list(fg.primary_key) + ([fg.event_time] if fg.event_time else [])
    con.execute("BEGIN TRANSACTION")
    try:
        if old is None:
            con.execute(f"DROP TABLE IF EXISTS {offline}")
            con.execute(f"CREATE TABLE {offline} AS SELECT * FROM {staging}")
        else:
            existing = relation_columns(con, offline)
            for name, typ in columns.items():
                if name not in existing:
                    con.execute(f"ALTER TABLE {offline} ADD COLUMN {quote_ident(name)} {typ}")
                elif existing[name] != typ:
                    con.execute(f"ALTER TABLE {offline} ALTER COLUMN {quote_ident(name)} TYPE {typ}")
            match = " AND ".join(f"o.{quote_ident(k)} = s.{quote_ident(k)}" for k in keys)
            con.execute(f"DELETE FROM {offline} AS o USING {staging} AS s WHERE {match}")
            con.execute(f"INSERT INTO {offline} BY NAME SELECT * FROM {staging}")
        fault_point("inside_publish")
        if fg.online:
            partition = ", ".join(quote_ident(k) for k in fg.primary_key)
            if fg.event_time:
                latest = f"QUALIFY row_number() OVER (PARTITION BY {partition} ORDER BY {quote_ident(fg.event_time)} DESC) = 1"
            else:
                latest = ""
            con.execute(f"CREATE OR REPLACE TABLE {online} AS SELECT * FROM {offline} {latest}")
        from engine.store.stats import compute_stats

        stats = compute_stats(con, offline)
        row_count = con.execute(f"SELECT count(*) FROM {offline}").fetchone()[0]
        rows_written = con.execute(f"SELECT count(*) FROM {staging}").fetchone()[0]
        version = FeatureGroupVersion(
            name=fg.name,
            version=fg.version,
            offline_table=offline,
            online_table=online if fg.online else None,
            primary_key=fg.primary_key,
            event_time=fg.event_time,
            columns=relation_columns(con, offline),
            fitted=fitted,
            stats=stats,
            row_count=row_count,
            fingerprint=fingerprint,
            run_id=run_id,
            published_at="",
        )
        metadata.upsert_feature_group(con, version, rows_written)
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return version
