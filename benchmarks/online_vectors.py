"""Online feature-vector latency in-process on examples/flights (issue 4 item 8).

Run ``engine apply examples/flights`` first. Publishes an online snapshot of the workspace
(read-only connection), then times ``FeatureVectorService.vector`` (5 joined feature groups,
2 on-demand functions) and vector + transform_row + predict for model delay_xgb, one row at a
time, over random keys. Prints p50/p99 in microseconds. Target: vector p50 <= 25 us, p99 <= 100 us.
"""

from __future__ import annotations

import random
import sys
import time
from pathlib import Path

import pandas as pd

from engine import api
from engine.serving.online import load_state
from engine.session import reading
from engine.sql.ops import Relation, Scan
from engine.store.online import publish_online_snapshot
from engine.state.workspace import Workspace

PROJECT = Path(sys.argv[1] if len(sys.argv) > 1 else "examples/flights")
N = 20_000


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def main() -> None:
    checked = api.validate(PROJECT)
    ws = Workspace.for_project(checked.project.root)
    columns = ("origin", "carrier", "distance", "dest", "tailnum", "sched_dep_time", "sched_dep_ts")
    with reading(ws) as stores:
        snapshot = publish_online_snapshot(stores, checked.project, ws, "bench")
        flights = stores.backend.frame(Scan(Relation("offline", "flights__v1"), columns=columns)).sample(5000, random_state=7)
    state = load_state(checked.project, ws.root, snapshot)
    ep = state.model("delay_xgb")
    service = ep.service
    rows = []
    for r in flights.itertuples(index=False):
        rows.append({"origin": r.origin, "carrier": r.carrier, "distance": int(r.distance), "dest": r.dest,
                     "tailnum": r.tailnum, "sched_dep_time": int(r.sched_dep_time), "sched_dep_ts": pd.Timestamp(r.sched_dep_ts)})
    rng = random.Random(7)
    picks = [rng.choice(rows) for _ in range(N)]
    for row in picks[:1000]:
        service.vector(row, {})
    timer = time.perf_counter_ns
    vec, full, parts = [], [], {"vector": [], "transform_row": [], "predict": []}
    for row in picks:
        t0 = timer()
        vr = service.vector(row, {})
        t1 = timer()
        vec.append((t1 - t0) / 1000)
    for row in picks[:5000]:
        t0 = timer()
        vr = service.vector(row, {})
        t1 = timer()
        x = ep.model.transforms.transform_row(vr.values)
        t2 = timer()
        ep.model.predict_vectors([x])
        t3 = timer()
        full.append((t3 - t0) / 1000)
        parts["vector"].append((t1 - t0) / 1000)
        parts["transform_row"].append((t2 - t1) / 1000)
        parts["predict"].append((t3 - t2) / 1000)
    # where the vector time goes: the on-demand functions alone
    ods = service._on_demand
    od_times = []
    for row in picks[:5000]:
        t0 = timer()
        for od in ods:
            od.fn(*[row.get(c) for c in od.inputs])
        od_times.append((timer() - t0) / 1000)
    print(f"feature view delays: {len(service._joins)} joined groups, {len(ods)} on-demand functions, {len(service.layout.features)} features")
    print(f"vector            p50 {pct(vec, .5):8.1f} us   p99 {pct(vec, .99):8.1f} us   (n={len(vec)})")
    print(f"  on-demand fns   p50 {pct(od_times, .5):8.1f} us   p99 {pct(od_times, .99):8.1f} us")
    for name, values in parts.items():
        print(f"  {name:15s} p50 {pct(values, .5):8.1f} us   p99 {pct(values, .99):8.1f} us")
    print(f"vector+predict    p50 {pct(full, .5):8.1f} us   p99 {pct(full, .99):8.1f} us   (model {ep.model.ref})")


if __name__ == "__main__":
    main()
