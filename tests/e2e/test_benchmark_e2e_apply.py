"""benchmarks/e2e_apply.py still runs end to end, at a tiny size: the engine, the script, the
floor (the engine's dataflow by hand) and pandas produce the same rows, and the report prints
the floor's line. A smoke test of the benchmark's code, not a timing: no figure is asserted."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_the_benchmark_runs_the_floor_beside_the_engine_and_all_agree(tmp_path: Path) -> None:
    out = tmp_path / "figures.json"
    cmd = [
        sys.executable, str(REPO / "benchmarks" / "e2e_apply.py"),
        "--groups", "1", "--n", "2000", "--repeat", "2", "--floor", "--cache", str(tmp_path / "data"), "--json", str(out),
    ]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    figures = json.loads(out.read_text())
    (run,) = figures["runs"]
    assert run["check_ok"] is True, run["check"]
    assert set(run["runs"]) == {"engine", "script", "floor", "pandas"}
    assert len(run["runs"]["floor"]["spread"]) == 2  # alternated with the engine and the script, twice
    # every output holds the same 2,000 rows (same order-free checksum), the floor's included
    assert "floor: 2,000 rows" in run["check"] and "engine: 2,000 rows" in run["check"]
    checksums = {part.split("checksum ")[1] for part in run["check"].split(" — ")[1].split("; ")}
    assert len(checksums) == 1
    assert "floor: storing each group and the spine once and joining them costs" in done.stdout
    assert "| floor: the engine's writes + join, by hand |" in done.stdout
    assert not list((tmp_path / "data").glob("work_*")), "the generated projects are removed without --keep"
