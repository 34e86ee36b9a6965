"""The CLI ends its process without the interpreter's teardown (``engine.cli.main._finish``): the
exit handlers still run, everything written reaches the pipes, exit codes are kept, and a
non-daemon thread still running is waited for."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

RUN = """
import atexit, sys, threading, time
from pathlib import Path
marker = Path(sys.argv[1])
atexit.register(lambda: marker.with_suffix(".atexit").write_text("ran"))
if sys.argv[2] == "thread":
    def late():
        time.sleep(0.5)
        marker.with_suffix(".thread").write_text("done")
    threading.Thread(target=late).start()
sys.argv = ["engine", *sys.argv[3:]]
from engine.cli.main import main
main()
"""


def _run(tmp_path: Path, *args: str, thread: bool = False) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", RUN, str(tmp_path / "marker"), "thread" if thread else "-", *args], capture_output=True, text=True, timeout=120
    )


def test_a_command_s_whole_output_arrives_and_exit_handlers_run(tmp_path: Path) -> None:
    proc = _run(tmp_path, "schema")  # the JSON Schema: tens of kilobytes through a pipe
    assert proc.returncode == 0, proc.stderr
    assert isinstance(json.loads(proc.stdout), dict) and len(proc.stdout) > 10_000
    assert (tmp_path / "marker.atexit").read_text() == "ran"


def test_an_error_keeps_its_exit_code_and_message(tmp_path: Path) -> None:
    proc = _run(tmp_path, "validate", str(tmp_path / "missing"))
    assert proc.returncode == 3 and "no such file or directory" in proc.stderr, proc.stderr
    assert (tmp_path / "marker.atexit").read_text() == "ran"


def test_a_running_non_daemon_thread_is_waited_for(tmp_path: Path) -> None:
    proc = _run(tmp_path, "schema", thread=True)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "marker.thread").read_text() == "done"


def test_a_message_given_to_exit_is_printed_with_code_1() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", "from engine.cli.main import _finish; print('before', end=''); _finish('boom')"], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 1 and proc.stdout == "before" and proc.stderr == "boom\n"
