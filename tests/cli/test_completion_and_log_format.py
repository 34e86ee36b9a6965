"""Conventions (issue 12, item 5): NAME arguments complete from the project's specs (and complete
nothing, silently, on a broken project); `--log-format json` makes the long-running verbs write
one JSON object per line on stderr."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import run_engine
from tests.monitor.conftest import shop, shop_copy  # noqa: F401  (fixtures: the applied monitored project)


def _complete(words: str, cwd: Path | None = None) -> tuple[int, list[str], str]:
    """What bash completion offers for ``words`` (the last word is the one being completed)."""
    engine = shutil.which("engine", path=str(Path(sys.executable).parent))
    if engine is None:
        pytest.skip("the engine console script is not installed in this environment (pip install -e .)")
    parts = words.split(" ")
    env = {**os.environ, "_ENGINE_COMPLETE": "bash_complete", "COMP_WORDS": words, "COMP_CWORD": str(len(parts) - 1)}
    proc = subprocess.run([engine], env=env, cwd=cwd, capture_output=True, text=True, timeout=60)
    return proc.returncode, [line.split(",", 1)[1] for line in proc.stdout.splitlines() if "," in line], proc.stderr


@pytest.mark.parametrize(
    ("words", "expected"),
    [
        ("engine show {root} feature_group ", ["orders", "user_spend", "users"]),
        ("engine show {root} feature_group user", ["user_spend", "users"]),
        ("engine show {root} fea", ["feature_group", "feature_groups", "feature_view", "feature_views"]),
        ("engine lineage {root} o", ["orders", "orders_raw"]),
        ("engine run {root} users", ["users", "users_raw"]),
    ],
)
def test_object_names_complete_from_the_project(tiny_project: Path, words: str, expected: list[str]) -> None:
    rc, offered, err = _complete(words.format(root=tiny_project))
    assert rc == 0 and offered == expected, err


def test_names_complete_from_the_project_found_by_its_marker(tiny_project: Path) -> None:
    (tiny_project / "engine.yaml").write_text("project: shop\n", encoding="utf-8")
    rc, offered, err = _complete("engine show feature_group o", cwd=tiny_project / "data")
    assert rc == 0 and offered == ["orders"], err


@pytest.mark.parametrize("broken", ["spec_version: [1\n", "spec_version: 1\nproject: shop\nfeature_groups: {a: &x {b: *x}}\n"])
def test_a_broken_project_completes_nothing_without_a_traceback(tiny_project: Path, broken: str) -> None:
    (tiny_project / "specs/shop.yaml").write_text(broken, encoding="utf-8")
    rc, offered, err = _complete(f"engine show {tiny_project} feature_group ")
    assert (rc, offered, err) == (0, [], "")


def _json_lines(text: str) -> list[dict]:
    lines = [line for line in text.splitlines() if line.strip()]
    docs = [json.loads(line) for line in lines]  # every line parses: one object per line
    assert all(isinstance(d, dict) and {"time", "level", "event"} <= d.keys() for d in docs), docs
    return docs


def test_apply_log_format_json_writes_one_object_per_line(tiny_project: Path) -> None:
    rc, out, err = run_engine("apply", str(tiny_project), "--log-format", "json")
    assert rc == 0, err
    events = _json_lines(err)
    assert events[0]["event"] == "apply.plan" and events[0]["changes"] is True
    finished = [e for e in events if e["event"] == "step.finished"]
    assert {e["step_id"] for e in finished} >= {"feature_group:orders@1", "feature_group:users@1"}
    assert all(e["status"] == "ran" and isinstance(e["rows"], int) for e in finished)
    assert out.startswith("Applied:")  # stdout keeps the summary
    (tiny_project / "specs/shop.yaml").write_text("spec_version: 1\nproject: shop\nsources: {x: {format: csv}}\n", encoding="utf-8")
    rc, _, err = run_engine("apply", str(tiny_project), "--log-format", "json")
    (error,) = _json_lines(err)
    assert rc == 3 and error["event"] == "error" and error["exit_code"] == 3 and "shop.yaml:3:" in error["problems"][0]


def test_serve_and_monitor_log_format_json(shop_copy: Path) -> None:
    """`engine serve --log-format json`: the server's own lines, the access log and the stop are
    JSON objects, one per line; so are `engine monitor`'s."""
    import signal
    import socket
    import time
    import urllib.request

    root = shop_copy
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "engine", "serve", str(root), "--port", str(port), "--log-format", "json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2)
                break
            except OSError:
                assert time.monotonic() < deadline and proc.poll() is None, "the server did not start"
                time.sleep(0.2)
        body = json.dumps({"customer_id": 3, "amount": 12.5}).encode()
        urllib.request.urlopen(urllib.request.Request(f"http://127.0.0.1:{port}/jobs/returns_api/predict", data=body, headers={"Content-Type": "application/json"}), timeout=10)
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    events = _json_lines(err)
    assert proc.returncode == 130
    requests = [e for e in events if e["event"] == "http.request"]
    assert [(r["path"], r["status"]) for r in requests] == [("/health", 200), ("/jobs/returns_api/predict", 200)]
    assert events[-1]["event"] == "serve.stopped" and any("Uvicorn running" in e.get("message", "") for e in events)
    rc, out, err = run_engine("monitor", str(root), "returns_model", "--log-format", "json")
    events = _json_lines(err)
    assert rc == 0 and out == "" and [e["event"] for e in events][:2] == ["monitor.started", "monitor.compared"]
    assert events[1]["rows"] == 1 and events[1]["ingested"] == 1  # the served request was logged, then ingested
