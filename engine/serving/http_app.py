"""The HTTP endpoint (FastAPI on uvicorn): routes, body limits, headers. The logic is
``engine.serving.server``'s; this module only moves bytes and maps errors to status codes.

Every predict response names the model version that answered (``model`` in the body and the
``X-Engine-Model`` header) and the snapshot (``X-Engine-Snapshot``). Limits (RELIABILITY H1-H6):
a body over 1 MiB is refused with 413 from its Content-Length, or while it streams (chunked),
before it is read in full, and the connection is closed; more than 1000 rows is 413; NaN,
duplicate keys, wrong types, unknown or missing fields are 422 with the JSON path of each error;
unknown jobs, models, versions or names that are not identifiers are 404.
"""


from contextlib import asynccontextmanager
from pathlib import Path

from engine.serving.server import MAX_BODY_BYTES, ServeError, StateHolder, body_rows, parse_json

_BODY_DOC = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": {
            "oneOf": [
                {"type": "object", "properties": {"rows": {"type": "array", "maxItems": 1000, "items": {"type": "object"}}}, "required": ["rows"]},
                {"type": "object", "description": "one row: entity keys and request values"},
            ]
        }}},
    }
}


def _error(exc: ServeError, snapshot: str | None):
    from fastapi.responses import JSONResponse

    headers = {"X-Engine-Snapshot": snapshot} if snapshot else {}
    if exc.status == 413:
        headers["Connection"] = "close"
    return JSONResponse(exc.body(), status_code=exc.status, headers=headers)


async def read_body(request, limit: int = MAX_BODY_BYTES) -> bytes:
    """The request body, refused with 413 from Content-Length or as soon as the stream passes ``limit``."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise ServeError(400, "invalid Content-Length")
        if int(declared) > limit:
            raise ServeError(413, f"body of {declared} bytes is over the {limit}-byte limit")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ServeError(413, f"body is over the {limit}-byte limit")
        chunks.append(chunk)
    return b"".join(chunks)


def create_app(project_path: str | Path, workspace: str | Path | None = None, *, poll_s: float = 0.5):
    """The ASGI app for a project: loads the spec, the CURRENT snapshot and the online jobs' models."""
    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse

    from engine import api
    from engine.state.workspace import Workspace

    checked = api.validate(project_path)
    ws = Workspace.for_project(checked.project.root, workspace)
    holder = StateHolder(checked.project, ws, poll_s=poll_s)

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
        except ServeError as exc:
            return _error(exc, state.snapshot_id)
        return answer(body, state, body["model"])

    @app.post("/models/{name}/predict", openapi_extra=_BODY_DOC, summary="Predict with a model version (latest unless ?version=)")
    async def model_predict(name: str, request: Request, version: str | None = None):
        state = holder.current
        try:
            rows = await rows_of(request)
            body = state.predict(state.model(name, version), rows)
        except ServeError as exc:
            return _error(exc, state.snapshot_id)
        return answer(body, state, body["model"])

    @app.post("/feature_views/{name}/vector", openapi_extra=_BODY_DOC, summary="Online feature vectors of a feature view")
    async def view_vector(name: str, request: Request):
        state = holder.current
        try:
            rows = await rows_of(request)
            body = state.vector(name, rows)
        except ServeError as exc:
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
