"""Monitoring end to end: a real uvicorn endpoint logs sampled requests into the spool, `engine
monitor` ingests them into serving_log__<job> and compares them with training. Same distribution:
exit 0 and no output; an injected drift: exit 4 naming the feature."""

from __future__ import annotations

import json
import random
import shutil

import pytest

from engine import api
from engine.errors import UsageError
from engine.monitor.report import run
from engine.monitor.spool import JobLog, PredictionSpool, for_project, read_spool, spool_dir
from tests.conftest import run_engine, write
from tests.monitor.conftest import SPEC, post, training_requests
from tests.serving.conftest import LiveServer


def _serve(root, rows_per_request: list[list[dict]], spool=None):
    from engine.state.workspace import Workspace

    checked = api.validate(root)
    ws_root = Workspace.for_project(checked.project.root).root
    spool = spool or for_project(checked, ws_root)
    with LiveServer(root, prediction_log=spool) as server:
        for rows in rows_per_request:
            status, body = post(server.port, "/jobs/returns_api/predict", {"rows": rows})
            assert status == 200, body
        assert spool.flush(), "the spool did not flush"
    return spool


def _requests(root, n_requests: int, per: int, seed: int, scale: float = 1.0) -> list[list[dict]]:
    rows = training_requests(root, n_requests * per, seed)
    for r in rows:
        r["amount"] = round(r["amount"] * scale, 2)
    return [rows[i * per:(i + 1) * per] for i in range(n_requests)]


def test_same_distribution_is_ingested_and_stays_quiet(shop_copy):
    spool = _serve(shop_copy, _requests(shop_copy, 8, 40, seed=11))
    assert spool.written == 320 and spool.dropped == 0
    rc, out, err = run_engine("monitor", str(shop_copy), "returns_model")
    assert (rc, out, err) == (0, "", ""), err
    log = api.read_feature_group(shop_copy, "serving_log__returns_api")
    assert len(log) == 320 and set(log["job"]) == {"returns_api"}
    assert json.loads(log["features"][0]).keys() >= {"amount", "segment", "tenure"}
    files, _ = read_spool(api.validate(shop_copy).project.root / ".engine", "returns_api")
    assert files == [], "ingested spool files are removed"
    report = run(shop_copy, "returns_model")
    assert not report.drifted and report.rows == 320 and report.ingested == 0  # nothing ingested twice
    assert {c.feature for c in report.comparisons} == {"amount", "segment", "tenure", "<prediction>"}
    assert all(c.psi < 0.25 for c in report.comparisons)


def test_injected_drift_exits_4_naming_the_feature(shop_copy):
    _serve(shop_copy, _requests(shop_copy, 6, 40, seed=12, scale=4.0))
    site = shop_copy / "site"
    rc, out, err = run_engine("monitor", str(shop_copy), "returns_model", "--docs", str(site))
    assert rc == 4, err
    assert out == ""
    alerts = [line.strip() for line in err.splitlines() if line.startswith("  ")]
    assert any(a.startswith("amount: psi") for a in alerts) and any(a.startswith("amount: ks") for a in alerts), err
    assert not any(a.startswith(("segment", "tenure")) for a in alerts), "features served as in training are not flagged"
    page = (site / "monitoring" / "returns_model.html").read_text(encoding="utf-8")
    assert "amount" in page and "Drift" in page and "<svg" in page
    assert "returns_model" in (site / "monitoring.html").read_text(encoding="utf-8")


def test_since_filters_and_too_few_rows_give_no_verdict(shop_copy):
    _serve(shop_copy, _requests(shop_copy, 1, 20, seed=13, scale=4.0))
    report = run(shop_copy, "returns_api")
    assert report.rows == 20 and report.alerts == () and any("min_rows" in n for n in report.notes)
    assert run(shop_copy, "returns_model", since="2999-01-01").rows == 0
    with pytest.raises(UsageError, match="--since: 'yesterday' is not a time"):
        run(shop_copy, "returns_model", since="yesterday")


def test_a_crash_between_commit_and_cleanup_ingests_nothing_twice(shop_copy):
    """The spool files are deleted after the commit; if that deletion never happened, the
    (request_id, row) key keeps the log free of duplicates (RELIABILITY I7: re-running converges)."""
    spool = _serve(shop_copy, _requests(shop_copy, 2, 30, seed=14))
    ws = shop_copy / ".engine"
    files, _ = read_spool(ws, "returns_api")
    keep = [f.read_bytes() for f in files]
    assert run(shop_copy, "returns_model").rows == 60
    for f, data in zip(files, keep):  # as if the process died before removing them
        f.write_bytes(data)
    report = run(shop_copy, "returns_model")
    assert report.rows == 60 == spool.written and report.ingested == 0


def test_unknown_model_is_a_usage_error(shop):
    rc, _, err = run_engine("monitor", str(shop), "returns_modle")
    assert rc == 2 and "did you mean 'returns_model'" in err and "Traceback" not in err


def test_every_protocol_is_logged_and_refused_requests_are_not(shop_copy):
    """The engine route, Open Inference Protocol v2 and MLflow /invocations all log what they
    answered; a refused request (422) logs nothing."""
    from engine.state.workspace import Workspace

    checked = api.validate(shop_copy)
    spool = for_project(checked, Workspace.for_project(checked.project.root).root)
    with LiveServer(shop_copy, prediction_log=spool) as server:
        assert post(server.port, "/jobs/returns_api/predict", {"customer_id": 3, "amount": 10.0})[0] == 200
        v2 = {"inputs": [{"name": "customer_id", "shape": [2], "datatype": "INT64", "data": [4, 5]},
                         {"name": "amount", "shape": [2], "datatype": "FP64", "data": [20.0, 30.0]}]}
        assert post(server.port, "/v2/models/returns_api/infer", v2)[0] == 200
        assert post(server.port, "/invocations", {"dataframe_records": [{"customer_id": 6, "amount": 40.0}]})[0] == 200
        assert post(server.port, "/jobs/returns_api/predict", {"customer_id": "x", "amount": 10.0})[0] == 422
        assert spool.flush()
    _, rows = read_spool(shop_copy / ".engine", "returns_api")
    assert sorted(r["features"]["amount"] for r in rows) == [10.0, 20.0, 30.0, 40.0]
    assert all(r["model"] == "model:returns_model@1" and r["status"] == "ok" and set(r["probabilities"]) == {"0", "1"} for r in rows)


# --- the spool on its own -------------------------------------------------------------------------


def test_sampling_rate_is_honoured(tmp_path):
    spool = PredictionSpool(tmp_path, {"job": JobLog(0.25, 1 << 20)}, rng=random.Random(0))
    taken = sum(spool.wants("job") for _ in range(2000))
    assert 400 < taken < 600
    assert not spool.wants("other_job"), "jobs without monitoring are never logged"


def test_spool_size_is_bounded_oldest_files_dropped(tmp_path):
    spool = PredictionSpool(tmp_path, {"job": JobLog(1.0, 4000)}, rotate_bytes=1000)
    for _ in range(40):
        spool.record("job", "model:m@1", "snap", [{"x": 1.5}] * 3, [{"status": "ok", "prediction": 1}] * 3)
    spool.close()
    files = sorted(spool_dir(tmp_path, "job").glob("*"))
    assert sum(f.stat().st_size for f in files) <= 4000
    assert all(f.suffix == ".jsonl" for f in files), "no .part file is left after close"
    _, rows = read_spool(tmp_path, "job")
    assert spool.dropped > 0 and len(rows) + spool.dropped == 120


def test_a_broken_spool_never_fails_a_request(shop_copy):
    """The request log is best effort (RELIABILITY H: the endpoint answers whatever its side
    channels do): with the spool folder unwritable, requests still get 200 and rows are counted as dropped."""
    blocker = shop_copy / ".engine" / "monitoring"
    shutil.rmtree(blocker, ignore_errors=True)
    blocker.write_text("not a folder", encoding="utf-8")
    spool = _serve(shop_copy, _requests(shop_copy, 3, 5, seed=15))
    assert spool.written == 0 and spool.dropped == 15


# --- the spec -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("      sample: 1\n", "      sample: 0\n", r"shop\.yaml:\d+:\d+: inference\.returns_api\.monitoring\.sample"),
        ("{psi: 0.25,", "{psy: 0.25,", r"shop\.yaml:\d+:\d+: inference\.returns_api\.monitoring\.thresholds.*psy"),
    ],
)
def test_bad_monitoring_settings_are_positioned_spec_errors(tmp_path, old, new, expected):
    import re

    assert old in SPEC
    write(tmp_path, "specs/shop.yaml", SPEC.replace(old, new))
    rc, _, err = run_engine("validate", str(tmp_path))
    assert rc == 3 and re.search(expected, err), err


def test_monitoring_on_a_batch_job_is_refused(tmp_path):
    spec = SPEC + "  nightly: {mode: batch, model: returns_model, range: ['2024-01-01', '2024-02-01'], output: {table: scores}, monitoring: {sample: 1}}\n"
    write(tmp_path, "specs/shop.yaml", spec)
    rc, _, err = run_engine("validate", str(tmp_path))
    assert rc == 3 and "inference.nightly.monitoring" in err and "batch" in err, err
