"""`engine validate`: semantic errors (E1–E5), hostile SQL at the gate (Q1–Q7), paths and code
references (P1–P4, P6), purity (J1). Every case is a golden file of the exact user-facing text."""

from __future__ import annotations

import json
import os
import textwrap
from pathlib import Path

import pytest

from tests.conftest import ORDERS_CSV, TINY_SPEC, USERS_CSV, USERS_PY, check_golden, run_engine, write

HEADER = """
spec_version: 1
project: t
"""
BASE = HEADER + """sources:
  orders_raw: {format: csv, path: data/orders.csv, columns: {order_id: BIGINT, user_id: BIGINT, amount: DOUBLE, ordered_at: TIMESTAMP, region: VARCHAR}}
  users_raw: {format: csv, path: data/users.csv, columns: {user_id: VARCHAR, name: VARCHAR}}
"""


def _project(tmp_path: Path, body: str, extra: dict[str, str] | None = None) -> Path:
    root = tmp_path / "p"
    base = HEADER if textwrap.dedent(body).lstrip().startswith("sources:") else BASE
    write(root, "specs/spec.yaml", base + textwrap.dedent(body))
    write(root, "data/orders.csv", "order_id,user_id,amount,ordered_at,region\n1,10,5.0,2024-01-01 09:00:00,eu\n")
    write(root, "data/users.csv", "user_id,name\n10,ada\n")
    for rel, text in (extra or {}).items():
        write(root, rel, text)
    return root


def _validate(root: Path) -> tuple[int, str]:
    rc, out, err = run_engine("validate", str(root), cwd=root)
    assert "Traceback" not in err
    return rc, err


CASES = {
    # E1 dangling references
    "e1_unknown_input": """
        feature_groups:
          spend:
            primary_key: [user_id]
            event_time: ordered_at
            from: orderz
            aggregations: [{column: amount, function: sum, window: 1d}]
        """,
    "e1_unknown_feature_group_in_view": """
        feature_groups:
          orders: {primary_key: [order_id], event_time: ordered_at, sql: SELECT * FROM orders_raw}
        feature_views:
          v: {spine: orderz, label: amount}
        models:
          m: {feature_view: vv, estimator: sklearn.linear_model.LogisticRegression}
        """,
    # E2 cycle through SQL inputs
    "e2_cycle": """
        feature_groups:
          a: {primary_key: [order_id], sql: SELECT * FROM b}
          b: {primary_key: [order_id], sql: SELECT * FROM a}
        """,
    # E3 type mismatches
    "e3_types": """
        feature_groups:
          orders: {primary_key: [order_id], event_time: region, sql: SELECT * FROM orders_raw}
          users: {primary_key: [user_id], sql: SELECT * FROM users_raw}
        feature_views:
          v:
            spine: orders
            label: amount
            join: [{feature_group: users, on: [user_id]}]
        """,
    # E4 columns the SQL or the declaration lacks
    "e4_columns": """
        feature_groups:
          orders:
            primary_key: [order_idd]
            event_time: ordered_at
            sql: SELECT order_id, amountt, ordered_at FROM orders_raw
          regions:
            primary_key: [region]
            sql: SELECT region, count(*) AS n FROM orders_raw GROUP BY region
            expectations: [{column: nn, not_null: true}]
        """,
    # E5 label used as a feature, feature listed twice, prefix clash
    "e5_view_columns": """
        feature_groups:
          orders: {primary_key: [order_id], event_time: ordered_at, sql: SELECT * FROM orders_raw}
          more:
            primary_key: [order_id]
            event_time: ordered_at
            sql: SELECT order_id, ordered_at, amount FROM orders_raw
        feature_views:
          v:
            spine: orders
            label: amount
            features: [amount, region]
            join: [{feature_group: more, on: [order_id]}, {feature_group: more, on: [order_id]}]
        """,
    # Feature view selecting a missing column; a time split on a spine without event time;
    # an unknown estimator and a misspelt parameter (issue 3, bad input)
    "fv_model_errors": """
        feature_groups:
          orders: {primary_key: [order_id], sql: SELECT * FROM orders_raw}
          users:
            primary_key: [user_id]
            sql: SELECT user_id, name FROM users_raw
        feature_views:
          v:
            spine: orders
            label: amount
            join: [{feature_group: users, left_on: [region], right_on: [user_id], select: [nam]}]
        models:
          a:
            feature_view: v
            estimator: xgboost.XGBClassifier
            params: {n_estimatorz: 10}
            split: {by: time, test_from: "2024-01-01"}
          b:
            feature_view: v
            estimator: sklearn.linear_model.LogisticRegresion
        """,
    # Inference jobs: an online request missing view inputs, an output outside the project, an
    # empty range, a stream source that does not feed the spine
    "inference_errors": """
        feature_groups:
          orders: {primary_key: [order_id], event_time: ordered_at, sql: SELECT * FROM orders_raw}
          users:
            primary_key: [user_id]
            sql: SELECT user_id, name FROM users_raw
        feature_views:
          v:
            spine: orders
            label: amount
            features: [region]
            join: [{feature_group: users, on: [user_id]}]
        models:
          m: {feature_view: v, estimator: sklearn.linear_model.Ridge, split: {by: time, test_from: "2024-01-01"}}
        inference:
          api: {mode: online, model: m, keys: [user_id]}
          scores: {mode: batch, model: m, range: ["2024-02-01", "2024-01-01"], output: {table: s, path: ../out.csv}}
          live: {mode: stream, model: m, source: users_raw}
        """,
    # P1 paths escaping the project
    "p1_paths": """
        sources:
          a: {format: csv, path: ../../etc/passwd}
          b: {format: csv, path: /etc/passwd}
          c: {format: csv, path: "~/.ssh/id_rsa"}
          d: {format: csv, path: data/../../x.csv}
        """,
    # P3 remote sources
    "p3_urls": """
        sources:
          e: {format: csv, path: "file:///etc/passwd"}
          g: {format: csv, path: "http://169.254.169.254/latest/meta-data"}
          f: {format: parquet, path: "s3://bucket/x.parquet"}
        """,
    # P6 code references
    "p6_code_refs": """
        feature_groups:
          a: {primary_key: [user_id], python: "os:system", inputs: [users_raw]}
          b: {primary_key: [user_id], python: "nosuchpkg.mod:f", inputs: [users_raw]}
        functions:
          f: {python: "subprocess:run", inputs: [x], returns: int64}
        """,
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_semantic_errors_are_positioned_and_golden(tmp_path: Path, name: str):
    root = _project(tmp_path, CASES[name])
    rc, err = _validate(root)
    assert rc == 3, err
    check_golden(f"validate/{name}.txt", err)


HOSTILE_SQL = {
    "q1_read_csv": "SELECT * FROM read_csv('/etc/passwd')",
    "q1_read_text": "SELECT * FROM read_text('/etc/passwd')",
    "q1_glob": "SELECT * FROM glob('/*')",
    "q2_replacement_scan": "SELECT * FROM '../secret.csv'",
    "q3_copy": "COPY (SELECT 1) TO 'data/orders.csv'",
    "q4_attach": "ATTACH 'other.duckdb'",
    "q4_install": "INSTALL httpfs",
    "q4_set": "SET enable_external_access=true",
    "q5_url": "SELECT * FROM 'https://example.invalid/x.parquet'",
    "q6_two_statements": "SELECT 1 AS order_id; DROP TABLE _engine.steps",
    "q7_undeclared_table": "SELECT * FROM runs",
    "q7_query_function": "SELECT * FROM query('SELECT 1')",
}


@pytest.mark.parametrize("name", sorted(HOSTILE_SQL))
def test_hostile_sql_is_refused_at_validate(tmp_path: Path, name: str):
    sql = HOSTILE_SQL[name]
    root = _project(tmp_path, f"""
        feature_groups:
          x:
            primary_key: [order_id]
            sql: {json.dumps(sql)}
        """)
    before = (root / "data/orders.csv").read_bytes()
    rc, err = _validate(root)
    assert rc == 3, err
    check_golden(f"validate/{name}.txt", err)
    assert (root / "data/orders.csv").read_bytes() == before
    assert not (root / ".engine").exists()


def test_validate_is_pure(tmp_path: Path):
    """J1: no user import (marker file), no database, no workspace; validate on a valid project."""
    root = tmp_path / "shop"
    write(root, "specs/shop.yaml", TINY_SPEC)
    write(root, "data/orders.csv", ORDERS_CSV)
    write(root, "data/users.csv", USERS_CSV)
    write(root, "shop_features/__init__.py", f"open({str(tmp_path / 'marker')!r}, 'w').close()\n")
    write(root, "shop_features/users.py", USERS_PY)
    rc, out, err = run_engine("validate", str(root))
    assert rc == 0, err
    assert out.strip() == "1 spec file valid: project 'shop' (2 sources, 3 feature groups)."
    assert not (tmp_path / "marker").exists()
    assert not (root / ".engine").exists()


def test_validate_does_not_import_heavy_libraries(tiny_project: Path):
    code = (
        "import sys; from engine import api; api.validate(sys.argv[1]);"
        "heavy = [m for m in ('pandas', 'sklearn', 'xgboost', 'duckdb') if m in sys.modules];"
        "print(','.join(heavy))"
    )
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", code, str(tiny_project)], capture_output=True, text=True, check=True).stdout
    assert out.strip() == ""


def test_validate_json_and_github_formats(tmp_path: Path):
    root = _project(tmp_path, CASES["e4_columns"])
    rc, out, _ = run_engine("validate", str(root), "--format", "json", cwd=root)
    assert rc == 3
    doc = json.loads(out)
    assert doc["valid"] is False
    assert {"file", "line", "column", "path", "message"} <= set(doc["errors"][0])
    assert [e["line"] for e in doc["errors"]] == sorted(e["line"] for e in doc["errors"])
    rc, out, _ = run_engine("validate", str(root), "--format", "github", cwd=root)
    assert rc == 3
    assert out.startswith("::error file=specs/spec.yaml,line=")


def test_symlink_to_outside_file_is_refused(tmp_path: Path):
    """P2."""
    root = _project(tmp_path, """
        sources:
          link: {format: csv, path: data/link.csv}
        """)
    secret = tmp_path / "secret.csv"
    secret.write_text("a\n1\n")
    os.symlink(secret, root / "data/link.csv")
    rc, err = _validate(root)
    assert rc == 3
    assert "data/link.csv' is a link to a file outside the project" in err


def test_remote_references_never_open_a_socket(tmp_path: Path, monkeypatch):
    """P3/Q5: URL sources and URL tables are refused without any network attempt."""
    import socket

    from engine import api
    from engine.errors import SpecError

    calls = []

    class NoSocket(socket.socket):
        def __init__(self, *args, **kwargs):
            calls.append(args)
            raise AssertionError("a socket was opened")

    monkeypatch.setattr(socket, "socket", NoSocket)
    root = _project(tmp_path, """
        sources:
          remote: {format: parquet, path: "https://example.invalid/x.parquet"}
        """)
    with pytest.raises(SpecError, match="remote sources are not supported"):
        api.validate(root)
    root2 = _project(tmp_path / "q5", """
        feature_groups:
          x:
            primary_key: [order_id]
            sql: SELECT * FROM 'https://example.invalid/x.parquet'
        """)
    with pytest.raises(SpecError, match="reading files from SQL is not allowed"):
        api.validate(root2)
    assert calls == []
