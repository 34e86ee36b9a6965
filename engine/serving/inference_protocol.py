"""The Open Inference Protocol v2 (KServe, Triton, Seldon) over the online service: named input
tensors to request rows, predictions to output tensors, model metadata. Pure data in and out: the
routes are in ``engine.serving.http``, the scoring is ``OnlineState.predict`` (same lookups, same
on-demand functions as ``/jobs/{job}/predict``). Must not touch HTTP, storage or training.

A *model* of the protocol is an online inference job; its one *version* is the model version the
job serves. Tensors are columns: each input tensor is one request field (an entity key, a request
value, or an optional helper / event time), of shape ``[n]`` or ``[n, 1]``; ``n`` is the number of
rows and must agree across inputs. Field kinds map to datatypes (:data:`KIND_DATATYPE`); an
integer field takes any INT/UINT tensor, a float field any INT/UINT/FP tensor, a string or
timestamp field (ISO 8601) a BYTES tensor of JSON strings. ``null`` elements are allowed where the
field may be null (never in a key). Outputs: ``prediction`` ``[n]``, ``probability`` ``[n, k]`` for
classifiers (class order in its ``parameters.classes``, a JSON array as text) and ``status`` ``[n]``
(``ok``, ``missing``: a key with no online row, H4, or ``error``).

Refusals raise :class:`~engine.errors.RequestError`; :func:`error_body` turns any of them into the
protocol's ``{"error": "..."}`` with 400 for what the engine answers 422 (malformed tensors, wrong
values), 404 for unknown models, and the engine's own 408/409/413/503.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping

from engine.errors import RequestError
from engine.serving.online import MAX_ROWS, Endpoint, OnlineState
from engine.serving.vectors import InputField

_INT_BITS = {"INT8": 8, "INT16": 16, "INT32": 32, "INT64": 64}
_UINT_BITS = {"UINT8": 8, "UINT16": 16, "UINT32": 32, "UINT64": 64}
_FLOATS = frozenset({"FP16", "FP32", "FP64"})
DATATYPES = ("BOOL", *_UINT_BITS, *_INT_BITS, *sorted(_FLOATS), "BYTES")
KIND_DATATYPE = {"int": "INT64", "float": "FP64", "str": "BYTES", "bool": "BOOL", "timestamp": "BYTES", "any": "BYTES"}
_ACCEPTS = {  # field kind -> tensor datatypes it takes
    "int": frozenset({*_INT_BITS, *_UINT_BITS}),
    "float": frozenset({*_INT_BITS, *_UINT_BITS, *_FLOATS}),
    "str": frozenset({"BYTES"}),
    "timestamp": frozenset({"BYTES"}),
    "bool": frozenset({"BOOL"}),
    "any": frozenset(DATATYPES) - {"FP16"},
}
_REQUEST_KEYS = frozenset({"id", "parameters", "inputs", "outputs"})
_INPUT_KEYS = frozenset({"name", "shape", "datatype", "data", "parameters"})
OUTPUTS = ("prediction", "probability", "status")
_SCALARS = {"oneOf": [{"type": "string"}, {"type": "number"}, {"type": "boolean"}, {"type": "null"}]}
REQUEST_SCHEMA = {  # OpenAPI of the inference request object (GET /v2/models/<job> lists a job's inputs)
    "type": "object", "title": "InferenceRequest", "required": ["inputs"], "additionalProperties": False,
    "properties": {
        "id": {"type": "string"},
        "parameters": {"type": "object"},
        "inputs": {"type": "array", "minItems": 1, "items": {
            "type": "object", "required": ["name", "shape", "datatype", "data"], "additionalProperties": False,
            "properties": {
                "name": {"type": "string", "description": "a field of the job (entity key, request value, helper)"},
                "shape": {"type": "array", "items": {"type": "integer", "minimum": 0}, "minItems": 1, "maxItems": 2,
                          "description": f"[n] or [n, 1]; n rows, at most {MAX_ROWS}"},
                "datatype": {"type": "string", "enum": list(DATATYPES)},
                "parameters": {"type": "object"},
                "data": {"type": "array", "items": {"oneOf": [_SCALARS, {"type": "array", "items": _SCALARS, "maxItems": 1}]}},
            }}},
        "outputs": {"type": "array", "items": {"type": "object", "required": ["name"],
                                               "properties": {"name": {"type": "string", "enum": list(OUTPUTS)}, "parameters": {"type": "object"}}}},
    },
    "example": {"id": "42", "inputs": [{"name": "<key field>", "shape": [2], "datatype": "INT64", "data": [1, 2]},
                                       {"name": "<string field>", "shape": [2], "datatype": "BYTES", "data": ["a", "b"]}]},
}


def _bad(message: str) -> RequestError:
    return RequestError(400, message)


# --- request -------------------------------------------------------------------------------------


def _element_ok(datatype: str, value: object) -> bool:
    """Whether one JSON element fits ``datatype`` (null is left to the field's own check)."""
    if value is None:
        return True
    if datatype == "BOOL":
        return type(value) is bool
    if datatype == "BYTES":
        return type(value) is str
    if datatype in _FLOATS:
        return type(value) in (int, float)
    if type(value) is not int:
        return False
    if datatype in _UINT_BITS:
        return 0 <= value < 2 ** _UINT_BITS[datatype]  # type: ignore[operator]
    bits = _INT_BITS[datatype]
    return -(2 ** (bits - 1)) <= value < 2 ** (bits - 1)  # type: ignore[operator]


def _column(tensor: object, i: int, fields: Mapping[str, InputField]) -> tuple[str, list]:
    """(field name, values) of the ``i``-th input tensor, checked against the protocol and its field."""
    where = f"inputs[{i}]"
    if not isinstance(tensor, dict):
        raise _bad(f"{where} must be an object with name, shape, datatype and data")
    if getattr(tensor, "duplicates", ()):
        raise _bad(f"{where}: duplicate key {tensor.duplicates[0]!r}")  # type: ignore[attr-defined]
    absent = [k for k in ("name", "shape", "datatype", "data") if k not in tensor]
    unknown = sorted(set(tensor) - _INPUT_KEYS)
    if absent or unknown:
        raise _bad(f"{where}: " + "; ".join([*(f"missing '{k}'" for k in absent), *(f"unknown key '{k}'" for k in unknown)]))
    name, shape, datatype, data = tensor["name"], tensor["shape"], tensor["datatype"], tensor["data"]
    if not isinstance(name, str):
        raise _bad(f"{where}.name must be a string")
    where = f"input '{name}'"
    if datatype not in DATATYPES:
        raise _bad(f"{where}: unknown datatype {json.dumps(datatype)}; expected one of {', '.join(DATATYPES)}")
    if not (isinstance(shape, list) and 1 <= len(shape) <= 2 and all(type(d) is int and d >= 0 for d in shape) and shape[1:] in ([], [1])):
        raise _bad(f"{where}: shape must be [n] or [n, 1] (one column of n rows), got {json.dumps(shape)}")
    field = fields.get(name)
    if field is None:
        from engine.errors import did_you_mean

        hint = did_you_mean(name, list(fields))
        raise _bad(f"{where} is not an input of this model{f' ({hint})' if hint else ''}; inputs: {', '.join(fields)}")
    if datatype not in _ACCEPTS[field.kind]:
        raise _bad(f"{where} has datatype {datatype}; expected {KIND_DATATYPE[field.kind]}"
                   + {"int": " (or another INT/UINT type)", "float": " (or another FP/INT/UINT type)", "timestamp": " (ISO 8601 strings)"}.get(field.kind, ""))
    if not isinstance(data, list):
        raise _bad(f"{where}: data must be a JSON array (binary tensor data is not supported)")
    values = []
    for j, element in enumerate(data):
        if isinstance(element, list) and len(shape) == 2:  # natural [[v], [v]] form of an [n, 1] tensor
            if len(element) != 1:
                raise _bad(f"{where}: data[{j}] must hold one element (shape {json.dumps(shape)})")
            element = element[0]
        if isinstance(element, (list, dict)):
            raise _bad(f"{where}: data[{j}] must be a scalar")
        if not _element_ok(datatype, element):
            raise _bad(f"{where}: data[{j}] = {json.dumps(element)[:60]} is not a valid {datatype} value")
        values.append(element)
    if len(values) != shape[0]:
        raise _bad(f"{where}: shape {json.dumps(shape)} holds {shape[0]} elements but data has {len(values)}")
    return name, values


def request_rows(doc: object, fields: Mapping[str, InputField]) -> tuple[str | None, list[dict], list[str] | None]:
    """(request id, rows, requested output names or None for all) of an inference request body."""
    if not isinstance(doc, dict):
        raise _bad('the body must be an inference request object: {"inputs": [...]}')
    if getattr(doc, "duplicates", ()):
        raise _bad(f"duplicate key {doc.duplicates[0]!r} in the request")  # type: ignore[attr-defined]
    unknown = sorted(set(doc) - _REQUEST_KEYS)
    if unknown:
        raise _bad(f"unknown key '{unknown[0]}' in the inference request; expected: id, parameters, inputs, outputs")
    request_id = doc.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise _bad("id must be a string")
    if not isinstance(doc.get("parameters", {}), dict):
        raise _bad("parameters must be an object")
    inputs = doc.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise _bad("inputs must be a non-empty array of input tensors")
    columns: dict[str, list] = {}
    for i, tensor in enumerate(inputs):
        if isinstance(tensor, dict) and isinstance(tensor.get("shape"), list) and tensor["shape"] and type(tensor["shape"][0]) is int and tensor["shape"][0] > MAX_ROWS:
            raise RequestError(413, f"too many rows: input '{tensor.get('name')}' has {tensor['shape'][0]} > {MAX_ROWS} per request")
        name, values = _column(tensor, i, fields)
        if name in columns:
            raise _bad(f"input '{name}' is given twice")
        columns[name] = values
    absent = [f for f in fields.values() if f.required and f.name not in columns]
    if absent:
        raise _bad("missing required input" + ("s " if len(absent) > 1 else " ")
                   + ", ".join(f"'{f.name}' ({KIND_DATATYPE[f.kind]})" for f in absent))
    counts = {len(v) for v in columns.values()}
    if len(counts) > 1:
        raise _bad("inputs disagree on the number of rows: " + ", ".join(f"{k}: {len(v)}" for k, v in columns.items()))
    n = counts.pop()
    if n == 0:
        raise _bad("inputs hold no rows (shape[0] is 0)")
    rows = [{name: values[r] for name, values in columns.items()} for r in range(n)]
    requested = None
    if "outputs" in doc:
        outs = doc["outputs"]
        if not isinstance(outs, list) or not all(isinstance(o, dict) and isinstance(o.get("name"), str) for o in outs):
            raise _bad('outputs must be an array of {"name": ...} objects')
        requested = [o["name"] for o in outs]
        for name in requested:
            if name not in OUTPUTS:
                raise _bad(f"unknown output '{name}'; outputs: {', '.join(OUTPUTS)}")
    return request_id, rows, requested


# --- response and metadata -------------------------------------------------------------------------


def _label_datatype(ep: Endpoint) -> str:
    if ep.model.task != "classifier":
        return "FP64"
    classes = ep.model.classes or []
    if classes and all(type(c) is bool for c in classes):
        return "BOOL"
    if classes and all(type(c) is int for c in classes):
        return "INT64"
    if classes and all(type(c) in (int, float) for c in classes):
        return "FP64"
    return "BYTES"


def _label(value: object, datatype: str) -> object:
    return str(value) if datatype == "BYTES" and value is not None else value


def platform(ep: Endpoint) -> str:
    """``engine_xgboost`` / ``engine_sklearn``: the estimator's library, served by engine."""
    return "engine_" + ep.model.info.estimator.split(".")[0]


def model_metadata(job: str, ep: Endpoint) -> dict:
    """The model metadata response of a job."""
    inputs = [{"name": f.name, "datatype": KIND_DATATYPE[f.kind], "shape": [-1]} for f in ep.fields.values()]
    outputs = [{"name": "prediction", "datatype": _label_datatype(ep), "shape": [-1]}]
    if ep.model.has_proba:
        outputs.append({"name": "probability", "datatype": "FP64", "shape": [-1, len(ep.model.classes or [])]})
    outputs.append({"name": "status", "datatype": "BYTES", "shape": [-1]})
    return {"name": job, "versions": [str(ep.model.manifest["version"])], "platform": platform(ep), "inputs": inputs, "outputs": outputs}


def infer_response(job: str, ep: Endpoint, request_id: str, body: dict, requested: list[str] | None) -> dict:
    """The inference response for ``body``, the result of ``OnlineState.predict``."""
    items = body["predictions"]
    n = len(items)
    datatype = _label_datatype(ep)
    outputs = [{"name": "prediction", "shape": [n], "datatype": datatype, "data": [_label(p.get("prediction"), datatype) for p in items]}]
    if ep.model.has_proba:
        classes = ep.model.classes or []
        data = [p["probabilities"][str(c)] if "probabilities" in p else None for p in items for c in classes]
        outputs.append({"name": "probability", "shape": [n, len(classes)], "datatype": "FP64", "data": data,
                        "parameters": {"classes": json.dumps(classes)}})
    outputs.append({"name": "status", "shape": [n], "datatype": "BYTES", "data": [p["status"] for p in items]})
    if requested is not None:
        outputs = [o for o in outputs if o["name"] in requested]
    return {"model_name": job, "model_version": str(body["model_version"]), "id": request_id, "outputs": outputs}


def served_version(job: str, ep: Endpoint, version: str | None) -> None:
    """RequestError(404) unless ``version`` is None or the model version the job serves."""
    served = str(ep.model.manifest["version"])
    if version is not None and version != served:
        raise RequestError(404, f"model '{job}' has no version '{version[:40]}': it serves {ep.model.ref} (versions: {served})")


def ready_problem(state: OnlineState, job: str | None = None) -> str | None:
    """Why a job (or, without one, any job) cannot answer; None when ready."""
    eps = {job: state.job(job)} if job is not None else state.jobs
    for name, ep in eps.items():
        if ep.conflict:
            return f"model '{name}' is not ready: {ep.conflict}"
    return None


# --- errors ---------------------------------------------------------------------------------------

_ROW_PATH = re.compile(r"^\$\.rows\[(\d+)\](?:\.(.+))?$")


def describe_errors(errors: list[dict], where: str = "input '{field}' {rows}") -> str:
    """Per-field errors of a RequestError (JSON paths into ``$.rows``) as one line in the words
    of a columnar protocol; the same message for several rows is given once.

    >>> describe_errors([{"path": "$.rows[2].zone", "message": "must be a string, got int"}])
    "input 'zone' row 2: must be a string, got int"
    >>> describe_errors([{"path": f"$.rows[{i}].zone", "message": "missing required field"} for i in range(9)])
    "input 'zone' rows 0, 1, 2, 3, 4, ... (9 rows): missing required field"
    """
    grouped: dict[tuple[str | None, str, str], list[str]] = {}
    for err in errors:
        match = _ROW_PATH.match(err.get("path", ""))
        if match:
            grouped.setdefault((match.group(2), err["message"], ""), []).append(match.group(1))
        else:
            grouped.setdefault((None, err["message"], err.get("path", "$")), [])
    parts = []
    for (field, message, path), rows in grouped.items():
        if not rows:
            parts.append(f"{path}: {message}")
            continue
        shown = f"row {rows[0]}" if len(rows) == 1 else "rows " + ", ".join(rows[:5]) + (f", ... ({len(rows)} rows)" if len(rows) > 5 else "")
        parts.append(f"{where.format(field=field, rows=shown)}: {message}" if field else f"{shown}: {message}")
    more = f"; and {len(parts) - 20} more" if len(parts) > 20 else ""
    return "; ".join(parts[:20]) + more


def error_body(exc: RequestError) -> tuple[int, dict]:
    """(status, ``{"error": ...}``) of a refusal: 422 becomes 400 (the protocol's malformed request)."""
    status = 400 if exc.status == 422 else exc.status
    message = exc.message
    if exc.errors:
        message = f"{message}: {describe_errors(exc.errors)}"
    return status, {"error": message}
