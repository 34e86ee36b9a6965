"""HTTP predict latency and throughput over loopback (issue 4 item 8).

Run ``engine apply examples/flights`` first. Starts ``engine serve`` for the
project in a subprocess on 127.0.0.1, then drives ``POST /models/delay_xgb/predict`` (one row
per request) with an open-loop schedule: RATE requests/s for SECONDS, sent by a pool of threads
on keep-alive ``http.client`` connections. Latency is measured from each request's scheduled
time (so queueing counts). Prints p50/p99 and achieved throughput. Target: p99 <= 10 ms at 200/s.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

PROJECT = Path(sys.argv[1] if len(sys.argv) > 1 else "examples/flights").resolve()
RATE, SECONDS, WORKERS = 200, 20, 8
ROW = {"origin": "JFK", "carrier": "AA", "distance": 1089, "dest": "MIA", "tailnum": "N3ETAA",
       "sched_dep_time": 1545, "sched_dep_ts": "2013-12-30T20:45:00Z"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    port = free_port()
    env = {**os.environ, "ENGINE_LOG_LEVEL": "warning"}
    proc = subprocess.Popen([sys.executable, "-m", "engine", "serve", str(PROJECT), "--port", str(port)], env=env)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
                c.request("GET", "/health")
                if c.getresponse().status == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit("server did not start")
            time.sleep(0.2)
        body = json.dumps(ROW).encode()
        total = RATE * SECONDS
        start = time.monotonic() + 0.5
        lock = threading.Lock()
        next_i = [0]
        lat: list[float] = []
        errors = [0]

        def worker():
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            while True:
                with lock:
                    i = next_i[0]
                    next_i[0] += 1
                if i >= total:
                    return
                due = start + i / RATE
                delay = due - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                try:
                    conn.request("POST", "/models/delay_xgb/predict", body=body, headers={"Content-Type": "application/json"})
                    resp = conn.getresponse()
                    resp.read()
                    ok = resp.status == 200
                except OSError:
                    conn.close()
                    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                    ok = False
                done = time.monotonic()
                with lock:
                    lat.append((done - due) * 1000)
                    errors[0] += not ok

        threads = [threading.Thread(target=worker) for _ in range(WORKERS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.monotonic() - start
        lat.sort()
        print(f"{total} requests at {RATE}/s scheduled over {SECONDS}s, {WORKERS} keep-alive connections, {os.cpu_count()} CPUs")
        print(f"latency p50 {lat[len(lat) // 2]:.2f} ms   p99 {lat[int(len(lat) * 0.99)]:.2f} ms   max {lat[-1]:.2f} ms")
        print(f"achieved {len(lat) / elapsed:.1f} req/s, errors {errors[0]}")
    finally:
        proc.terminate()
        proc.wait(timeout=10)


if __name__ == "__main__":
    main()
