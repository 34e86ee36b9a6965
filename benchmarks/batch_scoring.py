"""Benchmark: batch scoring of December 2013 on examples/flights with the engine's batch path
(``score_batch``) vs. a hand-written pandas + model script on the same data, in the same run.

Run by hand (not a test), after ``engine apply examples/flights`` (~90 s the first time)::

    python benchmarks/batch_scoring.py                       # model delay_xgb, best of 3
    python benchmarks/batch_scoring.py --model delay_baseline --repeat 5

The example's workspace is copied into a temporary directory first (catalog and model registry
copied, the lake's Parquet files hard-linked), so the benchmark never writes into
``examples/flights/.engine`` and can run while it is in use. This times the scoring function
(``score_batch``), not a whole ``engine apply``: the figure is the scoring path's own.

* engine: ``score_batch`` — resolves and verifies the model version, takes the feature-view rows
  of the spine rows in [2013-12-01, 2014-01-01) (the published view when its fingerprint proves it
  current, as after an apply; else re-materialised point-in-time for those rows, which is timed
  separately), applies the stored transforms, predicts, and writes the predictions table in one
  transaction.
* hand: sqlite3 + DuckDB + pandas — reads the model version's manifest from the catalog, the
  already-materialised feature-view rows of December from the view table's committed Delta
  version (``views/delays__v1``, by its file list), loads the same artifact with XGBoost /
  skops, applies the stored transforms (``FittedTransforms``), calls ``predict_proba`` and writes
  the probabilities to a Parquet file.

If the example's workspace is older than its spec, the copy is brought up to date first
(``api.apply`` of the feature views into the copy; models are not retrained).
Both include loading the model. The two sets of probabilities are compared before the figures are
printed. Target: engine time <= 1.2x the hand-written script.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "flights"
START, END = "2013-12-01", "2014-01-01"
TARGET = 1.2


def copy_workspace(source: Path, into: Path) -> Path:
    """A private copy of the example's workspace: the catalog and the model registry copied, the
    lake tables' Parquet files hard-linked (never rewritten: a write adds files), their Delta logs
    copied."""
    if not (source / "catalog.sqlite").exists():
        sys.exit(f"no workspace at {source}: run `engine apply examples/flights` first")
    target = into / "ws"

    def link_or_copy(src: str, dst: str) -> str:
        if src.endswith(".parquet"):
            os.link(src, dst)
            return dst
        return shutil.copy2(src, dst)

    shutil.copytree(source, target, copy_function=link_or_copy, ignore=shutil.ignore_patterns("tmp", "envs", "*.lock", "runs"))
    (target / "tmp").mkdir(exist_ok=True)
    return target


def is_current(checked, workspace) -> bool:
    """Whether the workspace's published feature view is current (else score_batch re-materialises)."""
    from engine.serving.batch import ScoringContext, published_view
    from engine.session import writing

    with writing(workspace, sandboxed=True) as stores:
        ctx = ScoringContext.for_project(stores, checked, "check")
        return all(published_view(ctx, fv) is not None for fv in checked.project.feature_views.values())


def engine_run(checked, workspace, model: str, run_id: str, *, materialise: bool = False):
    """Seconds and predictions of one ``score_batch`` call (``materialise``: never reuse the view)."""
    from unittest import mock

    from engine.model.objects import InferenceJob
    from engine.serving import batch
    from engine.serving.batch import ScoringContext, score_batch
    from engine.session import writing
    from engine.sql.ops import Relation, Scan

    if materialise:
        with mock.patch.object(batch, "published_view", lambda ctx, fv: None):
            return engine_run(checked, workspace, model, run_id)

    from engine.state.digests import digests

    job = InferenceJob(name="december_bench", mode="batch", model=model, range=(START, END), output_table="december_bench")
    # As in ``engine apply``: the workspace's digest cache is active (code digests of the
    # on-demand functions, checked against the model version's, are not re-parsed).
    with digests(workspace), writing(workspace, sandboxed=True) as stores:
        started = time.perf_counter()
        outcome = score_batch(ScoringContext.for_project(stores, checked, run_id), job)
        seconds = time.perf_counter() - started
        table = Relation.parse(outcome.table)
        proba = [c for c in stores.backend.columns(table) if c.startswith("proba_")][-1]
        frame = stores.backend.frame(Scan(table, columns=("flight_id", proba), order_by=("flight_id",))).rename(columns={proba: "proba"})
    return seconds, outcome, frame


def hand_run(workspace, model: str, out: Path):
    """The hand-written script: the catalog read with sqlite3, the view's committed Delta version
    read by its file list with DuckDB, pandas + the model, the probabilities written to Parquet;
    no engine scoring code."""
    import json
    import sqlite3

    import duckdb
    import numpy as np
    import pandas as pd
    from deltalake import DeltaTable

    from engine.transforms.model_dependent import FittedTransforms

    started = time.perf_counter()
    catalog = sqlite3.connect(f"file:{workspace.catalog}?mode=ro", uri=True)
    try:
        name, _, selector = model.partition("@")
        sql = "SELECT manifest, version FROM model_versions WHERE name = ?"
        params: list = [name]
        if selector and selector.isdigit():
            sql += " AND version = ?"
            params.append(int(selector))
        row = catalog.execute(sql + " ORDER BY version DESC LIMIT 1", params).fetchall()[0]
        manifest, version = json.loads(row[0]), row[1]
        view = f"{manifest['feature_view']}__v{manifest['feature_view_version']}"
        committed = catalog.execute("SELECT version FROM tables WHERE schema_name = 'views' AND table_name = ?", [view]).fetchall()[0][0]
    finally:
        catalog.close()
    files = DeltaTable(str(workspace.tables_dir / "views" / view), version=committed).file_uris()
    time_col = manifest["layout"]["event_time"]
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        frame = con.execute(
            f'SELECT * FROM read_parquet(?, union_by_name = true) WHERE "{time_col}" >= ?::TIMESTAMPTZ AND "{time_col}" < ?::TIMESTAMPTZ',
            [files, START, END],
        ).df()
    finally:
        con.close()
    artifact = workspace.models_dir / manifest["model"] / str(version) / manifest["artifact"]["file"]
    if manifest["artifact"]["format"].startswith("xgboost"):
        import xgboost

        estimator = xgboost.XGBClassifier()
        estimator.load_model(str(artifact))
    else:
        import skops.io as sio

        estimator = sio.load(artifact, trusted=sio.get_untrusted_types(file=artifact))
    transforms = FittedTransforms.from_dict(manifest["transformers"])
    X = transforms.transform(frame[manifest["feature_columns"]]).to_numpy(dtype=np.float64)
    proba = estimator.predict_proba(X)[:, -1]
    scored = pd.DataFrame({"flight_id": frame["flight_id"].to_numpy(), "proba": proba})
    scored.to_parquet(out)  # keep the predictions, as a real script would
    seconds = time.perf_counter() - started
    return seconds, scored.sort_values("flight_id").reset_index(drop=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project", type=Path, default=EXAMPLE)
    parser.add_argument("--model", default="delay_xgb", help="model reference (name, name@3, name@alias, …)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per method; the best is kept")
    args = parser.parse_args()

    import numpy as np

    from engine import api
    from engine.state.workspace import Workspace

    checked = api.validate(args.project)
    with tempfile.TemporaryDirectory(prefix="engine-bench-") as tmp:
        workspace = Workspace(copy_workspace(args.project / ".engine", Path(tmp)))
        if not is_current(checked, workspace):
            # The spec or data changed since the example was applied: bring the copy up to date
            # (feature pipelines and views only; the registered models are kept).
            print("the example's workspace is older than its spec: applying the feature views into the copy …", file=sys.stderr)
            api.apply(args.project, workspace=workspace.root, select=tuple(checked.project.feature_views))
        # warm every path once (imports, page cache), then alternate them
        engine_run(checked, workspace, args.model, "20140101T000000Z-warmup00")
        engine_run(checked, workspace, args.model, "20140101T000000Z-warmup01", materialise=True)
        hand_run(workspace, args.model, Path(tmp) / "hand.parquet")
        engine_times, mat_times, hand_times = [], [], []
        for i in range(args.repeat):
            seconds, outcome, engine_frame = engine_run(checked, workspace, args.model, f"20140101T00000{i % 10}Z-bench{i:03d}")
            engine_times.append(seconds)
            seconds, _, mat_frame = engine_run(checked, workspace, args.model, f"20140101T00000{i % 10}Z-mat{i:05d}", materialise=True)
            mat_times.append(seconds)
            seconds, hand_frame = hand_run(workspace, args.model, Path(tmp) / "hand.parquet")
            hand_times.append(seconds)
    if not mat_frame.equals(engine_frame):
        sys.exit("the published view and the re-materialised view scored differently")
    if engine_frame.flight_id.tolist() != hand_frame.flight_id.tolist():
        sys.exit("the two methods scored different rows")
    diff = float(np.max(np.abs(engine_frame.proba.to_numpy() - hand_frame.proba.to_numpy())))
    if diff > 1e-6:
        sys.exit(f"the two methods disagree: max |proba difference| = {diff}")
    best_engine, best_hand = min(engine_times), min(hand_times)
    ratio = best_engine / best_hand
    print(f"batch scoring {START} .. {END} with {outcome.model_ref}: {outcome.rows} rows")
    print(f"  engine score_batch (published view current): best {best_engine:.3f} s  (median {statistics.median(engine_times):.3f} s)")
    print(f"  engine, re-materialising the view (view not current): best {min(mat_times):.3f} s  ({min(mat_times) / best_hand:.2f}x)")
    print(f"  hand pandas+model  : best {best_hand:.3f} s  (median {statistics.median(hand_times):.3f} s)")
    print(f"  ratio              : {ratio:.2f}x  (target <= {TARGET}x: {'met' if ratio <= TARGET else 'NOT met'})")
    print(f"  max |proba difference| = {diff:.2e}")
    return 0 if ratio <= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
