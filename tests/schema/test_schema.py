"""The spec JSON Schema and its validator: reference specs pass, every mistake is one short, positioned problem.

Case ids (S1-S4, P3, P4, P6, Y6, V14) come from /work/shared/RELIABILITY.md.
"""

from __future__ import annotations

import copy
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from engine.errors import Problem
from engine.spec import schema as schema_module
from engine.spec.schema import load_schema, validate_document
from engine.spec.sourcemap import SourceMap

from .conftest import load, render

REPO = Path(__file__).resolve().parents[2]
SPEC_FILES = sorted((REPO / "specs").glob("*.yaml"))

VALID = """
spec_version: 1
project: shop
sources:
  orders_raw: {format: csv, path: data/orders.csv}
feature_groups:
  orders:
    primary_key: [order_id]
    event_time: ordered_at
    sql: SELECT order_id, user_id, amount, ordered_at FROM orders_raw
    expectations:
      - {column: amount, between: [0, 1000]}
  spend:
    primary_key: [user_id]
    event_time: ordered_at
    from: orders
    aggregations:
      - {column: amount, function: sum, window: 2d}
feature_views:
  orders_view:
    spine: orders
    label: amount
    join:
      - {feature_group: spend, on: [user_id], ttl: 7d}
models:
  spend_model:
    feature_view: orders_view
    estimator: sklearn.linear_model.Ridge
    split: {by: random, test_size: 0.2, seed: 1}
    metrics: [rmse]
inference:
  api: {mode: online, model: spend_model@latest, keys: [user_id]}
"""


def problems_of(text: str) -> list[Problem]:
    data, smap = load(text)
    return validate_document(data, smap)


def messages(text: str) -> list[str]:
    return [p.message for p in problems_of(text)]


def with_group(body: str, name: str = "weather") -> str:
    """A spec whose only feature group is ``name`` with the given (indented) body."""
    return f"spec_version: 1\nfeature_groups:\n  {name}:\n" + "".join(f"    {line}\n" for line in body.strip().splitlines())


# --- the schema itself ---------------------------------------------------------------------------


def _walk(node: object, path: tuple = ()):
    if isinstance(node, dict):
        yield path, node
        for key, value in node.items():
            yield from _walk(value, path + (key,))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _walk(value, path + (i,))


def test_schema_is_valid_draft_2020_12() -> None:
    schema = load_schema()
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"] == "https://engine.dev/schemas/engine.schema.json"


def test_every_property_and_definition_has_a_description() -> None:
    schema = load_schema()
    missing = [name for name, d in schema["$defs"].items() if not d.get("description")]
    for path, node in _walk(schema):
        if path and path[-1] == "properties" and all(isinstance(v, dict) for v in node.values()):
            missing += [".".join(map(str, path + (k,))) for k, v in node.items() if not v.get("description")]
    assert missing == []


def test_every_object_is_closed_and_every_string_list_and_map_is_capped() -> None:
    """R2 / S3: additionalProperties false on every object with properties; maxLength, maxItems, maxProperties."""
    bad = []
    for path, node in _walk(load_schema()):
        types = node.get("type")
        types = [types] if isinstance(types, str) else (types or [])
        where = ".".join(map(str, path))
        if "properties" in node and node.get("type") == "object" and node.get("additionalProperties") is not False:
            bad.append(f"{where}: open object")
        if "string" in types and "maxLength" not in node:
            bad.append(f"{where}: string without maxLength")
        if "array" in types and "maxItems" not in node:
            bad.append(f"{where}: array without maxItems")
        if "object" in types and "propertyNames" in node and "maxProperties" not in node:
            bad.append(f"{where}: map without maxProperties")
    assert bad == []


def test_schema_is_loaded_from_package_resources_and_cached() -> None:
    assert load_schema() is load_schema()
    assert (REPO / "engine" / "schemas" / "engine.schema.json").resolve() == (REPO / "schemas" / "engine.schema.json").resolve()


# --- valid specs ---------------------------------------------------------------------------------


def test_reference_specs_cover_every_concept() -> None:
    names = {p.stem for p in SPEC_FILES}
    assert names >= {
        "sources", "feature_group_sql", "feature_group_python", "feature_group_aggregations", "feature_group_binning",
        "feature_group_pca", "expectations", "functions", "feature_view", "model", "inference",
    }


@pytest.mark.parametrize("path", SPEC_FILES, ids=lambda p: p.name)
def test_reference_spec_is_valid(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    assert text.startswith("# yaml-language-server: $schema=../schemas/engine.schema.json\n")
    data, smap = load(text, f"specs/{path.name}")
    assert render(validate_document(data, smap)) == ""


def test_valid_snippet_has_no_problem() -> None:
    assert problems_of(VALID) == []


# --- S1, S2: typos and several errors ------------------------------------------------------------


def test_S1_unknown_key_is_positioned_at_the_key_with_did_you_mean(golden) -> None:
    problems = problems_of(with_group("primary_keys: [origin]\nsql: SELECT 1"))
    typo = [p for p in problems if p.message == "unknown key 'primary_keys'"]
    assert len(typo) == 1
    assert (typo[0].line, typo[0].column) == (4, 5)
    assert typo[0].hint == "did you mean 'primary_key'?"
    golden("S1_typo", render(problems))


def test_S2_three_errors_give_three_problems_sorted_by_line(golden) -> None:
    text = """
    spec_version: 1
    sources:
      raw: {format: tabel, path: data/x.csv}
    feature_groups:
      weather:
        primary_key: [origin]
        online: yes
        sql: SELECT 1
    models:
      m: {feature_view: v, estimator: sklearn.linear_model.Ridge, metrics: [auc]}
    """
    problems = problems_of(text)
    assert [p.line for p in problems] == [3, 7, 10]
    assert [p.path for p in problems] == [
        ("sources", "raw", "format"),
        ("feature_groups", "weather", "online"),
        ("models", "m", "metrics", 0),
    ]
    golden("S2_three_errors", render(problems))


# --- S3: oversize values ------------------------------------------------------------------------


def test_S3_oversize_values_give_short_messages(golden) -> None:
    data, smap = load(VALID)
    data["feature_views"]["orders_view"]["features"] = [f"c{i}" for i in range(10_000)]
    data["feature_groups"]["orders"]["sql"] = "S" * (1 << 20)
    data["feature_groups"]["g" * 200] = copy.deepcopy(data["feature_groups"]["orders"])
    started = time.perf_counter()
    problems = validate_document(data, smap)
    assert time.perf_counter() - started < 5
    text = render(problems)
    assert "too many items (10000 > 1000)" in text
    assert "string too long (1048576 > 100000 characters)" in text
    assert "name too long (200 > 63 characters)" in text
    assert all(len(p.message) < 120 and (p.hint is None or len(p.hint) < 120) for p in problems)
    golden("S3_oversize", text)


def test_S3_huge_values_are_never_echoed_back() -> None:
    huge = "x" * 100_000
    data, smap = load(VALID)
    data["sources"]["orders_raw"]["format"] = huge
    data["models"]["spend_model"]["estimator"] = huge
    data["feature_groups"]["orders"]["event_time"] = huge
    problems = validate_document(data, smap)
    assert len(problems) >= 3
    assert all(len(p.render()) < 300 for p in problems)


# --- S4: identifiers --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ('x"; DROP TABLE y; --', "invalid name"),
        ("Orders", "invalid name 'Orders'"),
        ("_engine_x", "name '_engine_x' uses a reserved prefix"),
        ("duckdb_settings", "uses a reserved prefix"),
        ("main", "name 'main' uses a reserved prefix"),
        ("w\u0435ather", "invalid name 'w\u0435ather'"),  # Cyrillic e
        ("9lives", "invalid name"),
    ],
)
def test_S4_invalid_object_names_are_rejected_at_the_key(name: str, expected: str) -> None:
    data, smap = load(VALID)
    data["feature_groups"][name] = data["feature_groups"].pop("orders")
    problems = [p for p in validate_document(data, smap) if p.path == ("feature_groups", name)]
    assert len(problems) == 1, render(problems)
    assert expected in problems[0].message


def test_S4_lookalike_and_case_hints(golden) -> None:
    text = with_group("primary_key: [origin]\nsql: SELECT 1", name="w\u0435ather") + with_group(
        "primary_key: [origin]\nsql: SELECT 1", name="Orders"
    ).split("feature_groups:\n", 1)[1]
    problems = problems_of(text)
    assert [p.hint for p in problems] == ["it contains the non-ASCII character '\u0435' (U+0435)", "did you mean 'orders'?"]
    golden("S4_identifiers", render(problems))


@pytest.mark.parametrize("column", ['x"; DROP TABLE y; --', "a b", "1st", "c" * 64, "col\u00e9"])
def test_S4_invalid_column_names_are_rejected(column: str) -> None:
    data, smap = load(VALID)
    data["feature_groups"]["orders"]["primary_key"] = [column]
    data["feature_views"]["orders_view"]["join"][0]["on"] = [column]
    problems = validate_document(data, smap)
    assert {p.path for p in problems} == {
        ("feature_groups", "orders", "primary_key", 0),
        ("feature_views", "orders_view", "join", 0, "on", 0),
    }
    assert all("column name" in p.message for p in problems)


def test_mixed_case_column_names_are_allowed() -> None:
    data, smap = load(VALID)
    data["feature_groups"]["orders"]["primary_key"] = ["OrderID"]
    assert validate_document(data, smap) == []


# --- P3, P4, P6: paths, artifacts and code references -------------------------------------------


@pytest.mark.parametrize("key", ["path", "artifact", "artifact_path"])
def test_P4_artifact_paths_in_a_model_are_refused(key: str) -> None:
    data, smap = load(VALID)
    data["models"]["spend_model"][key] = "../x.pkl"
    problems = validate_document(data, smap)
    assert [(p.path, p.message) for p in problems] == [
        (("models", "spend_model", key), f"artifact paths are engine-managed; remove '{key}'")
    ]


@pytest.mark.parametrize("url", ["http://169.254.169.254/latest/meta-data", "s3://bucket/x.csv", "file:///etc/passwd", "http:///#/../etc/"])
def test_P3_url_source_paths_are_refused(url: str) -> None:
    data, smap = load(VALID)
    data["sources"]["orders_raw"]["path"] = url
    problems = validate_document(data, smap)
    assert [p.message.split(":")[0] for p in problems] == ["remote sources are not supported"]


@pytest.mark.parametrize(
    ("ref", "ok"),
    [("os:system", True), ("flight_features.time:dep_hour", True), ("../evil.py:f", False),
     ("transforms/x.py:__import__", False), ("pkg.mod", False), ("pkg.mod:f.g", False), ("pkg..mod:f", False)],
)
def test_P6_python_references_are_syntactic(ref: str, ok: bool) -> None:
    """The schema checks the shape only; banning stdlib modules such as os is the semantic layer's job."""
    problems = problems_of(with_group(f"primary_key: [k]\npython: '{ref}'\ninputs: [raw]"))
    if ok:
        assert problems == []
    else:
        assert [p.message for p in problems] == [f"expected 'package.module:function', got '{ref}'"]


# --- feature groups, expectations, splits, inference ------------------------------------------------


def test_feature_group_needs_one_computation(golden) -> None:
    text = """
    spec_version: 1
    feature_groups:
      none_at_all:
        primary_key: [k]
      two:
        primary_key: [k]
        sql: SELECT 1
        python: pkg.mod:fn
        inputs: [raw]
      three:
        primary_key: [k]
        sql: SELECT 1
        sql_file: sql/x.sql
        from: raw
        binning: [{column: a, quantiles: 4}]
      builtin_missing:
        primary_key: [k]
        from: raw
      inputs_alone:
        primary_key: [k]
        python: pkg.mod:fn
    """
    msgs = messages(text)
    assert "a feature group needs exactly one of sql, sql_file, python or from" in msgs
    assert "a feature group needs exactly one of sql, sql_file, python or from; found both 'sql' and 'python'" in msgs
    assert "a feature group needs exactly one of sql, sql_file, python or from; found 'sql', 'sql_file' and 'from'" in msgs
    assert "'from' needs exactly one of aggregations, binning or pca" in msgs
    assert "'python' needs 'inputs'" in msgs
    golden("feature_group_computation", render(problems_of(text)))


def test_expectations_need_exactly_one_check(golden) -> None:
    text = with_group(
        """
primary_key: [k]
sql: SELECT 1
expectations:
  - {column: a}
  - {column: a, not_null: true, unique: true}
  - {column: a, between: [0, 1, 2]}
  - {column: a, not_null: false}
  - {row_count: {min: 1}, column: a}
  - {not_null: true}
  - {column: a, between: [null, 5]}
"""
    )
    problems = problems_of(text)
    assert [(p.path[-1] if isinstance(p.path[-1], str) else p.path[-1], p.message) for p in problems] == [
        (0, "an expectation needs exactly one of not_null, unique, between, in_set, regex or row_count"),
        (1, "an expectation needs exactly one of not_null, unique, between, in_set, regex or row_count; found both 'not_null' and 'unique'"),
        ("between", "too many items (3 > 2)"),
        ("not_null", "must be true, got false"),
        ("column", "'column' cannot be used with 'row_count'"),
        (5, "missing required key 'column'"),
    ]
    golden("expectations", render(problems))


def test_split_and_inference_mode_rules(golden) -> None:
    data, smap = load(
        VALID.replace("{by: random, test_size: 0.2, seed: 1}", "{by: time, test_size: 0.2}").replace(
            "{mode: online, model: spend_model@latest, keys: [user_id]}",
            "{mode: online, model: spend_model@latest, range: ['2024-01-01', '2024-02-30']}",
        )
    )
    problems = validate_document(data, smap)
    msgs = [p.message for p in problems]
    assert "missing required key 'test_from'" in msgs
    assert "'test_size' cannot be used with by: time" in msgs
    assert "missing required key 'keys'" in msgs
    assert "'range' cannot be used with mode: online" in msgs
    assert "invalid date or timestamp '2024-02-30'" in msgs  # V14: format is asserted
    golden("split_and_inference", render(problems))


@pytest.mark.parametrize(
    ("ref", "ok"),
    [("m", True), ("m@3", True), ("m@latest", True), ("m@best:roc_auc", True), ("m@production", True),
     ("M", False), ("m@", False), ("m@best:", False), ("m@@1", False)],
)
def test_model_references(ref: str, ok: bool) -> None:
    data, smap = load(VALID)
    data["inference"]["api"]["model"] = ref
    assert (validate_document(data, smap) == []) is ok


@pytest.mark.parametrize(
    ("label", "where", "message"),
    [
        ("Bad Col", ("label",), "invalid column name 'Bad Col'"),
        (["ok", "bad col"], ("label", 1), "invalid column name 'bad col'"),
        ([], ("label",), "too few items (0 < 1)"),
        ({"a": 1}, ("label",), "expected string or a list, got a mapping"),
    ],
)
def test_one_of_errors_are_explained_by_the_branch_that_fits(label: object, where: tuple, message: str) -> None:
    data, smap = load(VALID)
    data["feature_views"]["orders_view"]["label"] = label
    problems = validate_document(data, smap)
    assert [p.path for p in problems] == [("feature_views", "orders_view") + where]
    assert problems[0].message.startswith(message)
    assert "is not valid under any of the given schemas" not in problems[0].message


def test_bad_enum_suggests_the_closest_value() -> None:
    problems = problems_of("spec_version: 1\nsources:\n  raw: {format: tabel, path: x.csv}\n")
    assert [(p.message, p.hint) for p in problems] == [("'tabel' is not one of csv, parquet, jsonl", None)]
    problems = problems_of("spec_version: 1\nsources:\n  raw: {format: parqet, path: x.parquet}\n")
    assert [(p.message, p.hint) for p in problems] == [("'parqet' is not one of csv, parquet, jsonl", "did you mean 'parquet'?")]


# --- Y6: type errors in YAML words --------------------------------------------------------------


def test_Y6_type_errors_speak_yaml(golden) -> None:
    text = """
    spec_version: 1
    sources: []
    feature_groups:
      weather:
        version: 1.1
        primary_key: origin
        online: yes
        sql: SELECT 1
    feature_views:
      v: {spine: weather, filter: false, label: 5}
    models:
      m: {feature_view: v, estimator: sklearn.linear_model.Ridge, split: {by: random, test_size: "0.2"}}
    """
    problems = problems_of(text)
    assert [p.message for p in problems] == [
        "expected a mapping, got a list",
        "expected integer, got number 1.1",
        "expected a list, got string 'origin'",
        "expected boolean, got string 'yes'",
        "expected string, got boolean false — quote the value if you meant the text",
        "expected string or a list, got integer 5 — quote the value if you meant the text",
        "expected number, got string '0.2'",
    ]
    assert problems[3].hint == "use true or false"
    assert problems[6].hint == "remove the quotes"
    golden("Y6_types", render(problems))


# --- robustness ------------------------------------------------------------------------------------


@pytest.mark.parametrize("document", [None, [], "text", 3, {"spec_version": 2}, {1: 2}, {"sources": {"a": None}}])
def test_odd_documents_give_problems_not_exceptions(document: object) -> None:
    problems = validate_document(document, SourceMap())
    assert problems and all(isinstance(p, Problem) for p in problems)


def test_V14_nan_and_infinity_are_rejected() -> None:
    data, smap = load(VALID)
    data["models"]["spend_model"]["split"]["test_size"] = float("nan")
    data["feature_groups"]["orders"]["expectations"][0]["between"] = [0, float("inf")]
    problems = validate_document(data, smap)
    assert {p.path for p in problems} == {
        ("models", "spend_model", "split", "test_size"),
        ("feature_groups", "orders", "expectations", 0, "between", 1),
    }
    assert all("numbers must be finite" in p.message for p in problems)


def test_deep_and_cyclic_documents_do_not_raise() -> None:
    deep: list = []
    node = deep
    for _ in range(10_000):
        node.append([])
        node = node[0]
    data, smap = load(VALID)
    data["models"]["spend_model"]["params"] = {"deep": deep}
    assert "nesting too deep" in [p.message for p in validate_document(data, smap)]
    cyclic: dict = {}
    cyclic["self"] = cyclic
    data, smap = load(VALID)
    data["junk"] = cyclic
    data["models"]["spend_model"]["params"] = {"n": [cyclic]}
    assert sorted(p.message for p in validate_document(data, smap)) == [
        "expected string, number, boolean or null, got a mapping",
        "unknown key 'junk'",
    ]


def test_recursion_error_becomes_one_problem(monkeypatch: pytest.MonkeyPatch) -> None:
    class Exploding:
        def iter_errors(self, _data):
            raise RecursionError

    monkeypatch.setattr(schema_module, "_validator", lambda *formats: Exploding())
    assert [p.message for p in validate_document({}, SourceMap())] == ["nesting too deep"]


def test_problems_are_deduplicated() -> None:
    problems = problems_of(with_group("primary_key: [a, a]\nsql: SELECT 1"))
    assert [p.message for p in problems] == ["duplicate item 'a'"]


def test_validating_a_200_line_spec_takes_under_50_ms() -> None:
    groups = "".join(
        f"  g{i}:\n    primary_key: [k]\n    event_time: t\n    sql: SELECT k, t FROM raw\n"
        f"    expectations:\n      - {{column: k, not_null: true}}\n"
        for i in range(34)
    )
    data, smap = load(f"spec_version: 1\nsources:\n  raw: {{format: csv, path: r.csv}}\nfeature_groups:\n{groups}")
    validate_document(data, smap)  # warm the cache
    best = min(_timed(lambda: validate_document(data, smap)) for _ in range(5))
    assert best < 0.05


def _timed(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def test_validation_imports_no_heavy_library() -> None:
    code = (
        "import sys, engine.spec.schema as s; from engine.spec.sourcemap import SourceMap;"
        "s.validate_document({'spec_version': 1}, SourceMap());"
        "print(sorted(m for m in ('pandas', 'duckdb', 'sklearn', 'xgboost') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# --- S5-style fuzz: mutations of a valid spec ------------------------------------------------------

_BASE, _BASE_MAP = load(VALID)


def _paths(node: object, path: tuple = ()) -> list[tuple]:
    out = [path]
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, path + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _paths(v, path + (i,))
    return out


_ALL_PATHS = _paths(_BASE)
_VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), st.text(max_size=80),
    st.lists(st.text(max_size=5), max_size=3), st.dictionaries(st.text(max_size=8), st.integers(), max_size=3),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    mutations=st.lists(
        st.tuples(st.sampled_from(["drop", "insert", "replace"]), st.sampled_from(_ALL_PATHS), st.text(max_size=12), _VALUES),
        min_size=1,
        max_size=4,
    )
)
def test_S5_mutations_never_raise(mutations) -> None:
    data = copy.deepcopy(_BASE)
    for action, path, key, value in mutations:
        parent: object = data
        try:
            for part in path[:-1]:
                parent = parent[part]  # type: ignore[index]
        except (KeyError, IndexError, TypeError):
            continue
        last = path[-1] if path else None
        if action == "drop" and isinstance(parent, dict) and last in parent:
            del parent[last]
        elif action == "insert" and isinstance(parent, dict):
            parent[key] = value
        elif action == "replace" and last is not None:
            try:
                parent[last] = value  # type: ignore[index]
            except (IndexError, TypeError):
                pass
    problems = validate_document(data, _BASE_MAP)
    assert all(isinstance(p, Problem) for p in problems)
    assert all(len(p.message) < 400 for p in problems)
