"""A small monitored project: customers (static, online) joined to purchases (the spine), a
logistic regression, and an online job that logs every request (``monitoring: {sample: 1}``).
Applied once per session; a live uvicorn server per test writes the spool."""

from __future__ import annotations

import json
import shutil
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from engine import api
from tests.conftest import write

SPEC = """
spec_version: 1
project: shop
sources:
  customers_raw: {format: csv, path: data/customers.csv}
  purchases_raw: {format: csv, path: data/purchases.csv}
feature_groups:
  customers:
    primary_key: [customer_id]
    description: Who buys, as the CRM knows them.
    sql: SELECT customer_id, segment, tenure FROM customers_raw
    expectations:
      - {column: tenure, between: [0, 100]}
      - {column: segment, in_set: [retail, pro, vip]}
  purchases:
    primary_key: [purchase_id]
    event_time: bought_at
    online: false
    sql: SELECT purchase_id, customer_id, bought_at, amount, returned FROM purchases_raw
feature_views:
  returns:
    spine: purchases
    label: returned
    features: [amount]
    join:
      - {feature_group: customers, on: [customer_id]}
    transforms: {segment: one_hot_encoder}
models:
  returns_model:
    feature_view: returns
    estimator: sklearn.linear_model.LogisticRegression
    params: {max_iter: 200}
    split: {by: random, test_size: 0.25, seed: 1}
inference:
  returns_api:
    mode: online
    model: returns_model
    keys: [customer_id]
    request: [amount]
    monitoring:
      sample: 1
      thresholds: {psi: 0.25, ks: 0.25, missing_rate: 0.2, prediction_psi: 0.5, min_rows: 50}
"""


def make_project(root: Path, n: int = 800, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    customers = pd.DataFrame({"customer_id": range(1, 41), "segment": rng.choice(["retail", "pro", "vip"], 40), "tenure": rng.integers(0, 20, 40)})
    start = pd.Timestamp("2024-01-01")
    purchases = pd.DataFrame({
        "purchase_id": range(1, n + 1),
        "customer_id": rng.integers(1, 41, n),
        "bought_at": [start + pd.Timedelta(minutes=int(m)) for m in np.sort(rng.integers(0, 60 * 24 * 60, n))],
        "amount": rng.gamma(2.0, 20.0, n).round(2),
    })
    purchases["returned"] = ((purchases["amount"] > 50) ^ (rng.random(n) < 0.15)).astype(int)
    write(root, "specs/shop.yaml", SPEC)
    (root / "data").mkdir(parents=True, exist_ok=True)
    customers.to_csv(root / "data/customers.csv", index=False)
    purchases.to_csv(root / "data/purchases.csv", index=False, date_format="%Y-%m-%d %H:%M:%S")
    return root


@pytest.fixture(scope="session")
def shop(tmp_path_factory) -> Path:
    """The applied monitored project with its online snapshot (shared: copy it before changing it)."""
    from tests.serving.conftest import publish

    root = make_project(tmp_path_factory.mktemp("monitor") / "shop")
    api.apply(root)
    publish(root)
    return root


@pytest.fixture
def shop_copy(shop, tmp_path) -> Path:
    dest = tmp_path / "shop"
    shutil.copytree(shop, dest)
    return dest


def training_requests(root: Path, n: int, seed: int) -> list[dict]:
    """``n`` request rows drawn from the purchases the model was trained on (same distribution)."""
    frame = pd.read_csv(root / "data/purchases.csv")
    sample = frame.sample(n, replace=True, random_state=seed)
    return [{"customer_id": int(r.customer_id), "amount": float(r.amount)} for r in sample.itertuples()]


def post(port: int, path: str, body: dict) -> tuple[int, dict]:
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())
