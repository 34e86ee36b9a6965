"""Generate the taxi example's data, deterministically: 50 pickup zones and ~20,000 trips.

    python examples/taxi/scripts/make_data.py            # rewrites examples/taxi/data/
    python examples/taxi/scripts/make_data.py --out DIR  # somewhere else (the tests compare)

The trips are synthetic but shaped like New York yellow-cab trips in June and July 2024: pickups
follow a weekday/weekend hourly profile over 50 zones (Manhattan busiest, the three airports
included), dropoffs are nearer zones more often, coordinates scatter around the zone centroids.
The label ``tipped`` (did the rider tip?) is drawn from a logistic model of the trip's length,
the local hour, weekend and holiday, the pickup borough, airport pickups, passenger count and a
per-zone effect — so the on-demand features of the nyc-features library and the zone features
are what a model has to learn it from.

Outputs (the same bytes for the same pyarrow version; the same rows always):

* ``data/zones.csv`` — zone_id, zone, borough, lat, lon
* ``data/trips/2024-06.parquet``, ``data/trips/2024-07.parquet`` — one row per trip: trip_id,
  pickup_at (naive New York wall-clock time, as the TLC publishes it), pickup_zone_id,
  dropoff_zone_id, pickup/dropoff lat/lon, passenger_count, fare, tipped
"""

from __future__ import annotations

import argparse
import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd

SEED = 20240601
N_TRIPS = 20_000
START, END = pd.Timestamp("2024-06-01"), pd.Timestamp("2024-08-01")  # local time, [START, END)
HOLIDAYS = {dt.date(2024, 6, 19), dt.date(2024, 7, 4)}  # observed US federal holidays in range

# (zone, borough, lat, lon, popularity as a pickup)
ZONES = [
    ("Battery Park", "Manhattan", 40.7033, -74.0170, 3.0),
    ("Financial District", "Manhattan", 40.7075, -74.0113, 5.0),
    ("Tribeca", "Manhattan", 40.7163, -74.0086, 4.0),
    ("SoHo", "Manhattan", 40.7233, -74.0030, 5.0),
    ("Lower East Side", "Manhattan", 40.7150, -73.9843, 4.0),
    ("Greenwich Village", "Manhattan", 40.7336, -74.0027, 5.0),
    ("East Village", "Manhattan", 40.7265, -73.9815, 5.0),
    ("Chelsea", "Manhattan", 40.7465, -74.0014, 6.0),
    ("Gramercy", "Manhattan", 40.7368, -73.9845, 4.0),
    ("Kips Bay", "Manhattan", 40.7406, -73.9770, 3.0),
    ("Murray Hill", "Manhattan", 40.7479, -73.9757, 5.0),
    ("Midtown South", "Manhattan", 40.7505, -73.9934, 8.0),
    ("Times Square", "Manhattan", 40.7580, -73.9855, 9.0),
    ("Midtown East", "Manhattan", 40.7549, -73.9690, 8.0),
    ("Hell's Kitchen", "Manhattan", 40.7638, -73.9918, 5.0),
    ("Upper West Side", "Manhattan", 40.7870, -73.9754, 6.0),
    ("Upper East Side", "Manhattan", 40.7736, -73.9566, 7.0),
    ("Central Park", "Manhattan", 40.7812, -73.9665, 2.0),
    ("Harlem", "Manhattan", 40.8116, -73.9465, 2.0),
    ("East Harlem", "Manhattan", 40.7957, -73.9389, 1.5),
    ("Washington Heights", "Manhattan", 40.8417, -73.9394, 1.0),
    ("Inwood", "Manhattan", 40.8677, -73.9212, 0.5),
    ("Downtown Brooklyn", "Brooklyn", 40.6928, -73.9903, 2.0),
    ("Brooklyn Heights", "Brooklyn", 40.6960, -73.9950, 1.0),
    ("Williamsburg", "Brooklyn", 40.7081, -73.9571, 2.5),
    ("Greenpoint", "Brooklyn", 40.7304, -73.9515, 1.0),
    ("Bushwick", "Brooklyn", 40.6944, -73.9213, 1.0),
    ("Park Slope", "Brooklyn", 40.6710, -73.9814, 1.0),
    ("Crown Heights", "Brooklyn", 40.6694, -73.9422, 0.7),
    ("Flatbush", "Brooklyn", 40.6415, -73.9594, 0.5),
    ("Bay Ridge", "Brooklyn", 40.6264, -74.0299, 0.4),
    ("Coney Island", "Brooklyn", 40.5755, -73.9707, 0.3),
    ("Long Island City", "Queens", 40.7447, -73.9485, 1.5),
    ("Astoria", "Queens", 40.7644, -73.9235, 1.2),
    ("Sunnyside", "Queens", 40.7433, -73.9196, 0.5),
    ("Jackson Heights", "Queens", 40.7557, -73.8831, 0.6),
    ("Flushing", "Queens", 40.7675, -73.8331, 0.5),
    ("Forest Hills", "Queens", 40.7181, -73.8448, 0.4),
    ("Ridgewood", "Queens", 40.7043, -73.9018, 0.3),
    ("Jamaica", "Queens", 40.7027, -73.7890, 0.4),
    ("JFK Airport", "Queens", 40.6413, -73.7781, 6.0),
    ("LaGuardia Airport", "Queens", 40.7769, -73.8740, 5.0),
    ("Mott Haven", "Bronx", 40.8091, -73.9229, 0.4),
    ("Yankee Stadium", "Bronx", 40.8296, -73.9262, 0.5),
    ("Fordham", "Bronx", 40.8615, -73.8903, 0.3),
    ("Riverdale", "Bronx", 40.9005, -73.9064, 0.2),
    ("Pelham Bay", "Bronx", 40.8524, -73.8282, 0.2),
    ("St. George", "Staten Island", 40.6437, -74.0736, 0.2),
    ("New Dorp", "Staten Island", 40.5731, -74.1170, 0.1),
    ("Newark Airport", "EWR", 40.6895, -74.1745, 1.5),
]
AIRPORT_ZONES = {"JFK Airport", "LaGuardia Airport", "Newark Airport"}
BOROUGH_TIP = {"Manhattan": 0.45, "Brooklyn": 0.0, "Queens": -0.15, "Bronx": -0.7, "Staten Island": -0.5, "EWR": 0.3}

# Relative pickups per local hour (0..23).
WEEKDAY_HOURS = np.array([3, 2, 1, 1, 1, 2, 4, 7, 9, 8, 6, 6, 7, 7, 7, 8, 9, 10, 11, 10, 9, 8, 7, 5], dtype=float)
WEEKEND_HOURS = np.array([8, 7, 6, 4, 2, 1, 1, 2, 3, 5, 6, 7, 8, 8, 8, 8, 8, 8, 9, 9, 9, 10, 10, 9], dtype=float)


def _haversine_km(lat1, lon1, lat2, lon2):
    p1, p2 = np.radians(lat1), np.radians(lat2)
    a = np.sin((p2 - p1) / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(np.radians(lon2 - lon1) / 2) ** 2
    return 2 * 6371.0088 * np.arcsin(np.sqrt(a))


def zones_frame() -> pd.DataFrame:
    return pd.DataFrame(
        [(i + 1, name, borough, lat, lon) for i, (name, borough, lat, lon, _) in enumerate(ZONES)],
        columns=["zone_id", "zone", "borough", "lat", "lon"],
    )


def trips_frame(n: int = N_TRIPS, seed: int = SEED) -> pd.DataFrame:
    """The trips, sorted by pickup time, ``trip_id`` 1..n in that order."""
    return simulate(n, seed)[0]


def simulate(n: int = N_TRIPS, seed: int = SEED) -> tuple[pd.DataFrame, np.ndarray]:
    """The trips and, per trip, the probability of a tip the label was drawn with (the ceiling of
    what any model can learn: its ROC AUC on the trips is the best achievable)."""
    rng = np.random.default_rng(seed)
    zones = zones_frame()
    popularity = np.array([z[4] for z in ZONES])
    lat, lon = zones["lat"].to_numpy(), zones["lon"].to_numpy()
    is_airport = zones["zone"].isin(AIRPORT_ZONES).to_numpy()

    # Pickup times: a day, then an hour from that day's profile, then minute and second.
    days = pd.date_range(START, END - pd.Timedelta(days=1), freq="D")
    weekend_day = (days.day_of_week >= 5) | np.isin(days.date, list(HOLIDAYS))
    day_weight = np.where(weekend_day, 1.1, 1.0)
    day_idx = rng.choice(len(days), size=n, p=day_weight / day_weight.sum())
    hours = np.empty(n, dtype=int)
    for flag, profile in ((False, WEEKDAY_HOURS), (True, WEEKEND_HOURS)):
        mask = weekend_day[day_idx] == flag
        hours[mask] = rng.choice(24, size=mask.sum(), p=profile / profile.sum())
    seconds = rng.integers(0, 3600, size=n)
    pickup_at = days[day_idx] + pd.to_timedelta(hours, unit="h") + pd.to_timedelta(seconds, unit="s")

    # Zones: pickups by popularity; dropoffs favour popular zones near the pickup.
    pickup = rng.choice(len(ZONES), size=n, p=popularity / popularity.sum())
    centroid_km = _haversine_km(lat[:, None], lon[:, None], lat[None, :], lon[None, :])
    dropoff = np.empty(n, dtype=int)
    for z in range(len(ZONES)):
        mask = pickup == z
        if not mask.any():
            continue
        reach = 12.0 if is_airport[z] else 5.0
        weight = (popularity + 0.3) * np.exp(-centroid_km[z] / reach)
        weight[z] *= 0.3
        dropoff[mask] = rng.choice(len(ZONES), size=mask.sum(), p=weight / weight.sum())

    jitter = np.where(is_airport, 0.0015, 0.004)
    pickup_lat = lat[pickup] + rng.normal(0, 1, n) * jitter[pickup]
    pickup_lon = lon[pickup] + rng.normal(0, 1, n) * jitter[pickup] * 1.3
    dropoff_lat = lat[dropoff] + rng.normal(0, 1, n) * jitter[dropoff]
    dropoff_lon = lon[dropoff] + rng.normal(0, 1, n) * jitter[dropoff] * 1.3
    pickup_lat, pickup_lon, dropoff_lat, dropoff_lon = (np.round(a, 5) for a in (pickup_lat, pickup_lon, dropoff_lat, dropoff_lon))
    km = _haversine_km(pickup_lat, pickup_lon, dropoff_lat, dropoff_lon)
    passengers = rng.choice([1, 2, 3, 4, 5, 6], size=n, p=[0.70, 0.15, 0.05, 0.04, 0.04, 0.02])
    road_km = km * rng.uniform(1.15, 1.45, n) + 0.3
    fare = np.round(3.0 + 2.1 * road_km + rng.normal(0, 1.5, n).clip(-2, 6), 2).clip(3.0, None)

    # The label: did the rider tip? A logistic model of what the features can see.
    local_day = pd.DatetimeIndex(pickup_at)
    weekend = local_day.day_of_week.to_numpy() >= 5
    holiday = np.isin(local_day.date, list(HOLIDAYS))
    evening = np.isin(hours, [18, 19, 20, 21, 22, 23, 0, 1])
    early = np.isin(hours, [4, 5, 6])
    zone_effect = rng.normal(0, 0.5, len(ZONES))
    borough = zones["borough"].map(BOROUGH_TIP).to_numpy()
    logit = (
        -1.6
        + 1.0 * np.log1p(km)
        + 1.0 * evening
        - 0.9 * early
        - 0.8 * weekend
        - 0.9 * holiday
        + 1.6 * borough[pickup]
        + 1.1 * is_airport[pickup]
        - 0.3 * (passengers - 1)
        + zone_effect[pickup]
    )
    probability = 1.0 / (1.0 + np.exp(-logit))
    tipped = rng.random(n) < probability

    trips = pd.DataFrame({
        "pickup_at": pd.DatetimeIndex(pickup_at).as_unit("us"),
        "pickup_zone_id": zones["zone_id"].to_numpy()[pickup].astype("int32"),
        "dropoff_zone_id": zones["zone_id"].to_numpy()[dropoff].astype("int32"),
        "pickup_lat": pickup_lat,
        "pickup_lon": pickup_lon,
        "dropoff_lat": dropoff_lat,
        "dropoff_lon": dropoff_lon,
        "passenger_count": passengers.astype("int32"),
        "fare": fare,
        "tipped": tipped,
        "_probability": probability,
    }).sort_values(["pickup_at", "pickup_zone_id"], kind="stable").reset_index(drop=True)
    trips.insert(0, "trip_id", np.arange(1, len(trips) + 1, dtype="int64"))
    return trips.drop(columns="_probability"), trips["_probability"].to_numpy()


def write(out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    (out / "trips").mkdir(exist_ok=True)
    written = [out / "zones.csv"]
    zones_frame().to_csv(written[0], index=False, lineterminator="\n")
    trips = trips_frame()
    month = trips["pickup_at"].dt.strftime("%Y-%m")
    for key in sorted(month.unique()):
        path = out / "trips" / f"{key}.parquet"
        trips[month == key].reset_index(drop=True).to_parquet(path, index=False, compression="zstd")
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "data")
    args = parser.parse_args(argv)
    for path in write(args.out):
        print(f"{path}  {path.stat().st_size:,} bytes")


if __name__ == "__main__":
    main()
