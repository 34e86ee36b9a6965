"""The real endpoint over loopback (uvicorn in a thread, http.client and raw sockets): routes,
headers, and the abuse cases H1-H7 and C2 of RELIABILITY.md, in bounded loops."""

from __future__ import annotations

import http.client
import json
import re
import socket
import threading
import time

import pytest

from engine import api
from tests.serving.conftest import LiveServer, check_golden, publish

ROW = {"driver_id": 3, "zone": "north", "distance_km": 12.5, "requested_at": "2024-02-20T10:00:00Z"}


def call(port: int, method: str, path: str, body: object = None, raw: bytes | None = None, headers: dict | None = None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    conn.request(method, path, body=data, headers={"Content-Type": "application/json", **(headers or {})})
    resp = conn.getresponse()
    text = resp.read()
    conn.close()
    return resp.status, {k.title(): v for k, v in resp.getheaders()}, (json.loads(text) if text[:1] in (b"{", b"[") else text)


def _rss_kb() -> int:
    with open("/proc/self/status") as fh:
        return int(re.search(r"VmRSS:\s+(\d+)", fh.read()).group(1))


def test_predict_single_and_batch_name_the_model_version(live):
    status, headers, body = call(live.port, "POST", "/jobs/tip_api/predict", ROW)
    assert status == 200, body
    assert headers["X-Engine-Model"] == "model:tips_xgb@1" == body["model"]
    assert headers["X-Engine-Snapshot"] == body["snapshot"]
    assert body["predictions"][0]["status"] == "ok" and body["predictions"][0]["prediction"] in (0, 1)
    status, _, batch = call(live.port, "POST", "/jobs/tip_api/predict", {"rows": [ROW, {**ROW, "driver_id": 5}]})
    assert status == 200 and len(batch["predictions"]) == 2
    assert batch["predictions"][0] == body["predictions"][0]
    status, headers, body = call(live.port, "POST", "/models/tips_logreg/predict?version=1", {"rows": [ROW]})
    assert status == 200 and headers["X-Engine-Model"] == "model:tips_logreg@1"


def test_health_metadata_docs_and_vectors(live):
    status, _, health = call(live.port, "GET", "/health")
    assert status == 200 and health["status"] == "ok"
    status, _, meta = call(live.port, "GET", "/metadata")
    assert meta["jobs"]["tip_api"]["model"] == "model:tips_xgb@1"
    assert meta["models"]["tips_xgb"] == {"versions": [1], "aliases": {"production": 1}, "latest": 1}
    assert call(live.port, "GET", "/docs")[0] == 200
    status, _, spec = call(live.port, "GET", "/openapi.json")
    assert "/jobs/{job}/predict" in spec["paths"]
    status, _, vec = call(live.port, "POST", "/feature_views/tips/vector", {k: v for k, v in ROW.items()})
    assert status == 200 and vec["vectors"][0]["values"]["hour_of_day"] == 10


def test_h4_unknown_keys_answer_missing(live):
    status, _, body = call(live.port, "POST", "/jobs/tip_api/predict", {"rows": [ROW, {**ROW, "driver_id": 4242, "zone": "west"}]})
    assert status == 200
    ok, missing = body["predictions"]
    assert ok["status"] == "ok" and missing["status"] == "missing"
    assert missing["missing"] == ["drivers", "driver_stats", "zone_demand"]
    _, _, vec = call(live.port, "POST", "/feature_views/tips/vector", {**ROW, "driver_id": 4242, "zone": "west"})
    values = vec["vectors"][0]["values"]
    assert values["driver_rating"] is None and values["trips_3d"] is None and values["zone_demand"] is None


def test_h2_invalid_rows_give_422_with_paths(live):
    """Wrong type, missing, extra, null key, NaN, duplicate keys: 422 naming each JSON path (golden)."""
    body = (b'{"rows": [' + json.dumps(ROW).encode() + b', {"driver_id": "abc", "zone": "north", "distance_km": 1, "colour": "red"},'
            b' {"driver_id": null, "zone": "x", "zone": "y", "distance_km": true, "requested_at": "soon"}]}')
    status, _, err = call(live.port, "POST", "/jobs/tip_api/predict", raw=body)
    assert status == 422
    check_golden("h2_errors.json", json.dumps(err, indent=2) + "\n")
    status, _, err = call(live.port, "POST", "/jobs/tip_api/predict", raw=b'{"driver_id": 3, "zone": "n", "distance_km": NaN, "requested_at": "2024-01-01"}')
    assert status == 422 and "NaN" in err["errors"][0]["message"]
    status, _, err = call(live.port, "POST", "/jobs/tip_api/predict", raw=b'{"distance_km": Infinity}')
    assert status == 422


def test_h3_too_many_rows_and_deep_json(live):
    status, _, err = call(live.port, "POST", "/jobs/tip_api/predict", {"rows": [ROW] * 1001})
    assert status == 413 and "1001" in err["detail"]
    status, _, err = call(live.port, "POST", "/jobs/tip_api/predict", raw=b"[" * 10_000 + b"]" * 10_000)
    assert status == 422
    status, _, err = call(live.port, "POST", "/jobs/tip_api/predict", raw=b'{"rows": ' + b"[" * 10_000 + b"]" * 10_000 + b"}")
    assert status == 422


@pytest.mark.parametrize("path", ["/models/../../etc/passwd/predict", "/models/%2e%2e%2fetc/predict", "/models/tips_xgb/predict?version=99",
                                  "/models/tips_xgb/predict?version=../x", "/jobs/Nope/predict", "/jobs/nope/predict", "/feature_views/nope/vector"])
def test_h5_unknown_or_hostile_names_are_404(live, path):
    assert call(live.port, "POST", path, ROW)[0] == 404


def _raw(port: int, head: bytes, timeout: float = 10) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.sendall(head)
    return s


def _status(s: socket.socket) -> int:
    data = b""
    while b"\r\n" not in data:
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
    return int(data.split(b" ")[1])


def test_h1_oversize_bodies_are_refused_before_being_read(live):
    """Content-Length over 1 MiB -> 413 at once; a lying small length -> never a 500; a chunked
    body over the cap -> 413; a 50 MB streamed body -> 413 quickly, with bounded RSS growth."""
    s = _raw(live.port, b"POST /jobs/tip_api/predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 52428800\r\n\r\n")
    assert _status(s) == 413
    s.close()
    chunk = b"x" * 65536
    s = _raw(live.port, b"POST /jobs/tip_api/predict HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
    started, before = time.monotonic(), _rss_kb()
    try:
        for _ in range(800):  # 50 MB of chunks, stopped by the server long before the end
            s.sendall(b"%x\r\n" % len(chunk) + chunk + b"\r\n")
    except OSError:
        pass
    assert _status(s) == 413
    s.close()
    assert time.monotonic() - started < 10
    assert _rss_kb() - before < 30_000  # KiB: the body is never held in full
    s = _raw(live.port, b"POST /jobs/tip_api/predict HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n" + json.dumps(ROW).encode())
    assert _status(s) in (400, 422)
    s.close()


def test_h6_slow_clients_do_not_block_a_legitimate_request(live):
    """Bounded slowloris: 20 connections trickling one header byte per second for ~5 s while a
    normal request succeeds (uvicorn has no header-read timeout, V20: the endpoint adds one; the
    100-client case and the deadline itself are in test_http_hardening.py)."""
    slow = [_raw(live.port, b"P") for _ in range(20)]
    stop = time.monotonic() + 5
    ok = 0
    try:
        while time.monotonic() < stop:
            for s in slow:
                try:
                    s.send(b"O")
                except OSError:
                    pass
            status, _, _ = call(live.port, "POST", "/jobs/tip_api/predict", ROW)
            ok += status == 200
            time.sleep(1)
    finally:
        for s in slow:
            s.close()
    assert ok >= 4


def test_c2_h7_hot_swap_is_monotonic_and_a_corrupt_model_is_never_loaded(rides_copy):
    """A new model version published while a client loop runs: answers switch v1 -> v2 once and
    none fails; then a snapshot whose artifact fails its hash check leaves v2 serving."""
    spec = rides_copy / "specs" / "rides.yaml"
    with LiveServer(rides_copy, poll_s=0.1) as server:
        seen: list[str] = []
        failures: list[object] = []
        stop = threading.Event()

        def client():
            while not stop.is_set():
                status, headers, body = call(server.port, "POST", "/jobs/tip_api/predict", ROW)
                if status != 200:
                    failures.append(body)
                else:
                    seen.append(headers["X-Engine-Model"])

        thread = threading.Thread(target=client)
        thread.start()
        try:
            spec.write_text(spec.read_text().replace("n_estimators: 10", "n_estimators: 12"))
            api.apply(rides_copy)  # publishes a snapshot with v2 itself
            v2 = publish(rides_copy, "v2")  # and another one, with the same model version
            deadline = time.monotonic() + 10
            while (not seen or seen[-1] != "model:tips_xgb@2") and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(0.3)
        finally:
            stop.set()
            thread.join()
        assert not failures
        assert seen[0] == "model:tips_xgb@1" and seen[-1] == "model:tips_xgb@2"
        switch = seen.index("model:tips_xgb@2")
        assert all(v == "model:tips_xgb@2" for v in seen[switch:])
        # The server may answer with v2 from the apply's snapshot before it reloads the last one.
        deadline = time.monotonic() + 10
        while call(server.port, "GET", "/health")[2]["snapshot"] != v2.name and time.monotonic() < deadline:
            time.sleep(0.05)
        serving = call(server.port, "GET", "/health")[2]["snapshot"]
        assert serving == v2.name

        artifact = rides_copy / ".engine" / "models" / "tips_xgb" / "2" / "model.ubj"
        data = bytearray(artifact.read_bytes())
        data[len(data) // 2] ^= 0xFF
        artifact.write_bytes(bytes(data))
        new = publish(rides_copy, "corrupt")
        time.sleep(0.6)
        status, headers, _ = call(server.port, "POST", "/jobs/tip_api/predict", ROW)
        assert status == 200 and headers["X-Engine-Model"] == "model:tips_xgb@2"
        health = call(server.port, "GET", "/health")[2]
        assert health["snapshot"] == serving != new.name
        assert "sha256 mismatch" in health["last_reload_error"]
