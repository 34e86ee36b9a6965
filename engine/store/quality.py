"""Data checks before publication, in one place: keys (F1, F2), dedupe, non-finite values (F5)
and expectations. Owns the policy and the messages; the backend counts and samples.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from engine.backends.base import Backend, ExpectationResult
from engine.errors import DataError
from engine.model import objects as m
from engine.model.objects import Expectation, ExpectationKind
from engine.sql.ops import DedupeLatest, Relation, key_columns


#: Expectations about the table as a whole, not about each row: after an append they are checked
#: over every row (``check_table``), the others over the new rows only.
TABLE_LEVEL = frozenset({ExpectationKind.UNIQUE, ExpectationKind.ROW_COUNT})


def check(backend: Backend, fg: m.FeatureGroup, staged: Relation, *, rows_only: bool = False) -> None:
    """Keys, non-finite values and expectations of ``staged``; DataError names what failed.

    ``dedupe: latest`` and ``non_finite: nullify`` repair ``staged`` in place instead of failing.
    ``rows_only``: ``staged`` holds rows to append to the stored table, so the table-level
    expectations wait for ``check_table`` over the result.
    """
    keys = key_columns(fg.primary_key, fg.event_time)
    report = backend.key_report(staged, keys)
    listing = ", ".join(keys)
    if report.null_rows:
        raise DataError(f"{fg.id}: {report.null_rows} rows with a NULL in the primary key or event time ({listing}); nothing published")
    if report.duplicate_rows:
        if fg.dedupe is m.Dedupe.LATEST:
            backend.create(staged, DedupeLatest(staged, keys, fg.dedupe_by), replace=True)
        else:
            shown = "; ".join(", ".join(f"{k}={v}" for k, v in s.items()) for s in report.samples[:3])
            raise DataError(
                f"{fg.id}: {report.duplicate_rows} rows share a primary key and event time ({listing}), e.g. {shown}; "
                "nothing published (fix the transform, or set dedupe: latest to keep the last row written, or dedupe: {latest_by: COLUMN} the row with the largest COLUMN)"
            )
    _check_non_finite(backend, fg, staged)
    expectations = [e for e in fg.expectations if not (rows_only and e.kind in TABLE_LEVEL)]
    failed = [r for r in backend.expectations(staged, expectations) if not r.passed]
    if failed:
        raise DataError("; ".join(format_failures(str(fg.id), failed)) + "; nothing published")


def check_table(backend: Backend, fg: m.FeatureGroup, table: Relation) -> None:
    """The table-level expectations (unique, row_count) over every row of ``table``, the stored
    rows plus an append not yet visible to readers; DataError (the caller's transaction then
    publishes nothing)."""
    expectations = [e for e in fg.expectations if e.kind in TABLE_LEVEL]
    if not expectations:
        return
    failed = [r for r in backend.expectations(table, expectations) if not r.passed]
    if failed:
        raise DataError("; ".join(format_failures(str(fg.id), failed)) + "; nothing published")


def _check_non_finite(backend: Backend, fg: m.FeatureGroup, staged: Relation) -> None:
    """F5: NaN and ±inf in float columns are refused unless the group says otherwise."""
    if fg.non_finite is m.NonFinite.ALLOW:
        return
    offending = backend.non_finite_counts(staged)
    if not offending:
        return
    if fg.non_finite is m.NonFinite.NULLIFY:
        backend.nullify_non_finite(staged, list(offending))
        return
    listing = ", ".join(f"{c} ({n})" for c, n in offending.items())
    raise DataError(
        f"{fg.id}: NaN or infinite values in {listing}; nothing published "
        "(set non_finite: nullify to store them as NULL, or non_finite: allow to keep them)"
    )


def _render_value(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, str) and value not in ("NaN", "Infinity", "-Infinity"):
        return repr(value)
    return str(value)


def format_failures(feature_group_id: str, results: Sequence[ExpectationResult]) -> list[str]:
    """One user-facing line per failed expectation (passed ones are left out).

    >>> e = Expectation(ExpectationKind.NOT_NULL, column="origin")
    >>> format_failures("feature_group:w@1", [ExpectationResult(e, 2, 10, ({"origin": None},))])
    ["feature_group:w@1 expectation 'origin not_null' failed: 2 of 10 rows (samples: origin=NULL)"]
    """
    lines = []
    for r in results:
        if r.passed:
            continue
        head = f"{feature_group_id} expectation '{r.expectation.describe()}' failed"
        if r.expectation.kind is ExpectationKind.ROW_COUNT:
            lines.append(f"{head}: the table has {r.total_rows} rows")
            continue
        text = f"{head}: {r.failed_rows} of {r.total_rows} rows"
        if r.samples:
            shown = ", ".join(f"{k}={_render_value(v)}" for s in r.samples for k, v in s.items())
            text += f" (samples: {shown})"
        lines.append(text)
    return lines


