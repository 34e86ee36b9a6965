"""Generate the fraud example's data, deterministically: 300 cards, ~30,000 card transactions
over six weeks, and 1,000 request transactions after the last of them.

    python examples/fraud/scripts/make_data.py            # rewrites examples/fraud/data/
    python examples/fraud/scripts/make_data.py --out DIR  # somewhere else (the tests compare)

Each card has a home (latitude, longitude), a credit limit and a spending habit: a daily rate of
transactions at merchants near home, with amounts around the card's own typical amount. Now and
then a card is compromised: a short burst of 2-6 transactions within an hour, far from home, in
risky categories (electronics, jewelry, online, atm) and for amounts well above the card's usual
spend. Those are ``is_fraud``. Some honest transactions look odd too (travel far from home, a
large purchase), so the label is learnable but not trivial: a model has to use the amount
relative to the card's recent spend, the burst (activity in the hour *before* the transaction),
the distance from home and the category.

Outputs (the same rows always):

* ``data/cards.csv`` — card_id, home_lat, home_lon, credit_limit, opened_at
* ``data/transactions/2024-03.parquet``, ``data/transactions/2024-04.parquet`` — one file per
  month (the stream job ``live`` scores the rows of files added later), each row: txn_id, card_id, ts (UTC), amount, merchant_lat, merchant_lon,
  merchant_category, is_fraud
* ``data/requests.csv`` — 1,000 transactions to score online (new txn ids, existing cards), all
  strictly after the last transaction above: txn_id, card_id, ts, amount, merchant_lat,
  merchant_lon, merchant_category. They are not in data/transactions/: the online skew test
  computes their features offline (feature view fraud_requests) and online and compares.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

SEED = 20240301
N_CARDS = 300
N_REQUESTS = 1_000
START = pd.Timestamp("2024-03-01", tz="UTC")
END = pd.Timestamp("2024-04-12", tz="UTC")  # six weeks, [START, END)
REQUESTS_FROM = END + pd.Timedelta(hours=1)  # requests in [END + 1h, END + 7h)

CATEGORIES = ["grocery", "restaurant", "gas", "retail", "travel", "electronics", "online", "jewelry", "atm"]
HONEST_MIX = np.array([0.30, 0.22, 0.14, 0.14, 0.03, 0.04, 0.09, 0.01, 0.03])
FRAUD_MIX = np.array([0.02, 0.02, 0.02, 0.08, 0.04, 0.28, 0.26, 0.14, 0.14])
CATEGORY_SCALE = dict(zip(CATEGORIES, [1.0, 0.8, 0.9, 1.6, 4.0, 3.0, 1.2, 5.0, 2.0]))

# Metropolitan areas the card holders live in (latitude, longitude).
CITIES = [(40.71, -74.01), (34.05, -118.24), (41.88, -87.63), (29.76, -95.37), (33.45, -112.07),
          (39.95, -75.17), (29.42, -98.49), (32.72, -117.16), (32.78, -96.80), (37.34, -121.89),
          (47.61, -122.33), (39.74, -104.99), (42.36, -71.06), (25.76, -80.19), (33.75, -84.39)]


def _offset(rng: np.random.Generator, lat: np.ndarray, lon: np.ndarray, km: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Points about ``km`` away from (lat, lon) in a random direction."""
    bearing = rng.uniform(0, 2 * np.pi, len(lat))
    dlat = km * np.cos(bearing) / 111.0
    dlon = km * np.sin(bearing) / (111.0 * np.cos(np.radians(lat)))
    return np.round(lat + dlat, 5), np.round(lon + dlon, 5)


def make_cards(rng: np.random.Generator) -> pd.DataFrame:
    city = rng.integers(0, len(CITIES), N_CARDS)
    lat = np.array([CITIES[c][0] for c in city])
    lon = np.array([CITIES[c][1] for c in city])
    home_lat, home_lon = _offset(rng, lat, lon, rng.uniform(0, 25, N_CARDS))
    opened = START - pd.to_timedelta(rng.integers(30, 3000, N_CARDS), unit="D")
    return pd.DataFrame({
        "card_id": np.arange(1001, 1001 + N_CARDS, dtype="int64"),
        "home_lat": home_lat,
        "home_lon": home_lon,
        "credit_limit": rng.choice([1000, 2500, 5000, 10000, 20000], N_CARDS, p=[0.15, 0.3, 0.3, 0.18, 0.07]).astype("int64"),
        "opened_at": opened.tz_localize(None).strftime("%Y-%m-%d"),
    })


def _honest(rng: np.random.Generator, cards: pd.DataFrame, habit: pd.DataFrame, start: pd.Timestamp, hours: float, n_per_card_day: np.ndarray | None = None) -> pd.DataFrame:
    """Ordinary transactions of every card over ``hours`` hours from ``start``."""
    rate = habit["rate"].to_numpy() * hours / 24.0
    counts = rng.poisson(rate) if n_per_card_day is None else n_per_card_day
    idx = np.repeat(np.arange(len(cards)), counts)
    n = len(idx)
    # Daytime-heavy: a uniform time, shifted towards the afternoon by a beta draw within the day.
    ts = start + pd.to_timedelta(np.floor(rng.uniform(0, hours * 3600, n)), unit="s")
    category = rng.choice(CATEGORIES, n, p=HONEST_MIX)
    scale = np.array([CATEGORY_SCALE[c] for c in category])
    amount = habit["typical"].to_numpy()[idx] * scale * rng.lognormal(0.0, 0.6, n)
    big = rng.random(n) < 0.01  # the odd honest large purchase
    amount = np.where(big, amount * rng.uniform(4, 12, n), amount)
    travel = rng.random(n) < 0.02 + 0.15 * (category == "travel")  # honest transactions away from home
    km = np.where(travel, rng.uniform(150, 2500, n), rng.exponential(6.0, n))
    lat, lon = _offset(rng, cards["home_lat"].to_numpy()[idx], cards["home_lon"].to_numpy()[idx], km)
    return pd.DataFrame({"card_id": cards["card_id"].to_numpy()[idx], "ts": ts, "amount": amount,
                         "merchant_lat": lat, "merchant_lon": lon, "merchant_category": category, "is_fraud": False})


def _fraud(rng: np.random.Generator, cards: pd.DataFrame, habit: pd.DataFrame) -> pd.DataFrame:
    """Bursts on compromised cards: 2-6 transactions within an hour, far from home, big amounts."""
    n_bursts = 150
    card = rng.integers(0, len(cards), n_bursts)
    begin = START + pd.to_timedelta(rng.uniform(0, (END - START).total_seconds() - 3600, n_bursts), unit="s")
    size = rng.integers(2, 7, n_bursts)
    idx = np.repeat(card, size)
    t0 = np.repeat(begin, size)
    n = len(idx)
    ts = pd.DatetimeIndex(t0) + pd.to_timedelta(np.floor(rng.uniform(0, 3600, n)), unit="s")
    category = rng.choice(CATEGORIES, n, p=FRAUD_MIX)
    amount = habit["typical"].to_numpy()[idx] * rng.uniform(2, 10, n) * rng.lognormal(0.0, 0.5, n)
    # Fraudsters work remotely, but a few use a cloned card near home.
    km = np.where(rng.random(n) < 0.8, rng.uniform(200, 3000, n), rng.exponential(8.0, n))
    lat, lon = _offset(rng, cards["home_lat"].to_numpy()[idx], cards["home_lon"].to_numpy()[idx], km)
    return pd.DataFrame({"card_id": cards["card_id"].to_numpy()[idx], "ts": ts, "amount": amount,
                         "merchant_lat": lat, "merchant_lon": lon, "merchant_category": category, "is_fraud": True})


def _finish(frame: pd.DataFrame, cards: pd.DataFrame, first_id: int) -> pd.DataFrame:
    frame = frame.copy()
    limit = cards.set_index("card_id")["credit_limit"].reindex(frame["card_id"]).to_numpy()
    frame["amount"] = np.round(np.clip(frame["amount"].to_numpy(), 1.0, limit), 2)
    frame["ts"] = pd.DatetimeIndex(frame["ts"]).as_unit("us")
    # One transaction per card and second: the windows group is keyed by (card_id, ts).
    frame = frame.sort_values(["ts", "card_id"], kind="stable").drop_duplicates(["card_id", "ts"]).reset_index(drop=True)
    frame.insert(0, "txn_id", np.arange(first_id, first_id + len(frame), dtype="int64"))
    return frame


def make(seed: int = SEED) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    cards = make_cards(rng)
    habit = pd.DataFrame({"rate": rng.gamma(3.0, 0.8, N_CARDS), "typical": rng.lognormal(3.3, 0.5, N_CARDS)})
    hours = (END - START).total_seconds() / 3600
    txns = pd.concat([_honest(rng, cards, habit, START, hours), _fraud(rng, cards, habit)], ignore_index=True)
    txns = _finish(txns, cards, 1)
    txns = txns[txns["ts"] < END].reset_index(drop=True)
    txns["txn_id"] = np.arange(1, len(txns) + 1, dtype="int64")
    # Requests: new transactions of existing cards, 1-7 hours after the last one in the data.
    req_card = rng.integers(0, N_CARDS, N_REQUESTS)
    one = np.bincount(req_card, minlength=N_CARDS)
    requests = _honest(rng, cards, habit, REQUESTS_FROM, 6.0, n_per_card_day=one)
    requests = _finish(requests.drop(columns="is_fraud"), cards, 10_000_001)
    assert len(requests) == N_REQUESTS, len(requests)
    assert requests["ts"].min() > txns["ts"].max()
    return cards, txns, requests


def write(out: Path) -> list[Path]:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    cards, txns, requests = make()
    (out / "transactions").mkdir(exist_ok=True)
    paths = [out / "cards.csv", out / "requests.csv"]
    cards.to_csv(paths[0], index=False, lineterminator="\n")
    req = requests.copy()
    req["ts"] = req["ts"].dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    req.to_csv(paths[1], index=False, lineterminator="\n")
    month = txns["ts"].dt.strftime("%Y-%m")
    for name in sorted(month.unique()):
        path = out / "transactions" / f"{name}.parquet"
        txns[month == name].reset_index(drop=True).to_parquet(path, index=False, compression="zstd")
        paths.append(path)
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent.parent / "data")
    args = parser.parse_args()
    for path in write(args.out):
        print(f"{path}  {path.stat().st_size:,} bytes")


if __name__ == "__main__":
    main()
