"""The fraud example end to end (issue 11's new example project): card transactions joined with
per-card windows strictly before each transaction (as_of: exclusive), the card's home as helper
columns read by an on-demand distance, transform chains in a second model, and the amount binned
online with the stored decile edges. One apply builds everything; the skew oracle compares the
offline point-in-time features of 1,000 request transactions with their online vectors."""

from __future__ import annotations

import importlib.util
import json
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from engine import api
from tests.conftest import REPO, run_engine

EXAMPLE = REPO / "examples" / "fraud"
REQUEST_COLUMNS = ("card_id", "amount", "merchant_lat", "merchant_lon", "merchant_category")


def _copy(dest: Path) -> Path:
    shutil.copytree(EXAMPLE, dest, ignore=shutil.ignore_patterns(".engine", "out", "__pycache__", ".pytest_cache"))
    return dest


@pytest.fixture(scope="module")
def fraud(tmp_path_factory) -> Path:
    root = _copy(tmp_path_factory.mktemp("example") / "fraud")
    started = time.perf_counter()
    rc, out, err = run_engine("apply", str(root), "--format", "json", timeout=300)
    elapsed = time.perf_counter() - started
    assert rc == 0, err
    root.joinpath("first_apply.json").write_text(out)
    root.joinpath("first_apply_seconds.txt").write_text(f"{elapsed:.2f}")
    return root


def _plain(value):
    return value.item() if hasattr(value, "item") else value


def _requests(frame: pd.DataFrame) -> list[dict]:
    return [{**{c: _plain(row[c]) for c in REQUEST_COLUMNS}, "ts": row["ts"].isoformat()} for _, row in frame.iterrows()]


def test_validate_passes_on_the_example():
    rc, out, err = run_engine("validate", str(EXAMPLE))
    assert rc == 0, err
    assert "project 'fraud'" in out


def test_first_apply_runs_every_step_well_under_a_minute(fraud: Path):
    result = json.loads((fraud / "first_apply.json").read_text())
    statuses = {s["id"]: s["status"] for s in result["steps"]}
    assert set(statuses.values()) == {"ran"}, statuses
    assert {"feature_group:transactions@1", "feature_group:cards@1", "feature_group:card_activity@1",
            "feature_group:amount_bins@1", "feature_group:requests@1", "feature_view:fraud@1",
            "feature_view:fraud_requests@1", "model:fraud_xgb", "model:fraud_logreg", "inference:last_week", "inference:live"} <= set(statuses)
    assert float((fraud / "first_apply_seconds.txt").read_text()) < 60


def test_second_apply_runs_nothing(fraud: Path):
    rc, out, err = run_engine("apply", str(fraud))
    assert rc == 0, err
    assert out.strip() == "No changes."


def test_both_models_are_registered_with_average_precision(fraud: Path):
    models = {m["name"]: m for m in api.list_models(fraud)}
    assert set(models) == {"fraud_xgb", "fraud_logreg"}
    for model in models.values():
        test = model["metrics"]["test"]
        assert {"average_precision", "roc_auc", "log_loss", "precision_at_50"} <= set(test)
        fraud_rate = api.read_training_data(fraud, model["name"]).pipe(lambda d: d[d["_split"] == "test"]["is_fraud"].mean())
        assert test["average_precision"] > 10 * fraud_rate  # far above a random ranking
    assert models["fraud_xgb"]["aliases"] == ["production"]


def test_windows_are_strictly_before_each_transaction(fraud: Path):
    """Oracle: a transaction at t gets the card's latest activity row strictly before t — the
    previous transaction p — whose 1h count is the card's transactions in (p - 1h, p]; the
    transaction itself is never counted. A card's first transaction has no activity (NULL).

    Note the anchor: the windows are those *at p*, not the hour before t — a transaction three
    hours after the previous one still sees that one's 1h count (the built-in emits a row per
    input event, and the join takes the latest row before t)."""
    view = api.read_feature_view(fraud, "fraud")
    txns = api.read_feature_group(fraud, "transactions")[["txn_id", "card_id", "ts"]]
    rows = view[["txn_id", "txn_count_1h", "amount_sum_1h"]].merge(txns, on="txn_id")
    assert len(rows) == len(view) == len(txns) > 20_000
    expected, inclusive = [], []
    by_card = {card: np.sort(g["ts"].to_numpy()) for card, g in txns.groupby("card_id")}
    hour = np.timedelta64(3600, "s")
    for card, t in zip(rows["card_id"], rows["ts"].to_numpy()):
        times = by_card[card]
        before = times[times < t]
        if len(before) == 0:
            expected.append(None)
        else:
            p = before[-1]
            expected.append(int(((times > p - hour) & (times <= p)).sum()))
        inclusive.append(int(((times > t - hour) & (times <= t)).sum()))
    got = [None if pd.isna(v) else int(v) for v in rows["txn_count_1h"]]
    assert got == expected
    assert sum(e is None for e in expected) == txns["card_id"].nunique()  # first transactions: no activity
    # Counting the transaction itself ((t - 1h, t], as as_of: inclusive would) gives other values
    # on thousands of rows (7,457 of 30,901 with the committed data).
    assert sum(g != i for g, i in zip(got, inclusive)) > 5000


def test_helpers_are_in_the_rows_but_never_model_inputs(fraud: Path):
    view = api.read_feature_view(fraud, "fraud")
    assert {"home_lat", "home_lon", "km_from_home"} <= set(view.columns)
    assert view["home_lat"].notna().all()
    for name in ("fraud_xgb", "fraud_logreg"):
        manifest = api.show_model(fraud, name)["manifest"]
        assert not {"home_lat", "home_lon", "is_fraud", "txn_id", "ts"} & set(manifest["feature_columns"]), name
        assert "km_from_home" in manifest["feature_columns"]


def test_the_two_models_take_different_inputs_prepared_differently(fraud: Path):
    xgb = api.show_model(fraud, "fraud_xgb")["manifest"]
    logreg = api.show_model(fraud, "fraud_logreg")["manifest"]
    assert set(logreg["feature_columns"]) < set(xgb["feature_columns"])
    assert {"amount_decile", "credit_limit", "amount_sum_1h"} == set(xgb["feature_columns"]) - set(logreg["feature_columns"])
    chains = {c["column"]: c for c in logreg["transformers"]["columns"] if c["kind"] == "chain"}
    assert {"amount", "km_from_home", "amount_vs_7d", "txn_count_1h", "amount_sum_7d"} <= set(chains)
    assert [s["kind"] for s in chains["amount"]["state"]["steps"]] == ["log1p", "standard_scaler"]
    assert [s["kind"] for s in chains["km_from_home"]["state"]["steps"]] == ["clip", "standard_scaler"]
    xgb_kinds = {c["column"]: c["kind"] for c in (xgb.get("transformers") or {}).get("columns", [])}
    assert "chain" not in xgb_kinds.values() and xgb_kinds.get("merchant_category") == "one_hot_encoder"


def test_zero_skew_on_1000_requests_offline_equals_online(fraud: Path):
    """THE skew oracle: for each of the 1,000 request transactions (after the last transaction in
    the data, never part of it), the offline point-in-time row of fraud_requests equals the online
    vector built from the request, for every feature and helper, floats bit for bit."""
    offline = api.read_feature_view(fraud, "fraud_requests")
    requests = api.read_feature_group(fraud, "requests")
    offline = offline.merge(requests[["txn_id", "card_id", "merchant_lat", "merchant_lon"]], on="txn_id").sort_values("txn_id").reset_index(drop=True)
    assert len(offline) == 1000 and requests["ts"].min() > api.read_feature_group(fraud, "transactions")["ts"].max()
    result = api.feature_vectors(fraud, "fraud_requests", _requests(offline))
    vectors = result["vectors"]
    assert len(vectors) == 1000
    features = [c for c in vectors[0]["values"]]
    assert len(features) == 12 and not {"home_lat", "home_lon"} & set(features)
    assert {"amount", "merchant_category", "credit_limit", "txn_count_1h", "amount_sum_7d", "amount_decile", "km_from_home", "amount_vs_7d"} <= set(features)
    differences, compared, nulls = [], 0, 0
    for (_, row), vector in zip(offline.iterrows(), vectors):
        online = {**vector["values"], **vector.get("helpers", {})}
        assert not vector.get("missing") and not vector.get("expired"), vector
        for name in (*features, "home_lat", "home_lon"):
            want, got = _plain(row[name]), online[name]
            compared += 1
            if want is None or (isinstance(want, float) and np.isnan(want)) or want is pd.NA:
                nulls += 1
                same = got is None
            elif isinstance(want, float):
                same = isinstance(got, (int, float)) and np.float64(got).tobytes() == np.float64(want).tobytes()
            else:
                same = got == want and type(got) is type(want)
            if not same:
                differences.append((int(row["txn_id"]), name, want, got))
    assert compared == 1000 * (len(features) + 2)
    assert differences == [], differences[:10]


def test_online_scoring_returns_ok_predictions(fraud: Path):
    requests = api.read_feature_group(fraud, "requests").sort_values("txn_id").head(20)
    result = api.predict_online(fraud, "fraud_api", _requests(requests))
    assert result["model"] == "model:fraud_xgb@1" and len(result["predictions"]) == 20
    for pred in result["predictions"]:
        assert pred["status"] == "ok" and isinstance(pred["prediction"], bool), pred
        assert sum(pred["probabilities"].values()) == pytest.approx(1.0)


def test_the_test_week_is_scored_to_a_table_and_a_file(fraud: Path):
    txns = api.read_feature_group(fraud, "transactions")
    expected = int((txns["ts"] >= pd.Timestamp("2024-04-05", tz="UTC")).sum())
    scores = pd.read_parquet(fraud / "out/last_week_scores.parquet")
    assert len(scores) == expected > 3000
    assert set(scores["model_version"]) == {1}
    assert len(api.read_predictions(fraud, "last_week")) == expected


def test_the_stream_job_scores_each_new_transaction_once(fraud: Path, tmp_path):
    """The first apply scored every transaction once; a file dropped into data/transactions/ is
    ingested by the next run of the stream job and only its rows are scored; a run with nothing
    new scores nothing. (On a copy of the applied project: the shared one stays as applied.)"""
    assert len(api.read_predictions(fraud, "live")) == len(api.read_feature_group(fraud, "transactions"))
    root = tmp_path / "fraud"
    shutil.copytree(fraud, root)
    new = pd.read_csv(root / "data" / "requests.csv", parse_dates=["ts"]).head(25)
    new["ts"] = pd.DatetimeIndex(new["ts"]).as_unit("us")
    new["is_fraud"] = False
    new.to_parquet(root / "data" / "transactions" / "2024-04-12.parquet", index=False)
    rc, out, err = run_engine("run", str(root), "live", "--format", "json", timeout=300)
    assert rc == 0, err
    scored = api.read_predictions(root, "live")
    assert len(scored) == 30_901 + 25 and scored["txn_id"].is_unique
    assert set(new["txn_id"]) <= set(scored["txn_id"])
    rc, out, err = run_engine("run", str(root), "live", timeout=300)
    assert rc == 0, err
    assert len(api.read_predictions(root, "live")) == 30_901 + 25


def test_data_is_small_and_regenerated_exactly_by_the_script(tmp_path):
    data = EXAMPLE / "data"
    files = sorted(p for p in data.rglob("*") if p.is_file())
    assert sum(p.stat().st_size for p in files) < 2_000_000
    spec = importlib.util.spec_from_file_location("fraud_make_data", EXAMPLE / "scripts" / "make_data.py")
    make_data = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make_data)
    written = make_data.write(tmp_path / "data")
    assert sorted(p.relative_to(tmp_path / "data") for p in written) == [p.relative_to(data) for p in files if p.suffix in (".csv", ".parquet")]
    for name in ("cards.csv", "requests.csv"):
        assert (tmp_path / "data" / name).read_bytes() == (data / name).read_bytes()
    for month in ("2024-03", "2024-04"):
        pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "data" / "transactions" / f"{month}.parquet"),
                                      pd.read_parquet(data / "transactions" / f"{month}.parquet"))
    txns = pd.read_parquet(data / "transactions")
    assert 20_000 <= len(txns) <= 40_000 and txns["card_id"].nunique() == 300
    requests = pd.read_csv(data / "requests.csv", parse_dates=["ts"])
    assert len(requests) == 1000 and requests["txn_id"].is_unique
    assert not set(requests["txn_id"]) & set(txns["txn_id"])
    assert requests["ts"].min() > txns["ts"].max()
