"""Issue 13 item 9: apply shows step N/M with rows and seconds, a live line while a step runs,
each tick of `engine run --every`, and after Ctrl-C exactly what was published."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from engine import api
from tests.conftest import REPO, run_engine

SLOW_ORDERS = "FROM orders_raw WHERE (SELECT count(*) FROM range(100000000) a, range(100000000) b) > 0 OR true\n"


def test_apply_prints_step_n_of_m_with_rows_and_seconds(tiny_project: Path):
    rc, out, err = run_engine("apply", str(tiny_project))
    assert rc == 0, err
    lines = err.splitlines()
    assert len(lines) == 5, err
    for n, (line, (step, rows)) in enumerate(zip(lines, [
        ("source:orders_raw", 5), ("source:users_raw", 3), ("feature_group:orders@1", 5),
        ("feature_group:user_spend@1", 5), ("feature_group:users@1", 3),
    ]), start=1):
        assert re.fullmatch(rf" ✓ {n}/5 {re.escape(step)} +new +{rows} rows +\d+\.\d\ds", line), line
    assert re.fullmatch(r"Applied: 5 steps ran in \d+\.\d+s, run \S+\.\n", out), out


def _pty_run(args: list[str], cwd: Path, seconds: float) -> str:
    """Run the CLI on a pseudo-terminal (as a user at a terminal would) and return what it drew."""
    import pty
    import select

    main_fd, child_fd = pty.openpty()
    env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": "120", "LINES": "40"}
    proc = subprocess.Popen([sys.executable, "-m", "engine", *args], cwd=cwd, stdin=child_fd, stdout=child_fd, stderr=child_fd, env=env)
    os.close(child_fd)
    chunks = []
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([main_fd], [], [], 0.2)
            if ready:
                try:
                    chunks.append(os.read(main_fd, 65536))
                except OSError:
                    break
            elif proc.poll() is not None:
                break
        proc.wait(timeout=60)
    finally:
        proc.kill()
        os.close(main_fd)
    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", b"".join(chunks).decode("utf-8", "replace"))  # colours, cursor moves


def test_a_live_line_shows_the_running_step_and_its_elapsed_time(tiny_project: Path):
    users = tiny_project / "shop_features/users.py"
    users.write_text("import time\n" + users.read_text().replace("    out = users", "    time.sleep(2)\n    out = users"))
    drawn = _pty_run(["apply", str(tiny_project)], REPO, 90)
    assert "Applied: 5 steps ran" in drawn, drawn
    # While users runs: spinner, N/M, the step and why, then its elapsed seconds growing.
    live = re.findall(r"5/5 feature_group:users@1 \(new\) (\d+\.\d\d)s", drawn)
    assert live and max(float(s) for s in live) >= 1.0, drawn
    assert re.search(r" ✓ 5/5 feature_group:users@1 +new +3 rows +2\.\d\ds", drawn), drawn


def test_ctrl_c_says_exactly_what_was_published(tiny_project: Path):
    spec = tiny_project / "specs/shop.yaml"
    spec.write_text(spec.read_text().replace("FROM orders_raw\n", SLOW_ORDERS))
    for fmt in ("text", "json"):
        proc = subprocess.Popen([sys.executable, "-m", "engine", "apply", str(tiny_project), "--format", fmt], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            time.sleep(4)
            proc.send_signal(signal.SIGINT)
            out, err = proc.communicate(timeout=60)
        finally:
            proc.kill()
        assert proc.returncode == 130, err
        if fmt == "text":
            assert "Published: source:orders_raw, source:users_raw (✓ above)." in err, err
            assert "Not published: feature_group:orders@1 (stopped while running); feature_group:user_spend@1, feature_group:users@1 (not started)." in err, err
        else:
            assert json.loads(out) == {
                "status": "interrupted",
                "published": [],  # the text run above published the sources already: this run had nothing new to publish
                "not_published": ["feature_group:orders@1", "feature_group:user_spend@1", "feature_group:users@1"],
            }, out
    # The summary is the truth: the sources are published (unchanged now), the rest is not.
    actions = {s.step.key: s.reason.value for s in api.plan(tiny_project).steps}
    assert actions == {
        "source:orders_raw": "unchanged", "source:users_raw": "unchanged",
        "feature_group:orders@1": "new", "feature_group:user_spend@1": "new", "feature_group:users@1": "new",
    }


def test_run_every_shows_each_tick(tiny_project: Path):
    rc, out, err = run_engine("run", str(tiny_project), "orders", "--every", "1s", "--max-runs", "2")
    assert rc == 0, err
    ticks = out.splitlines()
    assert len(ticks) == 2, out
    assert re.fullmatch(r"\[\d\d:\d\d:\d\d\] tick 1: source:orders_raw ran \(5 rows, \d+\.\d\ds\); feature_group:orders@1 ran \(5 rows, \d+\.\d\ds\)", ticks[0]), ticks[0]
    assert re.fullmatch(r"\[\d\d:\d\d:\d\d\] tick 2: no changes", ticks[1]), ticks[1]
    assert re.search(r" ✓ 2/2 feature_group:orders@1 +new +5 rows", err), err
