"""Standard protocols beside the engine's own endpoint (issue 12 item 2), against the real app under
uvicorn on 127.0.0.1: the Open Inference Protocol v2 (KServe/Triton/Seldon) with the spec's own
example payloads, MLflow's scoring protocol, OpenAPI with each job's real fields, /docs and /redoc
served offline, Prometheus /metrics and the JSON access log. Every protocol route scores through
the same online service as /jobs/<job>/predict (no skew: answers are compared with it), keeps the
body limits and deadlines (RELIABILITY H1, H3, H6) and answers refusals in the protocol's own error
shape, never a traceback (H2, H5)."""

from __future__ import annotations

import http.client
import io
import json
import logging
import re
import socket
import time

import pytest

from engine import api
from engine.serving.http import BODY_TIMEOUT_S, create_app
from engine.state.workspace import Workspace
from tests.serving.conftest import LiveServer, check_golden
from tests.serving.test_http_hardening import _read_until_closed, _tracebacks, server_log  # noqa: F401 (fixture)

ROW = {"driver_id": 3, "zone": "north", "distance_km": 12.5, "requested_at": "2024-02-20T10:00:00Z"}
UNKNOWN = {"driver_id": 4242, "zone": "west", "distance_km": 3.0, "requested_at": "2024-02-21T08:30:00Z"}


def call(port: int, method: str, path: str, body: object = None, raw: bytes | None = None, headers: dict | None = None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        conn.request(method, path, body=data, headers={"Content-Type": "application/json", **(headers or {})})
        resp = conn.getresponse()
        text = resp.read()
    finally:
        conn.close()
    parsed = json.loads(text) if text[:1] in (b"{", b"[") else text
    return resp.status, {k.title(): v for k, v in resp.getheaders()}, parsed


def engine_answer(port: int, rows: list[dict]) -> list[dict]:
    status, _, body = call(port, "POST", "/jobs/tip_api/predict", {"rows": rows})
    assert status == 200, body
    return body["predictions"]


def tensors(rows: list[dict], *, nested: bool = False) -> list[dict]:
    """The rows as v2 input tensors, one per field (BYTES for strings and timestamps)."""
    types = {"driver_id": "INT64", "zone": "BYTES", "distance_km": "FP32", "requested_at": "BYTES"}
    out = []
    for name, datatype in types.items():
        data = [r[name] for r in rows]
        shape = [len(rows), 1] if nested else [len(rows)]
        out.append({"name": name, "shape": shape, "datatype": datatype, "data": [[v] for v in data] if nested else data})
    return out


def assert_v2_error(status: int, body: object, expected: int = 400) -> str:
    assert status == expected, (status, body)
    assert isinstance(body, dict) and set(body) == {"error"} and isinstance(body["error"], str) and body["error"], body
    assert "Traceback" not in body["error"]
    return body["error"]


def assert_mlflow_error(status: int, body: object, expected: int, code: str) -> str:
    assert status == expected, (status, body)
    assert isinstance(body, dict) and set(body) == {"error_code", "message"} and body["error_code"] == code, body
    assert "Traceback" not in body["message"]
    return body["message"]


# --- Open Inference Protocol v2 ----------------------------------------------------------------------


def test_v2_health_server_and_model_metadata(live):
    assert call(live.port, "GET", "/v2/health/live")[:3:2] == (200, {"live": True})
    assert call(live.port, "GET", "/v2/health/ready")[:3:2] == (200, {"ready": True})
    status, _, server = call(live.port, "GET", "/v2")
    assert status == 200 and server["name"] == "engine" and server["extensions"] == []
    status, headers, meta = call(live.port, "GET", "/v2/models/tip_api")
    assert status == 200 and headers["X-Engine-Model"] == "model:tips_xgb@1"
    # the spec's $metadata_model_response, with the job's fields as inputs (keys, request, optional)
    assert set(meta) == {"name", "versions", "platform", "inputs", "outputs"}
    assert meta["name"] == "tip_api" and meta["versions"] == ["1"] and meta["platform"] == "engine_xgboost"
    inputs = {t["name"]: (t["datatype"], t["shape"]) for t in meta["inputs"]}
    assert list(inputs)[:4] == ["driver_id", "zone", "distance_km", "requested_at"]
    assert inputs["driver_id"] == ("INT64", [-1]) and inputs["zone"] == ("BYTES", [-1])
    assert inputs["distance_km"] == ("FP64", [-1]) and inputs["requested_at"] == ("BYTES", [-1])
    assert meta["outputs"] == [{"name": "prediction", "datatype": "INT64", "shape": [-1]},
                               {"name": "probability", "datatype": "FP64", "shape": [-1, 2]},
                               {"name": "status", "datatype": "BYTES", "shape": [-1]}]
    assert call(live.port, "GET", "/v2/models/tip_api/versions/1")[2] == meta
    assert call(live.port, "GET", "/v2/models/tip_api/ready")[:3:2] == (200, {"name": "tip_api", "ready": True})
    assert call(live.port, "GET", "/v2/models/tip_api/versions/1/ready")[0] == 200
    for path in ("/v2/models/tip_api/versions/2", "/v2/models/tip_api/versions/2/ready", "/v2/models/nope", "/v2/models/nope/ready",
                 "/v2/models/..%2F..%2Fetc%2Fpasswd", "/v2/models/Tip_Api/ready"):
        status, _, body = call(live.port, "GET", path)
        assert_v2_error(status, body, 404)


@pytest.mark.parametrize("nested", [False, True], ids=["flat-[n]", "natural-[n,1]"])
def test_v2_infer_answers_as_the_engine_route_with_bytes_tensors(live, nested):
    """Columnar tensors (INT64 key, BYTES zone and ISO timestamp, FP32 distance) give the same
    predictions, probabilities and missing-key status as /jobs/tip_api/predict (H4: an unknown key
    is "missing", never another key's row)."""
    rows = [ROW, UNKNOWN, {**ROW, "driver_id": 5, "zone": "east"}]
    expected = engine_answer(live.port, rows)
    request = {"id": "42", "inputs": tensors(rows, nested=nested)}
    status, headers, body = call(live.port, "POST", "/v2/models/tip_api/infer", request)
    assert status == 200, body
    assert headers["X-Engine-Model"] == "model:tips_xgb@1"
    assert set(body) == {"model_name", "model_version", "id", "outputs"}
    assert (body["model_name"], body["model_version"], body["id"]) == ("tip_api", "1", "42")
    out = {o["name"]: o for o in body["outputs"]}
    assert list(out) == ["prediction", "probability", "status"]
    assert out["prediction"] == {"name": "prediction", "shape": [3], "datatype": "INT64", "data": [p["prediction"] for p in expected]}
    assert out["status"]["data"] == [p["status"] for p in expected] == ["ok", "missing", "ok"]
    classes = json.loads(out["probability"]["parameters"]["classes"])
    assert out["probability"]["shape"] == [3, 2] and out["probability"]["datatype"] == "FP64"
    # the unknown row (on_missing: null, the default) has no prediction and no probabilities
    assert out["probability"]["data"] == [p["probabilities"][str(c)] if "probabilities" in p else None for p in expected for c in classes]
    assert out["prediction"]["data"][1] is None and out["probability"]["data"][2:4] == [None, None]
    # the one served version answers the same; an id is made up when the request has none
    status, _, again = call(live.port, "POST", "/v2/models/tip_api/versions/1/infer", {"inputs": request["inputs"], "outputs": [{"name": "prediction"}]})
    assert status == 200 and [o["name"] for o in again["outputs"]] == ["prediction"]
    assert again["outputs"][0]["data"] == out["prediction"]["data"] and re.fullmatch(r"[0-9a-f]{32}", again["id"])


# The example of the spec's "Inference Request Examples" section (docs/predict-api/v2/required_api.md),
# verbatim: a model with inputs input0 (UINT32 [2, 2]) and input1 (BOOL [3], one element).
SPEC_EXAMPLE = {
    "id": "42",
    "inputs": [
        {"name": "input0", "shape": [2, 2], "datatype": "UINT32", "data": [1, 2, 3, 4]},
        {"name": "input1", "shape": [3], "datatype": "BOOL", "data": [True]},
    ],
    "outputs": [{"name": "output0"}],
}


def test_v2_the_specs_example_request_is_refused_in_the_protocols_error_shape(live, server_log):  # noqa: F811
    """The spec's example aimed at a model we do not have is 404 {"error"}; aimed at tip_api it is
    400 {"error"} (a [2, 2] tensor is not one column), and with valid inputs its requested output
    "output0" is refused by name. (The spec's flattened and natural data forms: the infer test.)"""
    status, _, body = call(live.port, "POST", "/v2/models/mymodel/infer", SPEC_EXAMPLE)
    assert "unknown online job 'mymodel'" in assert_v2_error(status, body, 404)
    status, _, body = call(live.port, "POST", "/v2/models/tip_api/infer", SPEC_EXAMPLE)
    assert assert_v2_error(status, body) == "input 'input0': shape must be [n] or [n, 1] (one column of n rows), got [2, 2]"
    status, _, body = call(live.port, "POST", "/v2/models/tip_api/infer", {**SPEC_EXAMPLE, "inputs": tensors([ROW])})
    assert assert_v2_error(status, body) == "unknown output 'output0'; outputs: prediction, probability, status"
    assert not _tracebacks(server_log)


def _v2(**changes) -> dict:
    request = {"inputs": tensors([ROW, ROW])}
    inputs = {t["name"]: t for t in request["inputs"]}
    for name, change in changes.items():
        if change is None:
            del inputs[name]
        else:
            inputs[name] = {**inputs[name], **change}
    request["inputs"] = list(inputs.values())
    return request


V2_MALFORMED = {
    "not json": b"{'inputs': []}",
    "an array": b"[]",
    "no inputs": b"{}",
    "empty inputs": json.dumps({"inputs": []}).encode(),
    "unknown top-level key": json.dumps({**_v2(), "input": []}).encode(),
    "tensor without data": json.dumps({"inputs": [{"name": "zone", "shape": [1], "datatype": "BYTES"}]}).encode(),
    "unknown datatype": json.dumps(_v2(zone={"datatype": "STRING"})).encode(),
    "string key as BYTES": json.dumps(_v2(driver_id={"datatype": "BYTES", "data": ["3", "3"]})).encode(),
    "float in an INT64 tensor": json.dumps(_v2(driver_id={"data": [3, 1.5]})).encode(),
    "UINT8 out of range": json.dumps(_v2(driver_id={"datatype": "UINT8", "data": [3, 300]})).encode(),
    "bool in an FP32 tensor": json.dumps(_v2(distance_km={"data": [1.0, True]})).encode(),
    "number in a BYTES tensor": json.dumps(_v2(zone={"data": ["north", 7]})).encode(),
    "shape and data disagree": json.dumps(_v2(zone={"shape": [3]})).encode(),
    "rows disagree": json.dumps(_v2(zone={"shape": [1], "data": ["north"]})).encode(),
    "zero rows": json.dumps({"inputs": tensors([])}).encode(),
    "input given twice": json.dumps({"inputs": tensors([ROW]) + tensors([ROW])[:1]}).encode(),
    "unknown input": json.dumps(_v2(zone={"name": "zonee"})).encode(),
    "missing required input": json.dumps(_v2(zone=None)).encode(),
    "null entity key": json.dumps(_v2(driver_id={"data": [3, None]})).encode(),
    "bad timestamp": json.dumps(_v2(requested_at={"data": ["2024-02-20T10:00:00Z", "soon"]})).encode(),
    "NaN": json.dumps(_v2()).replace("12.5", "NaN", 1).encode(),
    "lone surrogate": json.dumps(_v2(zone={"data": ["north", "\ud800"]})).encode(),
    "nested data deeper than the shape": json.dumps(_v2(zone={"shape": [2], "data": [["north"], ["north"]]})).encode(),
    "duplicate key": b'{"inputs": [], "inputs": []}',
    "duplicate key in a tensor": b'{"inputs": [{"name": "zone", "name": "driver_id", "shape": [1], "datatype": "BYTES", "data": ["north"]}]}',
}


def test_v2_malformed_requests_are_400_with_the_error_object(live, server_log):  # noqa: F811
    """Each malformed request: 400 {"error": "..."} naming the input and row (golden), no traceback,
    and the server keeps answering."""
    messages = {}
    for case, raw in V2_MALFORMED.items():
        status, headers, body = call(live.port, "POST", "/v2/models/tip_api/infer", raw=raw)
        messages[case] = assert_v2_error(status, body)
        assert headers.get("Connection") == "close", case
    check_golden("v2_errors.json", json.dumps(messages, indent=2) + "\n")
    assert not _tracebacks(server_log)
    assert call(live.port, "POST", "/v2/models/tip_api/infer", _v2())[0] == 200


def test_v2_limits_and_unrouted_paths(live, server_log):  # noqa: F811
    """H3: more than 1000 rows is 413; H1: an oversize body is 413 before it is read and a body
    shorter than its Content-Length is 408 within the body deadline, the connection closed; H5: an
    unknown path or method under /v2 answers the protocol's error object."""
    big = {"inputs": [{"name": "zone", "shape": [1001], "datatype": "BYTES", "data": ["north"] * 1001}]}
    status, headers, body = call(live.port, "POST", "/v2/models/tip_api/infer", big)
    assert "1001 > 1000" in assert_v2_error(status, body, 413) and headers["Connection"] == "close"
    with socket.create_connection(("127.0.0.1", live.port), timeout=10) as s:
        s.sendall(b"POST /v2/models/tip_api/infer HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 52428800\r\n\r\n")
        data, _ = _read_until_closed(s, 5)
    assert data.startswith(b"HTTP/1.1 413") and b'{"error":' in data
    with socket.create_connection(("127.0.0.1", live.port), timeout=10) as s:
        s.sendall(b"POST /v2/models/tip_api/infer HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"inputs\"")
        started = time.monotonic()
        data, closed = _read_until_closed(s, 8)
    assert data.startswith(b"HTTP/1.1 408") and closed and time.monotonic() - started < BODY_TIMEOUT_S + 2
    assert "not complete" in json.loads(data.split(b"\r\n\r\n", 1)[1])["error"]
    status, _, body = call(live.port, "GET", "/v2/models/tip_api/infer")
    assert_v2_error(status, body, 405)
    status, _, body = call(live.port, "GET", "/v2/nothing/here")
    assert_v2_error(status, body, 404)
    assert not _tracebacks(server_log)


# --- MLflow scoring protocol -------------------------------------------------------------------------


def test_invocations_every_body_format_answers_as_the_engine_route(live):
    rows = [ROW, UNKNOWN]
    expected = [p["prediction"] for p in engine_answer(live.port, rows)]
    columns = list(ROW)
    bodies = {
        "dataframe_split": {"dataframe_split": {"columns": columns, "data": [[r[c] for c in columns] for r in rows]}},
        "dataframe_split with index": {"dataframe_split": {"index": [0, 1], "columns": columns, "data": [[r[c] for c in columns] for r in rows]}},
        "dataframe_records": {"dataframe_records": rows},
        "instances": {"instances": rows},
        "inputs as rows": {"inputs": rows},
        "inputs as columns": {"inputs": {c: [r[c] for r in rows] for c in columns}},
    }
    for name, body in bodies.items():
        status, headers, answer = call(live.port, "POST", "/invocations", body)
        assert status == 200, (name, answer)
        assert answer == {"predictions": expected}, name
        assert headers["X-Engine-Job"] == "tip_api" and headers["X-Engine-Model"] == "model:tips_xgb@1"
    csv_body = ("driver_id,zone,distance_km,requested_at\n" + "\n".join(",".join(str(r[c]) for c in columns) for r in rows) + "\n").encode()
    status, _, answer = call(live.port, "POST", "/invocations", raw=csv_body, headers={"Content-Type": "text/csv"})
    assert status == 200 and answer == {"predictions": expected}
    for query, headers in (("?job=tip_api", {}), ("", {"X-Engine-Job": "tip_api"})):
        assert call(live.port, "POST", "/invocations" + query, bodies["instances"], headers=headers)[2] == {"predictions": expected}


MLFLOW_MALFORMED = {
    "no format key": (b'{"rows": []}', 400, "BAD_REQUEST"),
    "two format keys": (json.dumps({"instances": [ROW], "dataframe_records": [ROW]}).encode(), 400, "BAD_REQUEST"),
    "split without columns": (json.dumps({"dataframe_split": {"data": [[1]]}}).encode(), 400, "BAD_REQUEST"),
    "split row of the wrong length": (json.dumps({"dataframe_split": {"columns": ["driver_id", "zone"], "data": [[3]]}}).encode(), 400, "BAD_REQUEST"),
    "unnamed tensor": (json.dumps({"instances": [[3, "north"]]}).encode(), 400, "BAD_REQUEST"),
    "wrong type": (json.dumps({"dataframe_records": [ROW, {**ROW, "driver_id": "abc"}]}).encode(), 400, "BAD_REQUEST"),
    "missing column": (json.dumps({"dataframe_split": {"columns": ["driver_id"], "data": [[3], [4]]}}).encode(), 400, "BAD_REQUEST"),
    "NaN": (b'{"instances": [{"driver_id": 3, "zone": "n", "distance_km": NaN, "requested_at": "2024-01-01"}]}', 400, "BAD_REQUEST"),
    "unknown job": (json.dumps({"instances": [ROW]}).encode(), 404, "RESOURCE_DOES_NOT_EXIST"),
    "too many rows": (json.dumps({"dataframe_records": [ROW] * 1001}).encode(), 413, "REQUEST_LIMIT_EXCEEDED"),
}


def test_invocations_refusals_use_mlflows_error_shape(live, server_log):  # noqa: F811
    messages = {}
    for case, (raw, status_expected, code) in MLFLOW_MALFORMED.items():
        path = "/invocations?job=nope" if case == "unknown job" else "/invocations"
        status, _, body = call(live.port, "POST", path, raw=raw)
        messages[case] = assert_mlflow_error(status, body, status_expected, code)
    status, _, body = call(live.port, "POST", "/invocations?job=tip_api", {"instances": [ROW]}, headers={"X-Engine-Job": "other"})
    messages["query and header disagree"] = assert_mlflow_error(status, body, 400, "BAD_REQUEST")
    status, _, body = call(live.port, "POST", "/invocations", raw=b"<rows/>", headers={"Content-Type": "application/xml"})
    messages["unsupported content type"] = assert_mlflow_error(status, body, 415, "BAD_REQUEST")
    status, _, body = call(live.port, "GET", "/invocations")
    assert_mlflow_error(status, body, 405, "BAD_REQUEST")
    check_golden("mlflow_errors.json", json.dumps(messages, indent=2) + "\n")
    assert not _tracebacks(server_log)


SECOND_JOB = "  tip_logreg_api: {mode: online, model: tips_logreg@latest, keys: [driver_id, zone], request: [distance_km, requested_at]}\n"


def test_invocations_selects_one_of_several_jobs_by_query_or_header(rides_copy):
    spec = rides_copy / "specs" / "rides.yaml"
    spec.write_text(spec.read_text() + SECOND_JOB)
    with LiveServer(rides_copy) as server:
        status, _, body = call(server.port, "POST", "/invocations", {"instances": [ROW]})
        message = assert_mlflow_error(status, body, 400, "BAD_REQUEST")
        assert message == "the project has 2 online jobs: name one with ?job= or the X-Engine-Job header (tip_api, tip_logreg_api)"
        for query, headers in (("?job=tip_logreg_api", {}), ("", {"X-Engine-Job": "tip_logreg_api"})):
            status, got, body = call(server.port, "POST", "/invocations" + query, {"instances": [ROW]}, headers=headers)
            assert status == 200 and got["X-Engine-Job"] == "tip_logreg_api" and got["X-Engine-Model"] == "model:tips_logreg@1"
        _, _, direct = call(server.port, "POST", "/jobs/tip_logreg_api/predict", ROW)
        assert body == {"predictions": [direct["predictions"][0]["prediction"]]}
        assert call(server.port, "GET", "/v2/models/tip_logreg_api")[2]["platform"] == "engine_sklearn"


# --- OpenAPI --------------------------------------------------------------------------------------------


def test_openapi_describes_each_jobs_real_fields(live):
    status, _, doc = call(live.port, "GET", "/openapi.json")
    assert status == 200
    row = doc["components"]["schemas"]["TipApiRow"]
    assert row["additionalProperties"] is False
    assert row["required"] == ["driver_id", "zone", "distance_km", "requested_at"]
    props = row["properties"]
    assert props["driver_id"]["type"] == "integer"
    assert props["zone"]["type"] == "string"
    assert {"type": "number"} in props["distance_km"]["anyOf"]
    stamp = props["requested_at"]["anyOf"][0]
    assert (stamp["type"], stamp["format"]) == ("string", "date-time") and "ISO 8601" in stamp["description"]
    rows = doc["components"]["schemas"]["TipApiRows"]
    assert rows["properties"]["rows"]["maxItems"] == 1000 and rows["properties"]["rows"]["items"] == {"$ref": "#/components/schemas/TipApiRow"}
    body = doc["paths"]["/jobs/tip_api/predict"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"oneOf": [{"$ref": "#/components/schemas/TipApiRow"}, {"$ref": "#/components/schemas/TipApiRows"}]}
    assert "parameters" not in doc["paths"]["/jobs/tip_api/predict"]["post"]  # nothing but the body binds
    assert "/jobs/{job}/predict" in doc["paths"]
    for path in ("/v2/models/{name}/infer", "/v2/models/{name}/versions/{version}/infer", "/v2/health/ready", "/invocations"):
        assert path in doc["paths"], path
    assert "dataframe_split" in doc["paths"]["/invocations"]["post"]["requestBody"]["content"]["application/json"]["schema"]["properties"]


def test_openapi_job_model_agrees_with_the_engines_check(live):
    """The pydantic model of a job accepts what /jobs/<job>/predict accepts and refuses what it
    refuses (one row each way per kind of mistake)."""
    from pydantic import ValidationError

    from engine.serving.job_schemas import job_models

    state = live.app.state.holder.current
    row_model, _ = job_models(state.jobs)["tip_api"]
    assert list(row_model.model_fields)[:4] == list(ROW) and set(row_model.model_fields) == set(state.jobs["tip_api"].fields)
    row_model.model_validate(ROW)
    assert call(live.port, "POST", "/jobs/tip_api/predict", ROW)[0] == 200
    for bad in ({**ROW, "driver_id": "abc"}, {**ROW, "colour": "red"}, {k: v for k, v in ROW.items() if k != "zone"},
                {**ROW, "driver_id": None}, {**ROW, "zone": 7}, {**ROW, "driver_id": 1.5}):
        with pytest.raises(ValidationError):
            row_model.model_validate(bad)
        assert call(live.port, "POST", "/jobs/tip_api/predict", bad)[0] == 422, bad


# --- /docs and /redoc offline ----------------------------------------------------------------------------


def test_docs_and_redoc_are_served_offline(live):
    """Neither page names another host; every asset they reference is served by the app; Swagger UI's
    remote validator is off; a CSP keeps the browser's fetches on the endpoint; /static serves only
    its fixed list."""
    for page in ("/docs", "/redoc"):
        status, headers, html = call(live.port, "GET", page)
        assert status == 200 and headers["Content-Type"].startswith("text/html")
        text = html.decode()
        assert "connect-src 'self'" in headers["Content-Security-Policy"]
        remote = [u for u in re.findall(r"https?://[^\s\"'<>)]+", text) if not u.startswith(("http://127.0.0.1", "https://127.0.0.1"))]
        assert remote == [], remote
        refs = re.findall(r'(?:src|href|spec-url|data-openapi-url)="([^"]+)"', text)
        assert refs and all(r.startswith("/") for r in refs), refs
        for ref in refs:
            status, got, body = call(live.port, "GET", ref)
            assert status == 200 and len(body if isinstance(body, bytes) else json.dumps(body)) > 0, ref
        check_golden(f"docs_page{page.replace('/', '_')}.html", text)
    _, headers, init = call(live.port, "GET", "/static/swagger-init.js")
    assert b"validatorUrl: null" in init and headers["Content-Type"].startswith("text/javascript")
    _, headers, bundle = call(live.port, "GET", "/static/swagger-ui-bundle.js")
    assert len(bundle) > 1_000_000 and headers["Cache-Control"].startswith("public")
    for path in ("/static/../http.py", "/static/%2e%2e%2fhttp.py", "/static/http.py", "/static/nope.js"):
        assert call(live.port, "GET", path)[0] == 404, path


def test_a_bug_is_a_500_in_each_protocols_shape_and_the_server_stays_up(rides):
    """An exception inside scoring (a bug, simulated) answers 500 with the route's error shape and no
    traceback in the body; the next request is served."""
    with LiveServer(rides) as server:
        state = server.app.state.holder.current
        real = state.predict
        state.predict = lambda *a, **k: (_ for _ in ()).throw(RuntimeError("simulated bug at /secret/path"))  # type: ignore[method-assign]
        try:
            answers = {
                "engine": call(server.port, "POST", "/jobs/tip_api/predict", ROW),
                "v2": call(server.port, "POST", "/v2/models/tip_api/infer", {"inputs": tensors([ROW])}),
                "mlflow": call(server.port, "POST", "/invocations", {"instances": [ROW]}),
            }
        finally:
            state.predict = real  # type: ignore[method-assign]
        assert call(server.port, "POST", "/jobs/tip_api/predict", ROW)[0] == 200
    for name, (status, _, body) in answers.items():
        assert status == 500, (name, body)
        text = json.dumps(body)
        assert "RuntimeError" in text and "/secret/path" not in text and "Traceback" not in text, text
    assert set(answers["v2"][2]) == {"error"} and answers["mlflow"][2]["error_code"] == "INTERNAL_ERROR"
    assert set(answers["engine"][2]) == {"detail", "errors"}


# --- /metrics and the access log ---------------------------------------------------------------------------


def _samples(text: str) -> dict[tuple[str, tuple], float]:
    from prometheus_client.parser import text_string_to_metric_families

    return {(s.name, tuple(sorted(s.labels.items()))): s.value for fam in text_string_to_metric_families(text) for s in fam.samples}


def test_metrics_count_requests_latency_missing_entities_and_errors(rides):
    """A fresh app (its own registry): after two predicts (one with a key that has no online row),
    a 422, an unknown job, a v2 infer and an unmatched path, a scrape shows each."""
    with LiveServer(rides) as server:
        port = server.port
        assert call(port, "POST", "/jobs/tip_api/predict", ROW)[0] == 200
        assert call(port, "POST", "/jobs/tip_api/predict", {"rows": [ROW, UNKNOWN]})[0] == 200
        assert call(port, "POST", "/jobs/tip_api/predict", {**ROW, "driver_id": "abc"})[0] == 422
        assert call(port, "POST", "/jobs/nope/predict", ROW)[0] == 404
        assert call(port, "POST", "/v2/models/tip_api/infer", {"inputs": tensors([UNKNOWN])})[0] == 200
        assert call(port, "GET", "/etc/passwd")[0] == 404
        status, headers, text = call(port, "GET", "/metrics")
        _, open_headers, open_text = call(port, "GET", "/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"})
    assert open_headers["Content-Type"].startswith("application/openmetrics-text") and open_text.endswith(b"# EOF\n")
    assert status == 200 and headers["Content-Type"].startswith("text/plain; version=0.0.4")
    got = _samples(text.decode())

    def value(name: str, **labels: str) -> float:
        return got.get((name, tuple(sorted(labels.items()))), 0.0)

    assert value("engine_http_requests_total", route="/jobs/tip_api/predict", method="POST", status="200") == 2
    assert value("engine_http_requests_total", route="/jobs/tip_api/predict", method="POST", status="422") == 1
    assert value("engine_http_requests_total", route="/jobs/{job}/predict", method="POST", status="404") == 1
    assert value("engine_http_requests_total", route="/v2/models/{name}/infer", method="POST", status="200") == 1
    assert value("engine_http_requests_total", route="<unmatched>", method="GET", status="404") == 1
    assert value("engine_http_request_duration_seconds_count", route="/jobs/tip_api/predict") == 3
    assert value("engine_http_request_duration_seconds_sum", route="/jobs/tip_api/predict") > 0
    assert value("engine_http_errors_total", route="/jobs/tip_api/predict", code="invalid_request") == 1
    assert value("engine_http_errors_total", route="/jobs/{job}/predict", code="not_found") == 1
    for group in ("drivers", "driver_stats", "zone_demand"):  # UNKNOWN has no row in any joined group (H4)
        assert value("engine_missing_entities_total", job="tip_api", feature_group=group) == 2
    assert value("engine_scored_rows_total", job="tip_api") == 4


def test_two_apps_keep_separate_registries(rides):
    checked = api.validate(rides)
    root = Workspace.for_project(checked.project.root).root
    first, second = create_app(checked, root), create_app(checked, root)
    assert first.state.metrics.registry is not second.state.metrics.registry
    first.state.metrics.requests.labels("/x", "GET", "200").inc()
    assert b'route="/x"' in first.state.metrics.exposition()[0]
    assert b'route="/x"' not in second.state.metrics.exposition()[0]


ACCESS_KEYS = {"time", "method", "path", "status", "duration_ms", "rows", "job"}


def test_access_log_writes_one_json_line_per_request(rides):
    stream = io.StringIO()
    with LiveServer(rides, access_log=stream) as server:
        call(server.port, "POST", "/jobs/tip_api/predict?debug=secret", {"rows": [ROW, UNKNOWN]})
        call(server.port, "POST", "/v2/models/tip_api/infer", {"inputs": tensors([ROW, ROW, ROW])})
        call(server.port, "POST", "/invocations", raw=b"{")
        call(server.port, "GET", "/health")
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:  # H1: refused before reading
            s.sendall(b"POST /jobs/tip_api/predict HTTP/1.1\r\nHost: x\r\nContent-Length: 52428800\r\n\r\n")
            _read_until_closed(s, 5)
        deadline = time.monotonic() + 5
        while stream.getvalue().count("\n") < 5 and time.monotonic() < deadline:
            time.sleep(0.02)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert all(set(line) == ACCESS_KEYS for line in lines), lines
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", line["time"]) and line["duration_ms"] >= 0 for line in lines)
    short = [(line["method"], line["path"], line["status"], line["rows"], line["job"]) for line in lines]
    assert short == [
        ("POST", "/jobs/tip_api/predict", 200, 2, "tip_api"),  # the query string (request data) is not logged
        ("POST", "/v2/models/tip_api/infer", 200, 3, "tip_api"),
        ("POST", "/invocations", 400, None, None),
        ("GET", "/health", 200, None, None),
        ("POST", "/jobs/tip_api/predict", 413, None, None),
    ]


def test_access_log_to_a_logger(rides):
    records: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record.getMessage())

    logger = logging.getLogger("tests.serving.access")
    logger.setLevel(logging.INFO)
    logger.propagate = False
    logger.addHandler(Keep())
    with LiveServer(rides, access_log=logger) as server:
        assert call(server.port, "POST", "/invocations", {"instances": [ROW]})[0] == 200
    assert [json.loads(r)["job"] for r in records] == ["tip_api"] and json.loads(records[0])["rows"] == 1
