"""The HTTP endpoint (FastAPI on uvicorn): routes, body limits, headers, and the uvicorn launcher.
The logic is ``engine.serving.online``'s; this module only moves bytes and maps a
:class:`~engine.errors.RequestError` to its status code. It receives a checked project and its
workspace root: it neither loads nor validates a spec (the caller does), and must not import the
API, the runtime or the CLI. FastAPI and uvicorn are imported only when an app is built or run.

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
import os
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from engine.errors import RequestError, UsageError
from engine.serving.online import MAX_ROWS, StateHolder, body_rows, parse_json

if TYPE_CHECKING:
    from engine.compiler.semantics import CheckedProject

MAX_BODY_BYTES = 1 << 20
KEEP_ALIVE_S = 2
HEADER_TIMEOUT_S = 5.0  # connect (or first byte of a keep-alive head) -> complete request head
BODY_TIMEOUT_S = 3.0  # complete head -> complete body (1 MiB max)
MAX_CONNECTIONS = 1000  # open connections, slow or not; beyond: 503
MAX_HEADER_BYTES = 16 * 1024
LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})

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


def _error(exc: RequestError, snapshot: str | None):
    from fastapi.responses import JSONResponse

    headers = {"X-Engine-Snapshot": snapshot} if snapshot else {}
    if exc.status in (400, 408, 413):  # the body may be unread or half read: never reuse the connection
        headers["Connection"] = "close"
    return JSONResponse(exc.body(), status_code=exc.status, headers=headers)


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


def create_app(checked: "CheckedProject", workspace_root: Path, *, poll_s: float = 0.5):
    """The ASGI app of a checked project: loads the workspace's CURRENT snapshot and the online
    jobs' models, and follows each new snapshot (polled every ``poll_s`` seconds while serving)."""
    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse

    holder = StateHolder(checked.project, Path(workspace_root), poll_s=poll_s)

    @asynccontextmanager
    async def lifespan(app):
        holder.start()
        try:
            yield
        finally:
            holder.stop()

    app = FastAPI(title=f"engine: {checked.project.name}", description="Online predictions and feature vectors.", lifespan=lifespan)
    app.state.holder = holder

    def answer(body: dict, state, model_ref: str | None = None):
        headers = {"X-Engine-Snapshot": state.snapshot_id}
        if model_ref:
            headers["X-Engine-Model"] = model_ref
        return JSONResponse(body, headers=headers)

    async def rows_of(request: Request) -> list:
        return body_rows(parse_json(await read_body(request)))

    @app.post("/jobs/{job}/predict", openapi_extra=_BODY_DOC, summary="Predict with an online inference job")
    async def job_predict(job: str, request: Request):
        state = holder.current
        try:
            rows = await rows_of(request)
            ep = state.job(job)
            body = state.predict(ep, rows)
            body["job"] = job
        except RequestError as exc:
            return _error(exc, state.snapshot_id)
        return answer(body, state, body["model"])

    @app.post("/models/{name}/predict", openapi_extra=_BODY_DOC, summary="Predict with a model version (latest unless ?version=)")
    async def model_predict(name: str, request: Request, version: str | None = None):
        state = holder.current
        try:
            rows = await rows_of(request)
            body = state.predict(state.model(name, version), rows)
        except RequestError as exc:
            return _error(exc, state.snapshot_id)
        return answer(body, state, body["model"])

    @app.post("/feature_views/{name}/vector", openapi_extra=_BODY_DOC, summary="Online feature vectors of a feature view")
    async def view_vector(name: str, request: Request):
        state = holder.current
        try:
            rows = await rows_of(request)
            body = state.vector(name, rows)
        except RequestError as exc:
            return _error(exc, state.snapshot_id)
        return answer(body, state)

    @app.get("/health", summary="Liveness and the snapshot being served")
    async def health():
        state = holder.current
        return answer({"status": "ok", "snapshot": state.snapshot_id, "last_reload_error": holder.last_error}, state)

    @app.get("/metadata", summary="Online jobs, models and versions, feature views, snapshot")
    async def metadata():
        state = holder.current
        return answer(state.describe(), state)

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


def uvicorn_server(app, *, host: str = "127.0.0.1", port: int = 8000, log_level: str = "warning"):
    """A uvicorn server with the endpoint limits (H6, V20): request-head deadline, short
    keep-alive, bounded connections and headers (the body deadline is in :func:`read_body`)."""
    import uvicorn

    config = uvicorn.Config(
        app, host=host, port=port, http=_protocol_class(), loop="asyncio", lifespan="on",
        timeout_keep_alive=KEEP_ALIVE_S, limit_concurrency=MAX_CONNECTIONS,
        h11_max_incomplete_event_size=MAX_HEADER_BYTES, server_header=False,
        log_level=log_level, access_log=False,
    )
    return uvicorn.Server(config)


def serve(checked: "CheckedProject", workspace_root: Path, *, host: str = "127.0.0.1", port: int = 8000, allow_remote: bool = False) -> None:
    """Run the HTTP endpoint of a checked project until interrupted."""
    check_host(host, allow_remote)
    log_level = os.environ.get("ENGINE_LOG_LEVEL", "info")
    uvicorn_server(create_app(checked, workspace_root), host=host, port=port, log_level=log_level).run()
