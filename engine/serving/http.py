"""The HTTP endpoint (FastAPI on uvicorn): routes, body limits, headers, and the uvicorn launcher.
The logic is ``engine.serving.online``'s; this module only moves bytes and maps a
:class:`~engine.errors.RequestError` to its status code. It receives a checked project and its
workspace root: it neither loads nor validates a spec (the caller does), and must not import the
API, the runtime or the CLI. FastAPI and uvicorn are imported only when an app is built or run.

Routes: the engine's own (``/jobs/{job}/predict``, one documented route per job, ``/models/{name}/predict``,
``/feature_views/{name}/vector``, ``/health``, ``/metadata``), the Open Inference Protocol v2
(``/v2/...``, ``engine.serving.inference_protocol``) and MLflow's ``/invocations``
(``engine.serving.mlflow_scoring``), all scored by the same ``OnlineState``; ``/metrics`` and the
JSON access log (``engine.serving.telemetry``); ``/docs``, ``/redoc`` and ``/static/*`` served from
the package (``engine.serving.docs``); ``/openapi.json`` with each job's fields
(``engine.serving.job_schemas``). The limits below hold on every route; each protocol answers
refusals in its own error shape.

Every predict response names the model version that answered (``model`` in the body and the
``X-Engine-Model`` header) and the snapshot (``X-Engine-Snapshot``). Limits (RELIABILITY H1-H6):
a body over 1 MiB is refused with 413 from its Content-Length, or while it streams (chunked),
before it is read in full, and the connection is closed; more than 1000 rows is 413; NaN,
duplicate keys, wrong types, unknown or missing fields are 422 with the JSON path of each error;
unknown jobs, models, versions or names that are not identifiers are 404; invalid Unicode (a
lone surrogate in a key or string) and out-of-range numbers or timestamps are 422.

Slow clients (RELIABILITY V20, H6). uvicorn has no header-read or body-read timeout, and its
``limit_concurrency`` counts every open connection, so 64 clients trickling header bytes turned
every real request into a 503. Here:

* a connection must deliver a complete request head within ``HEADER_TIMEOUT_S`` of connecting
  (or of the first byte of its next head on a keep-alive connection); otherwise it is answered
  408 and closed (:func:`_protocol_class`, a thin subclass of uvicorn's h11 protocol: one timer
  per connection, armed at connect, cancelled when the head is parsed; nothing per request);
* a request body must arrive within ``BODY_TIMEOUT_S`` of its head (a Content-Length larger than
  the body, a stalled chunked body): 408 and the connection is closed; a client that leaves
  mid-body is a 400 sent to nobody, never a traceback;
* idle keep-alive connections close after ``KEEP_ALIVE_S``;
* ``MAX_CONNECTIONS`` (uvicorn ``limit_concurrency``) caps open connections, pending or not
  (requests beyond it get 503). Since a slow client now holds a slot for at most a few seconds,
  the cap is set for file descriptors rather than to ration slow clients.

Run behind a proxy with its own read timeouts when exposed beyond loopback.
"""

# No ``from __future__ import annotations``: FastAPI reads the route signatures at run time, and
# ``Request`` is imported inside ``create_app``, so string annotations could not be resolved.
import asyncio
import functools
import json
import logging
import os
import sys
import uuid
from contextlib import asynccontextmanager
from pathlib import Path
from typing import IO, TYPE_CHECKING

from engine.errors import RequestError, UsageError
from engine.serving import docs
from engine.serving import inference_protocol as oip
from engine.serving import mlflow_scoring as mlflow
from engine.serving.job_schemas import add_job_schemas, request_body
from engine.serving.online import MAX_ROWS, StateHolder, body_rows, jsonable, parse_json
from engine.serving.telemetry import AccessLog, Metrics, TelemetryMiddleware, note

if TYPE_CHECKING:
    from engine.compiler.semantics import CheckedProject

MAX_BODY_BYTES = 1 << 20
KEEP_ALIVE_S = 2
HEADER_TIMEOUT_S = 5.0  # connect (or first byte of a keep-alive head) -> complete request head
BODY_TIMEOUT_S = 3.0  # complete head -> complete body (1 MiB max)
MAX_CONNECTIONS = 1000  # open connections, slow or not; beyond: 503
MAX_HEADER_BYTES = 16 * 1024
LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})
ACCESS_LOGGER = "engine.serving.access"

_DESCRIPTION = """Online predictions and feature vectors of the project's online inference jobs.

Three ways to ask the same job, all scored by the same online service (same feature lookups, same
on-demand functions): the engine's own `POST /jobs/<job>/predict` (one row or `{"rows": [...]}`),
the Open Inference Protocol v2 (`POST /v2/models/<job>/infer`, one input tensor per field), and
MLflow's scoring protocol (`POST /invocations`, job by `?job=` or the `X-Engine-Job` header when the
project has several). Operations: `GET /metrics` (Prometheus), `/docs`, `/redoc` (served offline)."""

_BODY_DOC = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": {
            "oneOf": [
                {"type": "object", "properties": {"rows": {"type": "array", "maxItems": MAX_ROWS, "items": {"type": "object"}}}, "required": ["rows"]},
                {"type": "object", "description": "one row: entity keys and request values"},
            ]
        }}},
    }
}


def _refusal(status: int, body: dict, snapshot: str | None):
    from fastapi.responses import JSONResponse

    headers = {"X-Engine-Snapshot": snapshot} if snapshot else {}
    if status in (400, 408, 413):  # the body may be unread or half read: never reuse the connection
        headers["Connection"] = "close"
    return JSONResponse(body, status_code=status, headers=headers)


def _error(exc: RequestError, snapshot: str | None):
    return _refusal(exc.status, exc.body(), snapshot)


async def read_body(request, limit: int = MAX_BODY_BYTES, timeout_s: float = BODY_TIMEOUT_S) -> bytes:
    """The request body, refused with 413 from Content-Length or as soon as the stream passes
    ``limit``; 408 if it is not complete within ``timeout_s`` (a Content-Length larger than the body
    would otherwise hold the connection forever, V20); 400 if the client leaves mid-body."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise RequestError(400, "invalid Content-Length")
        if int(declared) > limit:
            raise RequestError(413, f"body of {declared} bytes is over the {limit}-byte limit")
    chunks, size = [], 0
    receive = request.receive
    try:
        async with asyncio.timeout(timeout_s):
            while True:
                message = await receive()
                if message["type"] != "http.request":  # http.disconnect
                    raise RequestError(400, "the client disconnected before the body was complete", [{"path": "$", "message": f"body incomplete ({size} bytes received)"}])
                chunk = message.get("body", b"")
                size += len(chunk)
                if size > limit:
                    raise RequestError(413, f"body is over the {limit}-byte limit")
                chunks.append(chunk)
                if not message.get("more_body", False):
                    break
    except TimeoutError:
        expected = f" of {declared}" if declared is not None else ""
        raise RequestError(408, f"the request body was not complete within {timeout_s:g} s",
                           [{"path": "$", "message": f"body incomplete ({size}{expected} bytes received)"}]) from None
    return b"".join(chunks)


def create_app(checked: "CheckedProject", workspace_root: Path, *, poll_s: float = 0.5, access_log: "logging.Logger | IO[str] | None" = None,
               prediction_log=None, allow_code_drift: bool = False):
    """The ASGI app of a checked project: loads the workspace's CURRENT snapshot and the online
    jobs' models, and follows each new snapshot (polled every ``poll_s`` seconds while serving).

    ``access_log``: where the JSON access-log lines go, a logger (at INFO) or a text stream;
    by default the ``engine.serving.access`` logger. Metrics are on ``app.state.metrics``, a
    registry of this app's own.

    ``prediction_log``: the request log of monitored jobs (``engine.monitor.spool.PredictionSpool``:
    ``wants(job)``, ``record(...)``, ``close()``), given by the caller; None logs nothing. A
    sampled request's rows, feature vectors and predictions are queued after it is answered
    without error; logging never fails or delays a request."""
    from fastapi import FastAPI, Request
    from fastapi.exception_handlers import http_exception_handler
    from fastapi.responses import HTMLResponse, JSONResponse, Response
    from starlette.exceptions import HTTPException as StarletteHTTPException

    holder = StateHolder(checked.project, Path(workspace_root), poll_s=poll_s, allow_code_drift=allow_code_drift)
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app):
        holder.start()
        try:
            yield
        finally:
            holder.stop()
            if prediction_log is not None:
                prediction_log.close()

    app = FastAPI(title=f"engine: {checked.project.name}", description=_DESCRIPTION, version=_engine_version(),
                  lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.holder = holder
    app.state.metrics = metrics
    app.add_middleware(TelemetryMiddleware, metrics=metrics, access_log=AccessLog(access_log if access_log is not None else logging.getLogger(ACCESS_LOGGER)))

    def answer(body: dict, state, model_ref: str | None = None, **extra: str):
        headers = {"X-Engine-Snapshot": state.snapshot_id, **extra}
        if model_ref:
            headers["X-Engine-Model"] = model_ref
        return JSONResponse(body, headers=headers)

    async def rows_of(request: Request) -> list:
        return body_rows(parse_json(await read_body(request)))

    def log_predictions(job: str, state, ep, rows: list, body: dict, from_text: bool = False) -> None:
        """Queue a sampled request of a monitored job: the vectors it was scored on and the answer."""
        if prediction_log is None or not prediction_log.wants(job):
            return
        try:
            vectors = state._vectors(ep.service, ep.fields, rows, from_text)
            features = [{k: jsonable(v) for k, v in vr.values.items()} for vr in vectors]
            prediction_log.record(job, body["model"], state.snapshot_id, features, body["predictions"])
        except Exception:  # noqa: BLE001 — the request was answered; its log entry is dropped
            logging.getLogger("engine.serving").exception("request log failed for job %s", job)

    # --- the engine's own routes ------------------------------------------------------------------

    async def predict_job(job: str, request: Request):
        state = holder.current
        try:
            rows = await rows_of(request)
            ep = state.job(job)
            note(request.scope, job=job, rows=len(rows))
            body = state.predict(ep, rows)
            note(request.scope, predictions=body["predictions"])
            log_predictions(job, state, ep, rows, body)
            body["job"] = job
        except RequestError as exc:
            return _error(exc, state.snapshot_id)
        return answer(body, state, body["model"])

    def job_route(job: str):
        async def predict_this_job(request: Request):  # no parameter but the request: nothing else to bind
            return await predict_job(job, request)

        return predict_this_job

    for name in sorted(holder.current.jobs):  # one documented route per job (schemas: job_schemas)
        app.add_api_route(f"/jobs/{name}/predict", job_route(name), methods=["POST"], summary=f"Predict with the online job '{name}'",
                          openapi_extra={"requestBody": request_body(name)}, tags=["jobs"])

    @app.post("/jobs/{job}/predict", openapi_extra=_BODY_DOC, summary="Predict with an online inference job", tags=["jobs"])
    async def job_predict(job: str, request: Request):
        return await predict_job(job, request)

    @app.post("/models/{name}/predict", openapi_extra=_BODY_DOC, summary="Predict with a model version (latest unless ?version=)", tags=["models"])
    async def model_predict(name: str, request: Request, version: str | None = None):
        state = holder.current
        try:
            rows = await rows_of(request)
            ep = state.model(name, version)
            note(request.scope, job=f"model:{name}", rows=len(rows))
            body = state.predict(ep, rows)
            note(request.scope, predictions=body["predictions"])
        except RequestError as exc:
            return _error(exc, state.snapshot_id)
        return answer(body, state, body["model"])

    @app.post("/feature_views/{name}/vector", openapi_extra=_BODY_DOC, summary="Online feature vectors of a feature view", tags=["feature views"])
    async def view_vector(name: str, request: Request):
        state = holder.current
        try:
            rows = await rows_of(request)
            state.view(name)  # 404 before the name reaches a metric label
            note(request.scope, job=f"feature_view:{name}", rows=len(rows))
            body = state.vector(name, rows)
            note(request.scope, predictions=body["vectors"])
        except RequestError as exc:
            return _error(exc, state.snapshot_id)
        return answer(body, state)

    @app.get("/health", summary="Liveness and the snapshot being served", tags=["service"])
    async def health():
        state = holder.current
        return answer({"status": "ok", "snapshot": state.snapshot_id, "last_reload_error": holder.last_error}, state)

    @app.get("/metadata", summary="Online jobs, models and versions, feature views, snapshot", tags=["service"])
    async def metadata():
        state = holder.current
        return answer(state.describe(), state)

    # --- Open Inference Protocol v2 (engine.serving.inference_protocol) -----------------------------

    def v2_error(exc: RequestError, state):
        status, body = oip.error_body(exc)
        return _refusal(status, body, state.snapshot_id)

    async def v2_infer(name: str, version: str | None, request: Request):
        state = holder.current
        try:
            doc = parse_json(await read_body(request))
            ep = state.job(name)
            oip.served_version(name, ep, version)
            request_id, rows, requested = oip.request_rows(doc, ep.fields)
            note(request.scope, job=name, rows=len(rows))
            body = state.predict(ep, rows)
            note(request.scope, predictions=body["predictions"])
            log_predictions(name, state, ep, rows, body)
        except RequestError as exc:
            return v2_error(exc, state)
        return answer(oip.infer_response(name, ep, request_id or uuid.uuid4().hex, body, requested), state, body["model"])

    def v2_model(name: str, version: str | None):
        state = holder.current
        try:
            ep = state.job(name)
            oip.served_version(name, ep, version)
        except RequestError as exc:
            return v2_error(exc, state)
        return answer(oip.model_metadata(name, ep), state, ep.model.ref)

    def v2_ready(name: str | None, version: str | None):
        state = holder.current
        try:
            if name is not None:
                oip.served_version(name, state.job(name), version)
            problem = oip.ready_problem(state, name)
        except RequestError as exc:
            return v2_error(exc, state)
        if problem:
            return _refusal(400, {"error": problem}, state.snapshot_id)
        return answer({"name": name, "ready": True} if name else {"ready": True}, state)

    v2 = {"tags": ["Open Inference Protocol v2"]}
    infer_doc = {"openapi_extra": {"requestBody": {"required": True, "content": {"application/json": {"schema": oip.REQUEST_SCHEMA}}}}, **v2}

    @app.get("/v2", summary="Server metadata", **v2)
    async def v2_server():
        return {"name": "engine", "version": _engine_version(), "extensions": []}

    @app.get("/v2/health/live", summary="Server live", **v2)
    async def v2_live():
        return {"live": True}

    @app.get("/v2/health/ready", summary="Server ready: every online job can answer (400 otherwise)", **v2)
    async def v2_server_ready():
        return v2_ready(None, None)

    @app.get("/v2/models/{name}", summary="Model metadata of an online job: inputs, outputs, version", **v2)
    async def v2_metadata(name: str):
        return v2_model(name, None)

    @app.get("/v2/models/{name}/versions/{version}", summary="Model metadata of the version a job serves", **v2)
    async def v2_version_metadata(name: str, version: str):
        return v2_model(name, version)

    @app.get("/v2/models/{name}/ready", summary="Model ready", **v2)
    async def v2_model_ready(name: str):
        return v2_ready(name, None)

    @app.get("/v2/models/{name}/versions/{version}/ready", summary="Model version ready", **v2)
    async def v2_version_ready(name: str, version: str):
        return v2_ready(name, version)

    @app.post("/v2/models/{name}/infer", summary="Predict with an online job: one input tensor per field", **infer_doc)
    async def v2_model_infer(name: str, request: Request):
        return await v2_infer(name, None, request)

    @app.post("/v2/models/{name}/versions/{version}/infer", summary="Predict with the version a job serves", **infer_doc)
    async def v2_version_infer(name: str, version: str, request: Request):
        return await v2_infer(name, version, request)

    # --- MLflow scoring protocol (engine.serving.mlflow_scoring) -------------------------------------

    @app.post("/invocations", summary="Predict, MLflow scoring protocol (job: the only one, ?job= or X-Engine-Job)",
              openapi_extra={"requestBody": mlflow.REQUEST_BODY}, tags=["MLflow scoring protocol"])
    async def invocations(request: Request, job: str | None = None):
        state = holder.current
        try:
            raw = await read_body(request)
            name = mlflow.select_job(state, job, request.headers.get(mlflow.JOB_HEADER))
            ep = state.job(name)
            media = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
            if media == "text/csv":
                rows = mlflow.csv_rows(raw)
            elif media in ("application/json", ""):
                rows = mlflow.json_rows(parse_json(raw))
            else:
                raise RequestError(415, f"unsupported content type {media[:60]!r}: send application/json or text/csv")
            note(request.scope, job=name, rows=len(rows))
            body = state.predict(ep, rows, from_text=media == "text/csv")
            note(request.scope, predictions=body["predictions"])
            log_predictions(name, state, ep, rows, body, from_text=media == "text/csv")
        except RequestError as exc:
            status, err = mlflow.error_body(exc)
            return _refusal(status, err, state.snapshot_id)
        return answer(mlflow.predictions(body), state, body["model"], **{"X-Engine-Job": name})

    # --- protocol error shapes for paths no route matched, or a method no route has ----------------

    @app.exception_handler(StarletteHTTPException)
    async def protocol_http_error(request: Request, exc: StarletteHTTPException):
        path = request.url.path
        if path == "/v2" or path.startswith("/v2/"):
            return JSONResponse({"error": str(exc.detail)}, status_code=exc.status_code, headers=exc.headers)
        if path == "/invocations":
            status, err = mlflow.error_body(RequestError(exc.status_code, str(exc.detail)))
            return JSONResponse(err, status_code=status, headers=exc.headers)
        return await http_exception_handler(request, exc)

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception):
        """A bug: 500 in the route's protocol shape, never a traceback (the server log has it)."""
        path = request.url.path
        message = f"internal error ({type(exc).__name__}); the server log has the details"
        if path == "/v2" or path.startswith("/v2/"):
            body: dict = {"error": message}
        elif path == "/invocations":
            body = {"error_code": "INTERNAL_ERROR", "message": message}
        else:
            body = {"detail": message, "errors": []}
        return JSONResponse(body, status_code=500, headers={"Connection": "close"})

    # --- operations: metrics, offline docs, OpenAPI with the jobs' real fields ---------------------

    @app.get("/metrics", include_in_schema=False)
    async def prometheus_metrics(request: Request):
        body, media = metrics.exposition(request.headers.get("accept", ""))
        return Response(body, headers={"Content-Type": media})

    page_headers = {"Content-Security-Policy": docs.CSP, "X-Content-Type-Options": "nosniff", "Cache-Control": "no-cache"}

    @app.get("/docs", include_in_schema=False)
    async def swagger(request: Request):
        return HTMLResponse(docs.swagger_page(app.title, request.scope.get("root_path", "")), headers=page_headers)

    @app.get("/redoc", include_in_schema=False)
    async def redoc(request: Request):
        return HTMLResponse(docs.redoc_page(app.title, request.scope.get("root_path", "")), headers=page_headers)

    @app.get("/static/{name}", include_in_schema=False)
    async def static_asset(name: str):
        found = docs.asset(name)
        if found is None:
            return JSONResponse({"detail": f"no asset {name[:60]!r}", "errors": []}, status_code=404)
        data, media = found
        return Response(data, headers={"Content-Type": media, "Cache-Control": "public, max-age=86400", "X-Content-Type-Options": "nosniff"})

    openapi_cache: dict[str, dict] = {}

    def openapi() -> dict:
        """FastAPI's document plus each job's request schema, from the snapshot being served."""
        from fastapi.openapi.utils import get_openapi

        state = holder.current
        if state.snapshot_id not in openapi_cache:
            doc = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
            openapi_cache.clear()
            openapi_cache[state.snapshot_id] = add_job_schemas(doc, state.jobs)
        return openapi_cache[state.snapshot_id]

    app.openapi = openapi  # type: ignore[method-assign]
    return app


# --- uvicorn ------------------------------------------------------------------------------------


def check_host(host: str, allow_remote: bool) -> None:
    """Refuse a non-loopback bind address unless ``allow_remote`` (DESIGN §5)."""
    if host not in LOOPBACK and not allow_remote:
        raise UsageError(f"refusing to bind {host}: the endpoint has no authentication; use 127.0.0.1 or pass --allow-remote")


_HEAD_TIMEOUT_BODY = json.dumps({"detail": f"request head not received within {HEADER_TIMEOUT_S:g} s", "errors": []}).encode()
_HEAD_TIMEOUT_RESPONSE = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\nconnection: close\r\n"
    b"content-length: %d\r\n\r\n%s" % (len(_HEAD_TIMEOUT_BODY), _HEAD_TIMEOUT_BODY)
)


@functools.cache
def _protocol_class():
    """uvicorn's h11 protocol with a request-head deadline (V20, H6): armed when a connection is
    made, or when the first byte of a new head arrives on a keep-alive connection, cancelled as
    soon as h11 has parsed the head. On expiry the client gets a 408 and the connection is closed,
    so a client trickling (or never sending) its head holds a slot for ``HEADER_TIMEOUT_S`` at most."""
    import h11
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class GuardedH11Protocol(H11Protocol):
        _head_deadline: asyncio.TimerHandle | None = None

        def connection_made(self, transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._head_deadline = self.loop.call_later(HEADER_TIMEOUT_S, self._head_timeout)

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            if self.conn.their_state is h11.IDLE:  # (part of) a head is pending
                if self._head_deadline is None:
                    self._head_deadline = self.loop.call_later(HEADER_TIMEOUT_S, self._head_timeout)
            elif self._head_deadline is not None:  # head parsed (or the connection failed)
                self._head_deadline.cancel()
                self._head_deadline = None

        def connection_lost(self, exc: Exception | None) -> None:
            if self._head_deadline is not None:
                self._head_deadline.cancel()
                self._head_deadline = None
            super().connection_lost(exc)

        def _head_timeout(self) -> None:
            self._head_deadline = None
            if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
                self.transport.write(_HEAD_TIMEOUT_RESPONSE)
                self.transport.close()

    return GuardedH11Protocol


def uvicorn_server(app, *, host: str = "127.0.0.1", port: int = 8000, log_level: str = "warning", own_logging: bool = True):
    """A uvicorn server with the endpoint limits (H6, V20): request-head deadline, short
    keep-alive, bounded connections and headers (the body deadline is in :func:`read_body`).
    ``own_logging=False``: leave the ``uvicorn`` loggers as the caller configured them (JSON logs)."""
    import uvicorn

    extra = {} if own_logging else {"log_config": None}
    config = uvicorn.Config(
        app, host=host, port=port, http=_protocol_class(), loop="asyncio", lifespan="on",
        timeout_keep_alive=KEEP_ALIVE_S, limit_concurrency=MAX_CONNECTIONS,
        h11_max_incomplete_event_size=MAX_HEADER_BYTES, server_header=False,
        log_level=log_level, access_log=False, **extra,
    )
    return uvicorn.Server(config)


def _engine_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("engine")
    except PackageNotFoundError:
        return "0+unknown"


def serve(checked: "CheckedProject", workspace_root: Path, *, host: str = "127.0.0.1", port: int = 8000, allow_remote: bool = False,
          prediction_log=None, own_logging: bool = True, allow_code_drift: bool = False) -> None:
    """Run the HTTP endpoint of a checked project until interrupted (access log: JSON lines on
    stderr); ``prediction_log``: as for :func:`create_app`; ``own_logging``: as for :func:`uvicorn_server`."""
    check_host(host, allow_remote)
    log_level = os.environ.get("ENGINE_LOG_LEVEL", "info")
    access = sys.stderr if own_logging else logging.getLogger(ACCESS_LOGGER)  # JSON logs: through the caller's handlers
    app = create_app(checked, workspace_root, access_log=access, prediction_log=prediction_log, allow_code_drift=allow_code_drift)
    uvicorn_server(app, host=host, port=port, log_level=log_level, own_logging=own_logging).run()
