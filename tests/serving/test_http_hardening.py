"""HTTP hardening (issue 13 item 5, RELIABILITY H1, H2, H6, V20, V23) against the real endpoint on
127.0.0.1: invalid Unicode and out-of-range values are 422 with the engine's error shape (never a
500 with a traceback), slow or silent clients are cut off by a header deadline and cannot starve
the endpoint, and a body shorter than its Content-Length is answered 408 and the connection closed.
Every loop is bounded in count and time; sockets only go to 127.0.0.1 and are always closed."""

from __future__ import annotations

import http.client
import json
import logging
import socket
import time

import pytest

from engine.serving.http import BODY_TIMEOUT_S, HEADER_TIMEOUT_S

ROW = {"driver_id": 3, "zone": "north", "distance_km": 12.5, "requested_at": "2024-02-20T10:00:00Z"}
ROUTES = ["/jobs/tip_api/predict", "/models/tips_logreg/predict", "/feature_views/tips/vector"]


def call(port: int, method: str, path: str, body: object = None, raw: bytes | None = None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        conn.request(method, path, body=data, headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        text = resp.read()
    finally:
        conn.close()
    return resp.status, (json.loads(text) if text[:1] == b"{" else text)


@pytest.fixture
def server_log():
    """Warnings and errors the server logs during the test (uvicorn, asyncio callbacks, engine)."""
    records: list[logging.LogRecord] = []

    class _Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = _Keep(logging.WARNING)
    loggers = [logging.getLogger(n) for n in ("uvicorn.error", "uvicorn.asgi", "asyncio", "engine")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.addHandler(handler)
        lg.setLevel(logging.WARNING)
    try:
        yield records
    finally:
        for lg, level in zip(loggers, levels):
            lg.removeHandler(handler)
            lg.setLevel(level)


def _tracebacks(records: list[logging.LogRecord]) -> list[str]:
    return [r.getMessage() + (f" {r.exc_info[1]!r}" if r.exc_info else "") for r in records if r.exc_info or r.levelno >= logging.ERROR]


def _assert_engine_error(status: int, body: object) -> None:
    assert status in (400, 422), (status, body)
    assert isinstance(body, dict) and set(body) == {"detail", "errors"} and isinstance(body["detail"], str), body
    assert body["errors"], body
    for err in body["errors"]:
        assert set(err) == {"path", "message"} and err["path"].startswith("$") and isinstance(err["message"], str), err


def _row(**changes) -> bytes:
    return json.dumps({**ROW, **changes}).encode()  # ensure_ascii: a lone surrogate stays a \\udXXX escape


INVALID = {
    "surrogate key": b'{"\\ud800": 1}',
    "surrogate key in rows": b'{"rows": [{"\\udfff": 1}]}',
    "surrogate key next to rows": b'{"rows": [], "\\ud800": 1}',
    "surrogate value": _row(zone="\ud800"),
    "two high surrogates": _row(zone="\ud800\ud800"),
    "low then high surrogate": _row(zone="\udc00\ud83d"),
    "surrogate timestamp": _row(requested_at="\udfff"),
    "year 1": _row(requested_at="0001-01-01T00:00:00Z"),
    "year 9999": _row(requested_at="9999-12-31T23:59:59Z"),
    "year 1 with offset": _row(requested_at="0001-01-01T00:00:00+01:00"),
    "year 9999 with offset": _row(requested_at="9999-12-31T23:59:59-01:00"),
    "before pandas min": _row(requested_at="1677-09-21T00:00:00Z"),
    "after pandas max": _row(requested_at="2262-04-12T00:00:00Z"),
    "february 30": _row(requested_at="2024-02-30T00:00:00Z"),
    "empty timestamp": _row(requested_at=""),
    "float literal overflowing to inf": _row(distance_km=1).replace(b'"distance_km": 1', b'"distance_km": 1e400'),
    "int too large for a float": _row(distance_km=10**400),
    "int wider than 128 bits": _row(driver_id=2**130),
}


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("case", list(INVALID))
def test_h2_invalid_unicode_and_out_of_range_values_are_422_without_traceback(live, server_log, route, case):
    status, body = call(live.port, "POST", route, raw=INVALID[case])
    _assert_engine_error(status, body)
    assert not _tracebacks(server_log)
    assert call(live.port, "GET", "/health")[0] == 200


@pytest.mark.parametrize("changes", [
    {"zone": "\ud83d\ude00"},  # a valid surrogate pair (an emoji) is fine
    {"requested_at": "2262-04-11T00:00:00Z"}, {"requested_at": "1677-09-22T00:00:00Z"},
    {"distance_km": 10**30}, {"driver_id": 2**127 - 1},
])
def test_h2_edge_values_inside_the_range_are_served(live, server_log, changes):
    status, body = call(live.port, "POST", "/jobs/tip_api/predict", raw=_row(**changes))
    assert status == 200, body
    assert not _tracebacks(server_log)


def _read_until_closed(s: socket.socket, limit_s: float) -> tuple[bytes, bool]:
    """What the server sends until it closes the connection (True) or ``limit_s`` passes (False)."""
    data, end = b"", time.monotonic() + limit_s
    while time.monotonic() < end:
        s.settimeout(max(0.01, end - time.monotonic()))
        try:
            chunk = s.recv(65536)
        except TimeoutError:
            return data, False
        except OSError:
            return data, True
        if not chunk:
            return data, True
        data += chunk
    return data, False


HEAD = b"POST /jobs/tip_api/predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"


@pytest.mark.parametrize("head,body", [
    (HEAD + b"Content-Length: 1000\r\n\r\n", _row()),
    (HEAD + b"Content-Length: 100\r\n\r\n", b""),
    (HEAD + b"Transfer-Encoding: chunked\r\n\r\n", b"5\r\n{\"dri\r\n"),
], ids=["length-larger-than-body", "no-body-at-all", "chunked-stalls"])
def test_h1_a_body_shorter_than_announced_is_answered_and_closed(live, server_log, head, body):
    assert BODY_TIMEOUT_S < 5
    with socket.create_connection(("127.0.0.1", live.port), timeout=10) as s:
        s.sendall(head + body)
        started = time.monotonic()
        data, closed = _read_until_closed(s, 8)
        elapsed = time.monotonic() - started
    assert data, "no answer within 8 s: the connection was held open"
    status = int(data.split(b" ", 2)[1])
    assert status in (400, 408) and elapsed < 5, (status, elapsed)
    assert closed, "the connection stayed open after the answer"
    _assert_engine_error(400, json.loads(data.split(b"\r\n\r\n", 1)[1]))
    assert not _tracebacks(server_log)
    assert call(live.port, "POST", "/jobs/tip_api/predict", ROW)[0] == 200


def test_h1_a_client_leaving_mid_body_leaves_no_traceback(live, server_log):
    with socket.create_connection(("127.0.0.1", live.port), timeout=10) as s:
        s.sendall(HEAD + b"Content-Length: 1000\r\n\r\n" + _row())
        time.sleep(0.2)
    time.sleep(0.5)
    assert not _tracebacks(server_log)
    assert call(live.port, "GET", "/health")[0] == 200


def test_h6_silent_trickling_and_idle_keep_alive_connections_are_closed(live):
    """V20: a connection that sends nothing, one that trickles its head one byte per 0.5 s, and a
    keep-alive connection that trickles its next head after a response are all closed by the server
    within the header deadline (uvicorn alone never closes any of the three)."""
    keep = http.client.HTTPConnection("127.0.0.1", live.port, timeout=10)
    keep.request("GET", "/health")
    resp = keep.getresponse()
    resp.read()
    assert resp.status == 200
    socks = {"silent": socket.create_connection(("127.0.0.1", live.port), timeout=10),
             "trickle": socket.create_connection(("127.0.0.1", live.port), timeout=10),
             "keep-alive": keep.sock}
    closed_at: dict[str, float] = {}
    started = time.monotonic()
    try:
        for i in range(int((HEADER_TIMEOUT_S + 3) / 0.5)):  # bounded: ~HEADER_TIMEOUT_S + 3 s
            for name, s in socks.items():
                if name in closed_at:
                    continue
                s.setblocking(False)
                try:
                    gone = s.recv(4096) is not None  # b"" (closed) or a 408 before closing
                except BlockingIOError:
                    gone = False
                except OSError:
                    gone = True
                if not gone and name != "silent":
                    try:
                        s.send(HEAD[i:i + 1] or b"a")
                    except OSError:
                        gone = True
                if gone:
                    closed_at[name] = time.monotonic() - started
            if len(closed_at) == len(socks):
                break
            time.sleep(0.5)
    finally:
        for s in socks.values():
            s.close()
        keep.close()
    assert set(closed_at) == set(socks), f"still open after {HEADER_TIMEOUT_S + 3} s: {set(socks) - set(closed_at)}"
    assert max(closed_at.values()) <= HEADER_TIMEOUT_S + 1.5, closed_at


def test_h6_hundred_slow_clients_do_not_starve_predict(live, server_log):
    """V20 slowloris: 100 connections to 127.0.0.1 trickle one header byte per second (reconnecting
    when the server cuts them off, so 100 are pending at all times) for ~12 s; meanwhile 10
    legitimate predict requests all get 200 with p99 (the max of 10) under 2 s."""
    head = HEAD + b"X-Slow: "

    def connect() -> list:
        s = socket.create_connection(("127.0.0.1", live.port), timeout=5)
        s.setblocking(False)
        return [s, 0]

    slow = [connect() for _ in range(100)]
    statuses, latencies, cut_off = [], [], 0
    try:
        for tick in range(12):
            tick_start = time.monotonic()
            for entry in slow:
                s, sent = entry
                try:
                    gone = s.recv(4096) is not None  # closed by the server (or answered 408)
                except BlockingIOError:
                    gone = False
                except OSError:
                    gone = True
                if not gone:
                    try:
                        s.send(head[sent:sent + 1] or b"a")
                        entry[1] += 1
                    except BlockingIOError:
                        pass
                    except OSError:
                        gone = True
                if gone:
                    s.close()
                    cut_off += 1
                    entry[:] = connect()
            if tick >= 2:
                t0 = time.monotonic()
                status, body = call(live.port, "POST", "/jobs/tip_api/predict", ROW)
                latencies.append(time.monotonic() - t0)
                statuses.append(status)
            time.sleep(max(0.0, 1.0 - (time.monotonic() - tick_start)))
    finally:
        for s, _ in slow:
            s.close()
    assert statuses == [200] * 10, statuses
    assert max(latencies) < 2, latencies
    assert cut_off >= 100, f"only {cut_off} slow connections were cut off by the header deadline"
    assert not _tracebacks(server_log)
