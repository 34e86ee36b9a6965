"""MLflow's scoring protocol (``POST /invocations``, as ``mlflow models serve``) over the online
service: the body's rows, the job that answers, and MLflow's error shape. Pure data in and out:
the route is in ``engine.serving.http``, the scoring is ``OnlineState.predict`` (same lookups, same
on-demand functions as ``/jobs/{job}/predict``). Must not touch HTTP, storage or training.

Bodies (``Content-Type: application/json``), exactly one of:

* ``{"dataframe_split": {"columns": [...], "data": [[...], ...], "index": [...]?}}``
* ``{"dataframe_records": [{column: value, ...}, ...]}``
* ``{"instances": [{column: value, ...}, ...]}`` (TF-serving rows)
* ``{"inputs": {column: [values], ...}}`` (columns) or ``{"inputs": [{...}, ...]}`` (rows)

or ``Content-Type: text/csv`` with a header row (values typed as ``engine predict`` types CSV: an
empty cell is null). Columns are the job's fields (keys, request values, optional helpers). The
answer is ``{"predictions": [label, ...]}`` in row order (null for a row the model refused).

The job: the only online job, or the one named by ``?job=`` or the ``X-Engine-Job`` header.
Errors: ``{"error_code": "BAD_REQUEST", "message": ...}`` with 400 for malformed bodies and wrong
values, ``RESOURCE_DOES_NOT_EXIST`` with 404 for an unknown job, and the engine's own limits
(``REQUEST_LIMIT_EXCEEDED`` 413, 408, 409, 503).
"""

from __future__ import annotations

import csv
import io

from engine.errors import RequestError
from engine.serving.inference_protocol import describe_errors
from engine.serving.online import MAX_ROWS, OnlineState

FORMATS = ("dataframe_split", "dataframe_records", "instances", "inputs")
JOB_HEADER = "x-engine-job"
JOB_QUERY = "job"
_WHERE = "column '{field}' {rows}"
_ROW = {"type": "object", "description": "column -> value (the job's fields)"}
REQUEST_BODY = {"required": True, "content": {
    "application/json": {"schema": {"type": "object", "minProperties": 1, "maxProperties": 1, "properties": {
        "dataframe_split": {"type": "object", "required": ["columns", "data"], "properties": {
            "columns": {"type": "array", "items": {"type": "string"}},
            "data": {"type": "array", "maxItems": MAX_ROWS, "items": {"type": "array"}},
            "index": {"type": "array"}}},
        "dataframe_records": {"type": "array", "maxItems": MAX_ROWS, "items": _ROW},
        "instances": {"type": "array", "maxItems": MAX_ROWS, "items": _ROW},
        "inputs": {"oneOf": [{"type": "object", "description": "column -> [values]"}, {"type": "array", "maxItems": MAX_ROWS, "items": _ROW}]},
    }}},
    "text/csv": {"schema": {"type": "string", "description": "a header row of column names, then one line per row"}},
}}
_ERROR_CODES = {400: "BAD_REQUEST", 404: "RESOURCE_DOES_NOT_EXIST", 408: "BAD_REQUEST", 409: "INVALID_STATE",
                413: "REQUEST_LIMIT_EXCEEDED", 415: "BAD_REQUEST", 503: "TEMPORARILY_UNAVAILABLE"}


def _bad(message: str) -> RequestError:
    return RequestError(400, message)


def select_job(state: OnlineState, by_query: str | None, by_header: str | None) -> str:
    """The job a request names (query parameter or header), or the project's only online job."""
    if by_query is not None and by_header is not None and by_query != by_header:
        raise _bad(f"?{JOB_QUERY}={by_query[:40]} and the X-Engine-Job header ({by_header[:40]}) name different jobs")
    name = by_query if by_query is not None else by_header
    if name is None:
        if len(state.jobs) != 1:
            raise _bad(f"the project has {len(state.jobs)} online jobs: name one with ?{JOB_QUERY}= or the X-Engine-Job header"
                       f" ({', '.join(sorted(state.jobs)) or 'none'})")
        return next(iter(state.jobs))
    state.job(name)  # 404 if unknown
    return name


def _check_rows(rows: object, what: str) -> list:
    if not isinstance(rows, list) or not rows:
        raise _bad(f"{what} must be a non-empty array of row objects")
    if len(rows) > MAX_ROWS:
        raise RequestError(413, f"too many rows: {len(rows)} > {MAX_ROWS} per request")
    return rows


def _columns_to_rows(columns: list, data: list, what: str) -> list[dict]:
    if len(set(columns)) != len(columns):
        raise _bad(f"{what}.columns names a column twice")
    rows = []
    for i, values in enumerate(data):
        if not isinstance(values, list) or len(values) != len(columns):
            raise _bad(f"{what}.data[{i}] must be an array of {len(columns)} values (one per column)")
        rows.append(dict(zip(columns, values)))
    return rows


def json_rows(doc: object) -> list:
    """The rows of a JSON scoring body (row objects, checked by ``OnlineState.predict``)."""
    if not isinstance(doc, dict):
        raise _bad(f"the body must be a JSON object with exactly one of {', '.join(FORMATS)}")
    given = [k for k in FORMATS if k in doc]
    unknown = sorted(set(doc) - set(FORMATS))
    if len(given) != 1 or unknown:
        extra = f"; unknown key '{unknown[0]}'" if unknown else ""
        raise _bad(f"the body must hold exactly one of {', '.join(FORMATS)} (found {len(given)}){extra}")
    if getattr(doc, "duplicates", ()):
        raise _bad(f"duplicate key '{doc.duplicates[0]}'")  # type: ignore[attr-defined]
    kind = given[0]
    value = doc[kind]
    if kind == "dataframe_split":
        if not isinstance(value, dict) or not set(value) <= {"columns", "data", "index"} or "data" not in value or "columns" not in value:
            raise _bad('dataframe_split must be {"columns": [...], "data": [[...], ...]} (and an optional "index")')
        columns, data = value["columns"], value["data"]
        if not isinstance(columns, list) or not all(isinstance(c, str) for c in columns):
            raise _bad("dataframe_split.columns must be an array of column names")
        return _columns_to_rows(columns, _check_rows(data, "dataframe_split.data"), "dataframe_split")
    if kind == "inputs" and isinstance(value, dict):
        lengths = {len(v) if isinstance(v, list) else -1 for v in value.values()}
        if not value or -1 in lengths or len(lengths) != 1:
            raise _bad("inputs as columns must be {column: [values], ...} with arrays of one length")
        n = lengths.pop()
        if n == 0 or n > MAX_ROWS:
            raise _bad("inputs columns hold no rows") if n == 0 else RequestError(413, f"too many rows: {n} > {MAX_ROWS} per request")
        return [{c: v[i] for c, v in value.items()} for i in range(n)]
    rows = _check_rows(value, kind)
    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            raise _bad(f"{kind}[{i}] must be an object of column values (unnamed tensors are not supported)")
    return rows


def csv_rows(raw: bytes) -> list[dict]:
    """The rows of a ``text/csv`` body (header row first); values stay strings, typed later."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise _bad("the CSV body is not UTF-8 text") from None
    reader = csv.reader(io.StringIO(text))
    try:
        header = next(reader, None)
        if not header:
            raise _bad("the CSV body has no header row")
        data = []
        for record in reader:
            if record:
                data.append(record)
                if len(data) > MAX_ROWS:
                    raise RequestError(413, f"too many rows: more than {MAX_ROWS} per request")
    except csv.Error as exc:
        raise _bad(f"the CSV body is malformed: {exc}") from None
    return _columns_to_rows(header, _check_rows(data, "the CSV body"), "csv")


def error_body(exc: RequestError) -> tuple[int, dict]:
    """(status, MLflow's ``{"error_code", "message"}``) of a refusal; 422 becomes 400 BAD_REQUEST."""
    status = 400 if exc.status == 422 else exc.status
    message = exc.message
    if exc.errors:
        message = f"{message}: {describe_errors(exc.errors, where=_WHERE)}"
    return status, {"error_code": _ERROR_CODES.get(status, "BAD_REQUEST" if status < 500 else "INTERNAL_ERROR"), "message": message}


def predictions(body: dict) -> dict:
    """MLflow's answer of a ``OnlineState.predict`` body: the labels in row order."""
    return {"predictions": [item.get("prediction") for item in body["predictions"]]}
