"""`engine predict`: the online path without HTTP, JSON / JSON lines / CSV in, JSON or CSV out (golden)."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from engine.cli.main import cli
from tests.serving.conftest import check_golden

CSV_IN = "driver_id,zone,distance_km,requested_at\n3,north,12.5,2024-02-20T10:00:00Z\n4242,west,1.0,2024-02-20T10:00:00Z\n"


def _run(*args, input=None):
    return CliRunner().invoke(cli, list(args), input=input, catch_exceptions=False)


def test_predict_csv_in_csv_out_golden(rides):
    result = _run("predict", str(rides), "tip_api", "--format", "csv", input=CSV_IN)
    assert result.exit_code == 0, result.output
    check_golden("predict.csv", result.output)


def test_predict_json_lines_in_json_out_golden(rides, tmp_path):
    rows = [{"driver_id": 3, "zone": "north", "distance_km": 12.5, "requested_at": "2024-02-20T10:00:00Z"},
            {"driver_id": 4242, "zone": "west", "distance_km": 1.0, "requested_at": "2024-02-20T10:00:00Z"}]
    src = tmp_path / "rows.jsonl"
    src.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    out = tmp_path / "out.json"
    result = _run("predict", str(rides), "tip_api", "--input", str(src), "--output", str(out))
    assert result.exit_code == 0, result.output
    body = json.loads(out.read_text())
    body.pop("snapshot")
    check_golden("predict.json", json.dumps(body, indent=2) + "\n")
    same = _run("predict", str(rides), "tip_api", input=json.dumps(rows))
    assert json.loads(same.output)["predictions"] == body["predictions"]


@pytest.mark.parametrize("stdin,code", [('[{"driver_id": "x", "zone": "n", "distance_km": 1, "requested_at": "2024-01-01"}]', 4), ("[{}]", 4)])
def test_predict_bad_rows_exit_4_with_paths(rides, stdin, code):
    result = CliRunner().invoke(cli, ["predict", str(rides), "tip_api"], input=stdin)
    assert result.exit_code == code
    assert "$.rows[0]" in result.output


def test_predict_unknown_job_is_usage_error(rides):
    result = CliRunner().invoke(cli, ["predict", str(rides), "nope"], input="[{}]")
    assert result.exit_code == 2 and "unknown online job 'nope'" in result.output


def test_serve_refuses_remote_host(rides):
    result = CliRunner().invoke(cli, ["serve", str(rides), "--host", "0.0.0.0"])
    assert result.exit_code == 2 and "--allow-remote" in result.output
