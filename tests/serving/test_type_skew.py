"""issue 11, item 6: offline and online agree on every column type. A feature view joins a group
with one column of each supported type and a windowed integer sum; for every key, the online
vector's JSON value equals the offline view row's value (as the model or an on-demand function
would get it), with the same JSON type — numbers as numbers, never strings."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest

from engine import api
from engine.serving.online import jsonable
from tests.conftest import write
from tests.serving.conftest import publish

SPEC = """
spec_version: 1
project: types
sources:
  events_raw: {format: csv, path: data/events.csv}
  spine_raw: {format: csv, path: data/spine.csv}
feature_groups:
  spine:
    primary_key: [sid]
    event_time: at
    online: false
    sql: SELECT sid, k, CAST(at AS TIMESTAMPTZ) AS at, label FROM spine_raw
  typed:
    primary_key: [k]
    event_time: t
    sql: |
      SELECT k, CAST(t AS TIMESTAMPTZ) AS t,
        CAST(b AS BOOLEAN) AS f_bool, CAST(n AS TINYINT) AS f_tinyint, CAST(n AS SMALLINT) AS f_smallint,
        CAST(n AS INTEGER) AS f_integer, CAST(n AS BIGINT) * 1000000000 AS f_bigint,
        CAST(x AS FLOAT) AS f_float, CAST(x AS DOUBLE) AS f_double, CAST(x AS DECIMAL(10, 2)) AS f_decimal,
        CAST(s AS VARCHAR) AS f_varchar, CAST(t AS DATE) AS f_date, CAST(t AS TIMESTAMP) AS f_timestamp
      FROM events_raw
  sums:
    primary_key: [k]
    event_time: t
    from: typed
    aggregations:
      - {column: f_integer, function: sum, window: 7d, name: int_sum_7d}
      - {column: f_bigint, function: sum, window: 7d, name: bigint_sum_7d}
      - {column: f_integer, function: count, window: 7d, name: n_7d}
      - {column: f_double, function: mean, window: 7d, name: x_mean_7d}
feature_views:
  v:
    spine: spine
    label: label
    join:
      - {feature_group: typed, on: [k]}
      - {feature_group: sums, on: [k]}
"""

EVENTS = """k,t,b,n,x,s
1,2024-01-01 10:00:00,true,3,1.25,a
1,2024-01-02 10:00:00,false,4,2.5,b
2,2024-01-01 11:00:00,true,-7,-0.75,c
3,2024-01-03 09:30:00,,,,
"""

SPINE = """sid,k,at,label
10,1,2024-02-01 00:00:00,1
11,2,2024-02-01 00:00:00,0
12,3,2024-02-01 00:00:00,1
"""


@pytest.fixture(scope="module")
def typed(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("types") / "types"
    write(root, "engine.yaml", "project: types\n")
    write(root, "specs/types.yaml", SPEC)
    write(root, "data/events.csv", EVENTS)
    write(root, "data/spine.csv", SPINE)
    api.apply(root)
    publish(root)
    return root


def _offline_json(value: object) -> object:
    """An offline view value as the JSON a model-serving caller would see for it."""
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    return json.loads(json.dumps(jsonable(value)))


def test_every_type_has_the_same_value_and_json_type_offline_and_online(typed: Path) -> None:
    view = api.read_feature_view(typed, "v").set_index("sid")
    features = [c for c in view.columns if c.startswith(("f_", "int_sum", "bigint_sum", "n_", "x_mean"))]
    assert len(features) == 15
    answer = api.feature_vectors(typed, "v", [{"k": k} for k in (1, 2, 3)])
    body = json.loads(json.dumps(answer))  # what goes over HTTP
    for sid, vector in zip((10, 11, 12), body["vectors"]):
        for name in features:
            offline = _offline_json(view.loc[sid, name])
            online = vector["values"][name]
            assert type(online) is type(offline) or (online is None and offline is None), (sid, name, offline, online)
            if isinstance(offline, float):
                assert math.isclose(online, offline, rel_tol=1e-6), (sid, name, offline, online)
            else:
                assert online == offline, (sid, name, offline, online)
    one = body["vectors"][0]["values"]
    assert one["int_sum_7d"] == 7 and isinstance(one["int_sum_7d"], int)  # an integer sum is an integer
    assert one["bigint_sum_7d"] == 7_000_000_000
    assert one["f_decimal"] == 2.5 and isinstance(one["f_decimal"], float)


def test_integer_window_sums_are_stored_as_bigint(typed: Path) -> None:
    columns = api.show_feature_group(typed, "sums")["columns"]
    assert columns["int_sum_7d"] == "BIGINT" and columns["bigint_sum_7d"] == "BIGINT" and columns["n_7d"] == "BIGINT"
