"""Built-in binning and PCA at request time (issue 11, item 4): an on-demand function applies a
binning or PCA group's stored edges (labels) or fit to request values. The same object computes
the view's column offline and the online vector's value; an oracle compares the view with the
online vector row by row (0 differences), and the view with the group's own columns."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine import api
from engine.scaffold import init_project
from engine.transforms.builtin_functions import BinFunction, PcaComponent
from tests.conftest import run_engine

GROUPS = """  distance_bands:
    primary_key: [trip_id]
    event_time: requested_at
    from: trips
    binning:
      - {column: distance_km, quantiles: 5, name: distance_q}
      - {column: distance_km, edges: [2, 5, 10], labels: [short, medium, long, very_long], name: distance_band}
  trip_pca:
    primary_key: [trip_id]
    event_time: requested_at
    from: trips
    pca: {columns: [distance_km, driver_id], n_components: 2}

functions:
  dist_q: {binning: distance_bands.distance_q, inputs: [distance_km]}
  dist_band: {binning: distance_bands.distance_band, inputs: [distance_km]}
  dist_pc1: {pca: trip_pca.pc_1, inputs: [distance_km, driver_id]}
"""


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("builtins") / "tips"
    init_project(root, "tips")
    spec = root / "specs" / "project.yaml"
    text = spec.read_text().replace("functions:\n", GROUPS, 1)
    text = text.replace("    on_demand: [hour_of_day]", "    on_demand: [hour_of_day, dist_q, dist_band, dist_pc1]")
    text = text.replace("    transforms: {distance_km: standard_scaler}", "    transforms: {distance_km: standard_scaler, dist_band: one_hot_encoder}")
    spec.write_text(text)
    code, out, err = run_engine("apply", str(root))
    assert code == 0, out + err
    return root


def test_the_view_bins_and_projects_as_the_groups_do(project) -> None:
    view = api.read_feature_view(project, "tips")
    bands = api.read_feature_group(project, "distance_bands").merge(view[["trip_id", "dist_q", "dist_band"]], on="trip_id")
    assert len(bands) == len(view)
    assert bands["distance_q"].astype("Int64").tolist() == bands["dist_q"].astype("Int64").tolist()
    assert bands["distance_band"].astype(str).tolist() == bands["dist_band"].astype(str).tolist()
    pcs = api.read_feature_group(project, "trip_pca").merge(view[["trip_id", "dist_pc1"]], on="trip_id")
    assert np.allclose(pcs["pc_1"], pcs["dist_pc1"], rtol=0, atol=1e-12)  # the group multiplies matrices; the function sums in order


def test_online_vectors_equal_the_view_row_by_row(project) -> None:
    """The skew oracle: every spine row's request values, online, give the view's values exactly."""
    view = api.read_feature_view(project, "tips")
    view = view.merge(api.read_feature_group(project, "trips")[["trip_id", "driver_id"]], on="trip_id")  # the join key is not stored in the view
    state = api.online_state(project)
    rows = [{"driver_id": int(r.driver_id), "distance_km": float(r.distance_km), "requested_at": r.requested_at.isoformat()} for r in view.itertuples()]
    vectors = api.feature_vectors(project, "tips", rows, state=state)["vectors"]
    differences = 0
    for r, vec in zip(view.itertuples(), vectors):
        values = vec["values"]
        differences += values["dist_q"] != int(r.dist_q)
        differences += values["dist_band"] != str(r.dist_band)
        differences += np.float64(values["dist_pc1"]).tobytes() != np.float64(r.dist_pc1).tobytes()
    assert len(vectors) == len(view) >= 500
    assert differences == 0


def test_the_model_scores_online_with_the_built_ins(project) -> None:
    manifest = api.show_model(project, "tip_model")["manifest"]
    assert {"dist_q", "dist_band=long", "dist_pc1"} <= set(manifest["model_inputs"])
    assert "dist_q" not in manifest["function_code"]  # no code: the group's stored state
    out = api.predict_online(project, "api", [{"driver_id": 3, "distance_km": 12.5, "requested_at": "2024-02-20T10:00:00Z"}])
    assert out["predictions"][0]["status"] == "ok"


def test_new_edges_rebuild_the_view(project, tmp_path) -> None:
    import shutil

    root = tmp_path / "tips"
    shutil.copytree(project, root, symlinks=True)
    spec = root / "specs" / "project.yaml"
    spec.write_text(spec.read_text().replace("edges: [2, 5, 10]", "edges: [3, 6, 12]"))
    code, out, err = run_engine("plan", str(root))
    assert code == 0, out + err
    assert "feature_group:distance_bands@1" in out and "feature_view:tips@1" in out
    lines = {line.split()[1]: line for line in out.splitlines() if line.strip().startswith("+")}
    assert "feature_view:tips@1" in lines  # the view reads the group's stored edges: it runs again


@settings(max_examples=200, deadline=None)
@given(
    edges=st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=8, unique=True).map(sorted),
    values=st.lists(st.one_of(st.none(), st.floats(-1e7, 1e7)), min_size=1, max_size=30),
)
def test_bins_of_series_and_scalars_agree(edges, values) -> None:
    fn = BinFunction(edges)
    series = fn(pd.Series([np.nan if v is None else v for v in values], dtype="float64"))
    assert [None if pd.isna(s) else int(s) for s in series] == [fn(v) for v in values]


@settings(max_examples=200, deadline=None)
@given(rows=st.lists(st.tuples(st.one_of(st.none(), st.floats(-1e6, 1e6)), st.floats(-1e6, 1e6)), min_size=1, max_size=30))
def test_components_of_series_and_scalars_agree_bit_for_bit(rows) -> None:
    fn = PcaComponent([1.5, -2.0], [3.0, 0.5], [0.6, -0.8])
    a = pd.Series([np.nan if x is None else x for x, _ in rows], dtype="float64")
    b = pd.Series([y for _, y in rows], dtype="float64")
    batch = fn(a, b).tolist()
    scalars = [fn(x, y) for x, y in rows]
    for got, want in zip(batch, scalars):
        assert (want is None and math.isnan(got)) or np.float64(got).tobytes() == np.float64(want).tobytes()


def test_bad_built_in_references_are_positioned_exit_3(tmp_path) -> None:
    root = tmp_path / "tips"
    init_project(root, "tips")
    spec = root / "specs" / "project.yaml"
    bad = GROUPS.replace("dist_q: {binning: distance_bands.distance_q, inputs: [distance_km]}", "dist_q: {binning: distance_bands.distance_qq, inputs: [distance_km]}")
    bad = bad.replace("dist_band: {binning: distance_bands.distance_band, inputs: [distance_km]}", "dist_band: {binning: trip_pca.pc_1, inputs: [distance_km]}")
    bad = bad.replace("dist_pc1: {pca: trip_pca.pc_1, inputs: [distance_km, driver_id]}", "dist_pc1: {pca: trip_pca.pc_1, inputs: [distance_km]}\n  both: {pca: trip_pca.pc_1, python: a.b:c, returns: int64, inputs: [x]}")
    spec.write_text(spec.read_text().replace("functions:\n", bad, 1))
    code, out, err = run_engine("validate", str(root))
    text = out + err
    assert code == 3, text
    assert "functions.both: a function needs exactly one of python, binning or pca; found both 'python' and 'pca'" in text
    spec.write_text(spec.read_text().replace("\n  both: {pca: trip_pca.pc_1, python: a.b:c, returns: int64, inputs: [x]}", ""))
    code, out, err = run_engine("validate", str(root))
    text = out + err
    assert code == 3, text
    assert "functions.dist_q.binning: 'distance_qq' is not a bin column of feature group 'distance_bands'" in text and "did you mean 'distance_q'?" in text
    assert "functions.dist_band.binning: feature group 'trip_pca' is not a binning group" in text
    assert "functions.dist_pc1.inputs: 'dist_pc1' takes 2 inputs, one per PCA column (distance_km, driver_id), in that order, got 1" in text
