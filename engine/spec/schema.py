"""JSON Schema validation of a loaded spec, reported as positioned, friendly problems.

Owns the compiled validator and the translation of raw jsonschema errors into user messages.
Must not touch YAML parsing, the meaning of keys (references, paths, columns) or DuckDB.
"""

from __future__ import annotations

import json
import math
import re
from functools import lru_cache
from importlib.resources import files
from typing import Any, Iterator

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, best_match
from referencing import Registry, Resource

from engine.errors import KeyPath, Problem, did_you_mean, format_path
from engine.spec.sourcemap import SourceMap

_MAX_ECHO = 60
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
_RESERVED = re.compile(r"^(_engine|duckdb_|pg_|sqlite_|information_schema|main$|temp$|system$)")
_RESERVED_LIST = "_engine, duckdb_, pg_, sqlite_, information_schema, main, temp, system"
# Keys users try in order to point a model at a file: the registry owns artifacts (P4).
_ARTIFACT_KEYS = frozenset({"path", "artifact", "artifact_path", "artifact_uri", "model_path", "file", "uri"})
_BOOLEAN_LOOKALIKES = frozenset({"yes", "no", "on", "off", "y", "n", "true", "false", "True", "False", "TRUE", "FALSE"})

# oneOf choices whose failure is explained by counting the keys present: def -> (keys, subject, shown).
_CHOICES: dict[str, tuple[tuple[str, ...], str, str]] = {
    "feature_group": (("sql", "sql_file", "python", "from"), "a feature group", "sql, sql_file, python or from"),
    "feature_group_builtin": (("aggregations", "binning", "pca"), "'from'", "aggregations, binning or pca"),
    "expectation": (
        ("not_null", "unique", "between", "in_set", "regex", "row_count"),
        "an expectation",
        "not_null, unique, between, in_set, regex or row_count",
    ),
    "bin": (("edges", "quantiles"), "a bin", "edges or quantiles"),
    "function": (("python", "binning", "pca"), "a function", "python, binning or pca"),
    "join": (("on", "left_on"), "a join", "on or left_on + right_on"),
}

# Messages for patterned strings, keyed by the $defs entry that holds the pattern.
_PATTERN_MESSAGES: dict[str, tuple[str, str | None]] = {
    "python_ref": ("expected 'package.module:function', got {value}", "e.g. flight_features.time:dep_hour"),
    "duration": ("invalid duration {value}", "use <number><unit> with unit s, m, h, d or w, e.g. 30m, 3h, 7d"),
    "feature_group_ref": ("invalid reference {value}", "use 'name' or 'name@N'"),
    "model_ref": ("invalid model reference {value}", "use name, name@3, name@latest, name@best:metric or name@alias"),
    "duckdb_type": ("unknown column type {value}", "use a DuckDB type such as BIGINT, DOUBLE, VARCHAR, TIMESTAMP or DECIMAL(10,2)"),
    "timestamp": ("invalid date or timestamp {value}", "use YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ"),
}


def _format_checker():
    """Date formats checked by our own code: jsonschema's 'date-time' checker silently passes
    everything unless the optional rfc3339-validator package happens to be installed (V14)."""
    from datetime import date, datetime

    from jsonschema import FormatChecker

    checker = FormatChecker(formats=())

    @checker.checks("date", raises=ValueError)
    def _date(value: object) -> bool:
        if not isinstance(value, str):
            return True
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
            return False
        date.fromisoformat(value)
        return True

    @checker.checks("date-time", raises=ValueError)
    def _date_time(value: object) -> bool:
        if not isinstance(value, str):
            return True
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?([Zz]|[+-]\d{2}:\d{2})?", value):
            return False
        datetime.fromisoformat(value.replace("z", "Z"))
        return True

    return checker


@lru_cache(maxsize=1)
def _schema_file() -> dict:
    text = (files("engine") / "schemas" / "engine.schema.json").read_text(encoding="utf-8")
    return json.loads(text)


@lru_cache(maxsize=8)
def load_schema(source_formats: tuple[str, ...] | None = None) -> dict:
    """The spec JSON Schema, read once from the package resources. Treat it as read-only.

    ``source_formats``: the registered format names (``engine.model.formats``; this layer cannot
    import it, so the caller passes them). The ``source_format`` enum then lists them; when they
    equal the file's (no format registered beyond the built-ins) the file's schema itself is returned.
    Every other node is shared with the file's schema (the error explanations find $defs by identity).
    """
    schema = _schema_file()
    current = schema["$defs"]["source_format"]
    if source_formats is None or list(source_formats) == current["enum"]:
        return schema
    return {**schema, "$defs": {**schema["$defs"], "source_format": {**current, "enum": list(source_formats)}}}


@lru_cache(maxsize=8)
def _validator(source_formats: tuple[str, ...] | None = None) -> Draft202012Validator:
    schema = load_schema(source_formats)
    # A registry holding only our own schema: no $ref can ever reach the network or the disk (R2).
    registry: Registry = Registry().with_resource(schema["$id"], Resource.from_contents(schema))
    return Draft202012Validator(schema, registry=registry, format_checker=_format_checker())


def validate_document(data: object, source_map: SourceMap, *, source_formats: tuple[str, ...] | None = None) -> list[Problem]:
    """Every schema problem of one loaded document, positioned and sorted by (file, line, column).

    Pure and fast: no I/O beyond the cached schema. Never raises for any input shape.
    ``source_formats``: the registered format names (default: the schema file's).
    """
    problems: list[Problem] = []
    try:
        for error in _validator(source_formats).iter_errors(data):
            problems.extend(_explain(error, source_map))
        problems.extend(_non_finite_numbers(data, source_map))
    except RecursionError:  # V14: jsonschema recurses (and repr()s values) without a depth limit
        problems.append(source_map.problem((), "nesting too deep", "flatten the document"))
    unique: dict[tuple, Problem] = {}
    for p in problems:
        unique.setdefault((p.file, p.line, p.column, format_path(p.path), p.message), p)
    return sorted(unique.values(), key=lambda p: (p.file, p.line, p.column, format_path(p.path), p.message))


# --- rendering values ------------------------------------------------------------------------------


def _show(value: object) -> str:
    """A short, YAML-ish rendering of a value for a message (never more than ~60 characters)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    text = value if isinstance(value, str) else repr(value)
    if len(text) > _MAX_ECHO:
        text = text[: _MAX_ECHO - 1] + "…"
    return f"'{text}'" if isinstance(value, str) else text


def json_type(value: object) -> str:
    """The JSON type of a spec value ('integer' for whole ints, 'number' for floats).

    >>> json_type(True), json_type(3), json_type(1.5), json_type([1]), json_type({})
    ('boolean', 'integer', 'number', 'array', 'object')
    """
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, (list, tuple)):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "other"


def _type_name(value: object) -> str:
    kind = json_type(value)
    return type(value).__name__ if kind == "other" else _expected_name(kind)


def _expected_name(json_type: str) -> str:
    return {"object": "a mapping", "array": "a list"}.get(json_type, json_type)


def _got(value: object) -> str:
    kind = _type_name(value)
    if isinstance(value, (dict, list)):
        return kind
    return f"{kind} {_show(value)}"


def _join_or(words: list[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " or " + words[-1]


def _found(keys: list[str]) -> str:
    quoted = [f"'{k}'" for k in keys]
    if len(quoted) == 2:
        return f"found both {quoted[0]} and {quoted[1]}"
    return "found " + ", ".join(quoted[:-1]) + " and " + quoted[-1]


# --- walking the schema ----------------------------------------------------------------------------


def _def_name(schema: object) -> str | None:
    """The $defs entry ``schema`` is (by identity), if any."""
    for name, sub in load_schema()["$defs"].items():
        if sub is schema:
            return name
    return None


def _schema_chain(path: Iterator[str | int]) -> list[tuple[str | int, Any]]:
    """Follow an absolute schema path from the root; jsonschema leaves out ``$ref`` hops, we resolve them."""
    root = load_schema()
    node: Any = root
    chain: list[tuple[str | int, Any]] = []
    for part in path:
        while isinstance(node, dict) and part not in node and "$ref" in node:
            node = root["$defs"][node["$ref"].rsplit("/", 1)[-1]]
            chain.append(("$ref", node))
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            break
        chain.append((part, node))
    return chain


def _innermost_def(error: ValidationError) -> str | None:
    if (name := _def_name(error.schema)) is not None:
        return name
    for part, node in reversed(_schema_chain(error.absolute_schema_path)):
        if part == "$ref":
            return _def_name(node)
    return None


def _condition(error: ValidationError) -> str | None:
    """Why a key is forbidden or required here: 'with by: time', "with 'select'" (from if/then or dependentSchemas)."""
    chain = _schema_chain(error.absolute_schema_path)
    for i in range(len(chain) - 1, -1, -1):
        part, _ = chain[i]
        if part == "then" and i > 0:
            parent = chain[i - 1][1]
            cond = parent.get("if", {}) if isinstance(parent, dict) else {}
            consts = [f"{k}: {v['const']}" for k, v in cond.get("properties", {}).items() if "const" in v]
            if consts:
                return "with " + ", ".join(consts)
            return "with " + " and ".join(f"'{k}'" for k in cond.get("required", []))
        if part == "dependentSchemas" and i + 1 < len(chain):
            return f"with '{chain[i + 1][0]}'"
    return None


# --- explaining errors -----------------------------------------------------------------------------


def _explain(error: ValidationError, smap: SourceMap) -> list[Problem]:
    path: KeyPath = tuple(error.absolute_path)
    instance = error.instance
    if "propertyNames" in error.absolute_schema_path and isinstance(instance, str):
        path = path + (instance,)  # a bad key: point at the key itself

    def at_value(message: str, hint: str | None = None) -> list[Problem]:
        return [smap.problem(path, message, hint, value=True)]

    def at_key(message: str, hint: str | None = None) -> list[Problem]:
        return [smap.problem(path, message, hint)]

    kind = error.validator
    value = error.validator_value
    def_name = _innermost_def(error)

    if def_name in ("name", "column") and kind in ("pattern", "not", "maxLength") and isinstance(instance, str):
        return at_value(*(_name_message(instance) if def_name == "name" else _column_message(instance)))
    if kind == "additionalProperties" and isinstance(instance, dict):
        return _unknown_keys(path, instance, error.schema, smap)
    if kind == "required" and isinstance(instance, dict):
        condition = _condition(error)
        return [
            smap.problem(path, f"missing required key '{k}'", f"required {condition}" if condition else None)
            for k in value
            if k not in instance
        ]
    if kind == "dependentRequired" and isinstance(instance, dict):
        return [
            smap.problem(path + (k,), f"'{k}' needs '{dep}'")
            for k, deps in value.items()
            if k in instance
            for dep in deps
            if dep not in instance
        ]
    if kind == "not" and value == {}:  # a forbidden key (see "Not allowed ..." in the schema)
        key = path[-1] if path else "value"
        condition = _condition(error)
        return at_key(f"'{key}' cannot be used {condition}" if condition else f"'{key}' is not allowed here")
    if kind == "type":
        return at_value(*_type_message(value, instance))
    if kind == "enum":
        options = [_show(v).strip("'") for v in value]
        hint = did_you_mean(instance, [str(v) for v in value]) if isinstance(instance, str) else None
        return at_value(f"{_show(instance)} is not one of {', '.join(options)}", hint)
    if kind == "const":
        hint = did_you_mean(instance, [value]) if isinstance(instance, str) and isinstance(value, str) else None
        return at_value(f"must be {_show(value).strip(chr(39))}, got {_show(instance)}", hint)
    if kind == "pattern" and def_name in _PATTERN_MESSAGES:
        message, hint = _PATTERN_MESSAGES[def_name]
        return at_value(message.format(value=_show(instance)), hint)
    if kind == "pattern" and len(path) >= 2 and path[-2] == "metrics" and isinstance(instance, str):
        # The names are the schema's own alternatives (^(a|b|precision_at_[1-9]...)$).
        names = [n for n in value.strip("^$()").split("|") if n.isidentifier()]
        k = re.search(r"_([1-9][0-9]{0,8})$", instance)
        if k:
            names.append(f"precision_at_{k.group(1)}")
        return at_value(f"unknown metric {_show(instance)}", did_you_mean(instance, names) or f"use one of: {', '.join(names)}, precision_at_K (K rows, e.g. precision_at_100)")
    if kind == "pattern" and def_name == "model" and "estimator" in path[-1:]:
        return at_value(f"invalid estimator {_show(instance)}", "use a sklearn.* or xgboost.* class path, e.g. sklearn.linear_model.LogisticRegression")
    if kind == "pattern":
        described = error.schema.get("description") if isinstance(error.schema, dict) else None
        return at_value(f"{_show(instance)} is not in the expected form", described)
    if kind == "not" and def_name == "path":
        return at_value(f"remote sources are not supported: {_show(instance)}", "copy the data into the project and use a relative path")
    if kind in ("maxLength", "minLength") and isinstance(instance, str):
        if kind == "minLength":
            return at_value("must not be empty")
        return at_value(f"string too long ({len(instance)} > {value} characters)")
    if kind in ("maxItems", "minItems") and isinstance(instance, list):
        if kind == "maxItems":
            return at_value(f"too many items ({len(instance)} > {value})")
        return at_value(f"too few items ({len(instance)} < {value})")
    if kind in ("maxProperties", "minProperties") and isinstance(instance, dict):
        if kind == "maxProperties":
            return at_key(f"too many entries ({len(instance)} > {value})")
        allowed = sorted(error.schema.get("properties", {}))
        return at_key(f"needs at least {value} key{'s' if value != 1 else ''}", f"one of {', '.join(allowed)}" if allowed else None)
    if kind == "uniqueItems" and isinstance(instance, list):
        return at_value(f"duplicate item {_show(_first_duplicate(instance))}")
    if kind in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        op = {"minimum": ">=", "maximum": "<=", "exclusiveMinimum": ">", "exclusiveMaximum": "<"}[kind]
        return at_value(f"must be {op} {value}, got {_show(instance)}")
    if kind == "format":
        return at_value(f"{_show(instance)} is not a valid {value}")
    if kind in ("oneOf", "anyOf"):
        return _explain_choice(error, def_name, path, smap)
    return at_value(f"invalid value {_show(instance)} ({kind})")


def _name_message(value: str) -> tuple[str, str | None]:
    if len(value) > 63:
        return f"name too long ({len(value)} > 63 characters)", None
    if _RESERVED.match(value):
        return f"name {_show(value)} uses a reserved prefix", f"reserved: {_RESERVED_LIST}"
    foreign = next((ch for ch in value if not ch.isascii()), None)
    if foreign is not None:
        hint = f"it contains the non-ASCII character {foreign!r} (U+{ord(foreign):04X})"
    elif _NAME.match(value.lower()):
        hint = f"did you mean '{value.lower()}'?"
    else:
        hint = None
    message = f"invalid name {_show(value)}: names are lowercase letters, digits and _ starting with a letter (max 63)"
    return message, hint


def _column_message(value: str) -> tuple[str, str | None]:
    if len(value) > 63:
        return f"column name too long ({len(value)} > 63 characters)", None
    foreign = next((ch for ch in value if not ch.isascii()), None)
    hint = f"it contains the non-ASCII character {foreign!r} (U+{ord(foreign):04X})" if foreign else None
    return f"invalid column name {_show(value)}: letters, digits and _ not starting with a digit (max 63)", hint


def _type_message(expected: str | list[str], instance: object) -> tuple[str, str | None]:
    wanted = [expected] if isinstance(expected, str) else list(expected)
    message = f"expected {_join_or([_expected_name(t) for t in wanted])}, got {_got(instance)}"
    hint = None
    if "string" in wanted and isinstance(instance, (bool, int, float)) or ("string" in wanted and instance is None):
        message += " — quote the value if you meant the text"
    elif isinstance(instance, str) and "boolean" in wanted and instance in _BOOLEAN_LOOKALIKES:
        hint = "use true or false"
    elif isinstance(instance, str) and ({"integer", "number"} & set(wanted)) and _looks_numeric(instance):
        hint = "remove the quotes"
    elif instance is None:
        hint = "the value is empty"
    return message, hint


def _looks_numeric(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _first_duplicate(items: list) -> object:
    seen: list = []
    for item in items:
        if item in seen:
            return item
        seen.append(item)
    return None


def _unknown_keys(path: KeyPath, instance: dict, schema: dict, smap: SourceMap) -> list[Problem]:
    allowed = sorted(schema.get("properties", {}))
    out = []
    for key in instance:
        if key in allowed:
            continue
        shown = key if isinstance(key, str) else str(key)
        if path[:1] == ("models",) and len(path) == 2 and shown in _ARTIFACT_KEYS:
            out.append(smap.problem(path + (key,), f"artifact paths are engine-managed; remove '{shown}'", "the model registry stores artifacts under .engine/"))
            continue
        hint = did_you_mean(shown, allowed) or (f"allowed keys: {', '.join(allowed)}" if allowed else None)
        out.append(smap.problem(path + (key,), f"unknown key {_show(shown)}", hint))
    return out


def _explain_choice(error: ValidationError, def_name: str | None, path: KeyPath, smap: SourceMap) -> list[Problem]:
    instance = error.instance
    if def_name in _CHOICES and isinstance(instance, dict):
        keys, subject, shown = _CHOICES[def_name]
        present = [k for k in keys if k in instance]
        if not present:
            return [smap.problem(path, f"{subject} needs exactly one of {shown}")]
        if len(present) > 1:
            return [smap.problem(path, f"{subject} needs exactly one of {shown}; {_found(present)}")]
    context = list(error.context or ())
    if def_name == "timestamp" or (context and all(e.validator == "format" for e in context)):
        message, hint = _PATTERN_MESSAGES["timestamp"]
        return [smap.problem(path, message.format(value=_show(instance)), hint, value=True)]
    direct = [e for e in context if not e.relative_path]
    if context and len(direct) == len(context) and all(e.validator == "type" for e in direct):
        wanted: list[str] = []
        for e in direct:
            for t in [e.validator_value] if isinstance(e.validator_value, str) else e.validator_value:
                if t not in wanted:
                    wanted.append(t)
        return [smap.problem(path, *_type_message(wanted, instance), value=True)]
    if not context:
        return [smap.problem(path, f"{_show(instance)} does not match any allowed form", value=True)]
    branches: dict[object, list[ValidationError]] = {}
    for e in context:
        branches.setdefault(e.relative_schema_path[0] if e.relative_schema_path else None, []).append(e)

    def mismatch(errors: list[ValidationError]) -> tuple[int, int, int]:
        # The branch whose shape fits the value explains it best: no type error at the value itself,
        # then no const/enum error there, then the fewest errors.
        direct_kinds = {e.validator for e in errors if not e.relative_path}
        return ("type" in direct_kinds, bool({"const", "enum"} & direct_kinds), len(errors))

    chosen = min(branches.values(), key=mismatch)
    if len(chosen) == 1 and chosen[0].validator in ("oneOf", "anyOf") and not chosen[0].context:
        return _explain(best_match(chosen), smap)
    return [p for e in chosen for p in _explain(e, smap)]


def _non_finite_numbers(data: object, smap: SourceMap) -> list[Problem]:
    """NaN and infinity pass JSON Schema number checks (V14); a spec never needs them."""
    out: list[Problem] = []
    stack: list[tuple[KeyPath, object]] = [((), data)]
    seen: set[int] = set()  # shared or cyclic containers (alias-built documents) are walked once
    while stack:
        path, node = stack.pop()
        if isinstance(node, float) and not math.isfinite(node):
            out.append(smap.problem(path, f"{node!r} is not allowed: numbers must be finite", value=True))
            continue
        if isinstance(node, (dict, list)):
            if id(node) in seen:
                continue
            seen.add(id(node))
        if isinstance(node, dict):
            stack.extend((path + (k,), v) for k, v in node.items())
        elif isinstance(node, list):
            stack.extend((path + (i,), v) for i, v in enumerate(node))
    return out
