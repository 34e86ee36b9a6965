"""`engine init`: write a small, working project in the recommended mono-repo layout, or only the
``engine.yaml`` that marks an existing project's root.

Owns the template files only; the generated project is validated and applied by the tests.
"""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

from engine.errors import UsageError

_NAME = re.compile(r"^[a-z][a-z0-9_]{0,40}$")
MARKER = "engine.yaml"
SCHEMA_FILE = "schemas/engine.schema.json"  # what the specs' $schema line points at, relative to the root


def _sample_data(seed: int = 7, n: int = 600) -> tuple[str, str]:
    """Deterministic sample rides and drivers, with a learnable 'tipped' label."""
    rng = random.Random(seed)
    drivers = ["driver_id,rating,years"]
    ratings = {}
    for d in range(1, 21):
        ratings[d] = round(rng.uniform(3.0, 5.0), 2)
        drivers.append(f"{d},{ratings[d]},{rng.randint(0, 9)}")
    trips = ["trip_id,driver_id,requested_at,distance_km,tipped"]
    t = 0
    for i in range(1, n + 1):
        t += rng.randint(4000, 14000)
        d = rng.randint(1, 20)
        km = round(rng.gammavariate(2.0, 3.0), 2)
        tipped = 2.0 * (ratings[d] - 4) + 0.15 * km - 1 + rng.gauss(0, 0.5) > 0
        day, rest = divmod(t, 86400)
        ts = f"2024-{1 + day // 28:02d}-{1 + day % 28:02d} {rest // 3600:02d}:{rest % 3600 // 60:02d}:{rest % 60:02d}"
        trips.append(f"{i},{d},{ts},{km},{str(tipped).lower()}")
    return "\n".join(trips) + "\n", "\n".join(drivers) + "\n"


def marker_text(name: str, specs: str | None = None) -> str:
    """The ``engine.yaml`` of a project: its name and, unless it is the default ``specs/``, where its specs are."""
    lines = [
        "# The root of this engine project: engine verbs run in this folder or below find it here.",
        f"project: {name}",
        f"specs: [{specs or 'specs/'}]       # spec files: files, folders or globs, relative to this file",
        "# workspace: .engine   # where apply keeps its state (the default)",
    ]
    return "\n".join(lines) + "\n"


def _schema_text() -> str:
    """The spec JSON Schema, as `engine schema` prints it."""
    from engine.model.formats import format_names
    from engine.spec.schema import load_schema

    return json.dumps(load_schema(format_names()), indent=2) + "\n"


TIME_MODULE_HEAD = '''"""Time features. Each works on a scalar (online) and on a pandas Series (offline)."""

import pandas as pd
'''

HOUR_OF_DAY = '''

def hour_of_day(ts):
    """Hour (0-23, UTC) of a timestamp.

    >>> hour_of_day(pd.Timestamp("2024-01-01 13:45", tz="UTC"))
    13
    """
    if isinstance(ts, pd.Series):
        return ts.dt.hour
    return pd.Timestamp(ts).hour
'''


def readme_text(name: str, layout: str, tests: str = "tests of the feature functions", more: str = "") -> str:
    """A project's README: what it is, the verbs to run, its ``layout`` paragraph, then ``more``."""
    return f"""# {name}

A feature-store ML system declared with engine: features, training and inference from the
specs in `specs/`. `engine.yaml` marks the project root: run these anywhere below it.

```sh
engine validate          # what CI runs on every pull request (pure, fast)
engine plan              # what apply would do
engine apply             # build features, train, score
engine show              # every object and its state
engine show models       # registered model versions and their metrics
python -m pytest tests   # {tests}
```

{layout}{more}"""


def project_files(name: str, functions_module: str, readme: str, requires: str = "") -> dict[str, str]:
    """The files every generated project has: marker, schema, sample data and the sample spec,
    whose ``hour_of_day`` function comes from ``functions_module`` (``pkg.time``); ``requires`` is
    the spec's ``requires:`` block (a feature library), if any."""
    trips, drivers = _sample_data()
    return {
        MARKER: marker_text(name),
        SCHEMA_FILE: _schema_text(),
        ".gitignore": ".engine/\nout/\n__pycache__/\n",
        "README.md": readme,
        "data/trips.csv": trips,
        "data/drivers.csv": drivers,
        "specs/project.yaml": spec_text(name, functions_module, requires),
    }


def features_test_text(module: str) -> str:
    """The project's test of the ``hour_of_day`` its spec uses, from ``module``."""
    return f'''import pandas as pd

from {module} import hour_of_day


def test_hour_of_day_scalar_and_series_agree():
    times = pd.Series(pd.to_datetime(["2024-01-01 00:10", "2024-01-01 23:59"], utc=True))
    assert list(hour_of_day(times)) == [hour_of_day(t) for t in times] == [0, 23]
'''


def package_files(name: str) -> dict[str, str]:
    """The project's own feature package ``<name>_features`` (pip-installable) and its tests."""
    pkg = f"{name}_features"
    return {
        "pyproject.toml": f"""[project]
name = "{name.replace('_', '-')}-features"
version = "0.1.0"
requires-python = ">=3.11"
dependencies = ["pandas"]

[tool.setuptools]
packages = ["{pkg}"]
""",
        f"{pkg}/__init__.py": '"""Feature functions of this project: pure, deterministic, tested."""\n',
        f"{pkg}/time.py": TIME_MODULE_HEAD + HOUR_OF_DAY,
        "tests/test_features.py": features_test_text(f"{pkg}.time"),
        "tests/conftest.py": "import sys\nfrom pathlib import Path\n\nsys.path.insert(0, str(Path(__file__).resolve().parents[1]))\n",
    }


def _files(name: str) -> dict[str, str]:
    pkg = f"{name}_features"
    readme = readme_text(name, f"""Layout: `specs/` (YAML), `{pkg}/` (feature functions, importable and pip-installable),
`data/` (sample data), `tests/`, `schemas/` (the spec JSON Schema for editors; refresh it after
upgrading engine with `engine schema > {SCHEMA_FILE}`).
""")
    return {**project_files(name, f"{pkg}.time", readme), **package_files(name)}


def spec_text(name: str, functions_module: str, requires: str = "") -> str:
    """The sample spec: trips, drivers, a trailing aggregate, ``hour_of_day`` from ``functions_module``, a model and two inference jobs."""
    return f"""# yaml-language-server: $schema=../{SCHEMA_FILE}
spec_version: 1
project: {name}
{requires}
sources:
  trips_raw: {{format: csv, path: data/trips.csv, timezone: UTC}}
  drivers_raw: {{format: csv, path: data/drivers.csv}}

feature_groups:
  trips:
    description: One row per trip; the spine of the feature view (label tipped).
    primary_key: [trip_id]
    event_time: requested_at
    sql: SELECT trip_id, driver_id, requested_at, distance_km, tipped FROM trips_raw
    expectations:
      - {{column: distance_km, between: [0, 500]}}
  drivers:
    primary_key: [driver_id]
    sql: SELECT driver_id, rating, years FROM drivers_raw
  driver_activity:
    description: Trailing activity per driver; a row at t only counts trips up to t.
    primary_key: [driver_id]
    event_time: requested_at
    from: trips
    aggregations:
      - {{column: distance_km, function: mean, window: 7d, name: distance_mean_7d}}
      - {{column: trip_id, function: count, window: 7d, name: trips_7d}}

functions:
  hour_of_day: {{python: {functions_module}:hour_of_day, inputs: [requested_at], returns: int64}}

feature_views:
  tips:
    spine: trips
    label: tipped
    features: [distance_km]
    join:
      - {{feature_group: drivers, on: [driver_id], prefix: driver_}}
      - {{feature_group: driver_activity, on: [driver_id], ttl: 7d}}
    on_demand: [hour_of_day]
    transforms: {{distance_km: standard_scaler}}

models:
  tip_model:
    feature_view: tips
    estimator: xgboost.XGBClassifier
    params: {{n_estimators: 50, max_depth: 3}}
    split: {{by: time, test_from: "2024-03-01"}}
    metrics: [roc_auc, accuracy]
    aliases: [production]

inference:
  march:
    mode: batch
    model: tip_model@production
    range: ["2024-03-01", "2024-04-01"]
    output: {{table: march_scores, path: out/march_scores.csv}}
  api:
    mode: online
    model: tip_model@production
    keys: [driver_id]
    request: [distance_km, requested_at]
"""


def checked_name(root: Path, name: str | None) -> str:
    """The project name: ``name``, else derived from the folder's; UsageError unless an identifier."""
    name = name or re.sub(r"[^a-z0-9_]", "_", root.resolve().name.lower()).strip("_") or "project"
    if not _NAME.match(name):
        raise UsageError(f"project name '{name}' must be lowercase letters, digits and _ (starting with a letter); pass --name")
    return name


def check_empty(root: Path, directory: str | Path, marker_hint: bool = True) -> None:
    """Refuse a ``root`` that exists and holds anything: engine init never overwrites."""
    if root.exists() and any(root.iterdir()):
        if (root / MARKER).exists():
            hint = f" (it already holds {MARKER})"
        else:
            hint = f"; to mark an existing project, engine init {directory} --marker-only" if marker_hint else ""
        raise UsageError(f"{root} is not empty; engine init writes only into a new or empty folder{hint}")


def write_files(root: Path, files: dict[str, str]) -> list[Path]:
    """Write ``files`` (relative path -> text) below ``root``; returns their paths."""
    written = []
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def init_project(directory: str | Path, name: str | None = None) -> list[Path]:
    """Write a new project into ``directory`` (which must not exist or be empty)."""
    root = Path(directory)
    name = checked_name(root, name)
    check_empty(root, directory)
    return write_files(root, _files(name))


def mark_project(directory: str | Path, name: str | None = None) -> Path:
    """Write only ``engine.yaml`` into an existing project folder; returns its path.

    The name defaults to the specs' ``project:`` (else the folder's name). The specs are the
    ``specs/`` folder when there is one, else every YAML file below the folder, as ``engine validate
    DIRECTORY`` reads them today.
    """
    from engine.spec.project_files import load_spec

    root = Path(directory)
    marker = root / MARKER
    if not root.is_dir():
        raise UsageError(f"{root} is not a folder; engine init --marker-only marks an existing project")
    if marker.exists():
        raise UsageError(f"{marker} exists already")
    if name is None:
        from engine.errors import SpecError

        try:
            declared = load_spec(root).data.get("project")
        except SpecError:  # the specs' own problems are validate's to report, after marking
            declared = None
        name = declared if isinstance(declared, str) else None
    name = checked_name(root, name)
    marker.write_text(marker_text(name, None if (root / "specs").is_dir() else "."), encoding="utf-8")
    return marker
