"""What the HTTP endpoint reports about itself: Prometheus metrics on a registry of its own (one per
app, never the process-global one) and one JSON access-log line per request, both fed by one ASGI
middleware that times every request. Handlers add what only they know (job, rows, entity lookups
that found no row) with :func:`note`. Must not import the runtime, the API or the CLI;
``prometheus_client`` is imported only when an app is built.

Metrics (``GET /metrics``, text format 0.0.4, or OpenMetrics if the scraper's Accept asks for it):

* ``engine_http_requests_total{route, method, status}``: every answered request; ``route`` is the
  route template (``/v2/models/{name}/infer``), ``<unmatched>`` for a path no route knows, so
  hostile URLs cannot grow the label set (H5);
* ``engine_http_request_duration_seconds{route}``: latency histogram, head parsed to last byte;
* ``engine_http_errors_total{route, code}``: answers >= 400 by error code (:data:`ERROR_CODES`);
* ``engine_missing_entities_total{job, feature_group}``: key lookups that found no online row (H4);
* ``engine_scored_rows_total{job}``: rows answered by predict and vector routes.

Access log: ``{"time", "method", "path", "status", "duration_ms", "rows", "job"}`` as one JSON line
(the path without its query string: query values are request data).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import Counter as _Tally
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import IO, Any

NOTE_KEY = "engine.note"  # the ASGI scope key of a request's RequestNote
UNMATCHED = "<unmatched>"
CLIENT_GONE = 499  # status recorded when the client left before an answer (nginx's convention)

ERROR_CODES = {
    400: "bad_request", 404: "not_found", 405: "method_not_allowed", 408: "request_timeout",
    409: "conflict", 413: "too_large", 422: "invalid_request", 499: "client_closed",
    500: "internal_error", 503: "unavailable",
}
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


@dataclass
class RequestNote:
    """What a handler knows about its request: the job (or model / feature view) that answered,
    how many rows, and per feature group how many key lookups found no online row."""

    job: str | None = None
    rows: int | None = None
    missing: _Tally = field(default_factory=_Tally)


def note(scope: dict, *, job: str | None = None, rows: int | None = None, predictions: list | None = None) -> None:
    """Record ``job``, ``rows`` and the missing lookups of ``predictions`` (the items of a predict
    or vector body, each with an optional ``missing`` list) on the request being served."""
    record = scope.get(NOTE_KEY)
    if record is None:  # an app without the middleware (tests driving a route directly)
        return
    if job is not None:
        record.job = job
    if rows is not None:
        record.rows = rows
    for item in predictions or ():
        record.missing.update(item.get("missing", ()))


def error_code(status: int) -> str:
    """The metric label of an error status.

    >>> error_code(413), error_code(418)
    ('too_large', 'http_418')
    """
    return ERROR_CODES.get(status, f"http_{status}")


class Metrics:
    """The endpoint's Prometheus metrics, on a :class:`prometheus_client.CollectorRegistry` of its own."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Histogram

        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter("engine_http_requests", "HTTP requests answered, by route template, method and status code", ["route", "method", "status"], registry=r)
        self.latency = Histogram("engine_http_request_duration_seconds", "Time from the parsed request head to the last byte of the answer", ["route"], buckets=LATENCY_BUCKETS, registry=r)
        self.errors = Counter("engine_http_errors", "Answers with a status >= 400, by route template and error code", ["route", "code"], registry=r)
        self.missing = Counter("engine_missing_entities", "Entity-key lookups that found no online feature row", ["job", "feature_group"], registry=r)
        self.rows = Counter("engine_scored_rows", "Rows answered by predict and vector routes", ["job"], registry=r)

    def observe(self, route: str, method: str, status: int, seconds: float, record: RequestNote) -> None:
        self.requests.labels(route, method, str(status)).inc()
        self.latency.labels(route).observe(seconds)
        if status >= 400:
            self.errors.labels(route, error_code(status)).inc()
        if record.job is not None:
            if record.rows and status < 400:
                self.rows.labels(record.job).inc(record.rows)
            for group, count in record.missing.items():
                self.missing.labels(record.job, group).inc(count)

    def exposition(self, accept: str = "") -> tuple[bytes, str]:
        """(body, content type) of a scrape, in the format the ``Accept`` header asks for (text
        0.0.4 by default, OpenMetrics when asked), as prometheus_client's own exporters negotiate."""
        from prometheus_client.exposition import choose_encoder

        encoder, media = choose_encoder(accept)
        return encoder(self.registry), media


class AccessLog:
    """One JSON line per request, to a :class:`logging.Logger` (at INFO) or a text stream."""

    def __init__(self, sink: logging.Logger | IO[str], clock: Callable[[], float] = time.time) -> None:
        self.sink, self.clock = sink, clock

    def write(self, *, method: str, path: str, status: int, seconds: float, record: RequestNote) -> None:
        line = json.dumps({
            "time": datetime.fromtimestamp(self.clock(), timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "method": method, "path": path, "status": status, "duration_ms": round(seconds * 1000, 3),
            "rows": record.rows, "job": record.job,
        })
        if isinstance(self.sink, logging.Logger):
            self.sink.info(line)
        else:
            self.sink.write(line + "\n")
            self.sink.flush()


class TelemetryMiddleware:
    """Pure ASGI middleware (the body stream and disconnects pass through untouched, so the body
    limits and deadlines of ``engine.serving.http.read_body`` hold): times each HTTP request,
    takes the status from ``http.response.start``, then feeds :class:`Metrics` and :class:`AccessLog`.
    An exception escaping the app counts as 500 (the server answers 500), a cancelled request as 499."""

    def __init__(self, app: Any, metrics: Metrics, access_log: AccessLog | None, clock: Callable[[], float] = time.perf_counter) -> None:
        self.app, self.metrics, self.access_log, self.clock = app, metrics, access_log, clock

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        record = RequestNote()
        scope[NOTE_KEY] = record
        started = self.clock()
        status: int | None = None

        async def send_status(message: dict) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        except asyncio.CancelledError:
            status = status or CLIENT_GONE
            raise
        except Exception:
            status = status or 500
            raise
        finally:
            seconds = self.clock() - started
            route = getattr(scope.get("route"), "path", None) or UNMATCHED
            final = status or CLIENT_GONE
            try:
                self.metrics.observe(route, scope["method"], final, seconds, record)
                if self.access_log is not None:
                    self.access_log.write(method=scope["method"], path=scope["path"], status=final, seconds=seconds, record=record)
            except Exception:  # noqa: BLE001 — reporting must never turn an answer into a 500
                logging.getLogger("engine.serving").exception("telemetry failed for %s %s", scope["method"], route)
