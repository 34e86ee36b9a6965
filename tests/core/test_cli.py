"""CLI contract: exit codes, no tracebacks for bad input, fast help, the schema verb, and
fingerprints that ignore key order and formatting (STYLE habit 7)."""

from __future__ import annotations

import json
import random
from pathlib import Path

import yaml
from hypothesis import given, settings, strategies as st

from engine import api
from engine.compiler.planner import compile_steps
from tests.conftest import REPO, TINY_SPEC, run_engine, write

BAD_YAML = {
    "y1_unclosed": "spec_version: 1\nproject: [a, b\n",
    "y2_alias": "a: &x [1, 2]\nb: *x\n",
    "y4_duplicate": "spec_version: 1\nproject: a\nproject: b\n",
    "y5_tag": "project: !!python/object/apply:os.system ['touch marker']\n",
}


def test_bad_yaml_exits_3_without_traceback_or_workspace(tmp_path: Path):
    for name, text in BAD_YAML.items():
        root = tmp_path / name
        write(root, "specs/s.yaml", text)
        for verb in ("validate", "plan", "apply"):
            rc, out, err = run_engine(verb, str(root), cwd=root)
            assert rc == 3, (name, verb, err)
            assert "Traceback" not in err and err.startswith("specs/s.yaml:"), (name, verb, err)
            assert not (root / ".engine").exists()
            assert not (root / "marker").exists() and not (REPO / "marker").exists()


def test_missing_path_is_a_positioned_spec_error(tmp_path: Path):
    rc, _, err = run_engine("validate", str(tmp_path / "nope"))
    assert rc == 3 and "Traceback" not in err


def test_unknown_option_is_a_usage_error():
    rc, _, err = run_engine("apply", "--no-such-option")
    assert rc == 2 and "No such option" in err


def test_help_lists_every_verb_and_exit_codes():
    rc, out, _ = run_engine("--help")
    assert rc == 0
    for verb in ("validate", "plan", "apply", "show", "schema"):
        assert verb in out
    assert "75 project locked" in out


def test_schema_verb_prints_the_shipped_schema():
    rc, out, _ = run_engine("schema")
    assert rc == 0
    assert json.loads(out) == json.loads((REPO / "schemas/engine.schema.json").read_text())


def _shuffled(value, rng: random.Random):
    if isinstance(value, dict):
        items = list(value.items())
        rng.shuffle(items)
        return {k: _shuffled(v, rng) for k, v in items}
    if isinstance(value, list):
        return [_shuffled(v, rng) for v in value]
    return value


def _fingerprints(root: Path) -> dict[str, tuple[str, str]]:
    steps = compile_steps(api.validate(root))
    return {k: (s.definition_fingerprint, s.fingerprint) for k, s in steps.items()}


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10_000), flow=st.booleans())
def test_fingerprints_ignore_key_order_and_yaml_style(tmp_path_factory, seed: int, flow: bool):
    from tests.conftest import ORDERS_CSV, USERS_CSV, USERS_PY

    base = tmp_path_factory.mktemp("fp")
    for name, text in (("a", TINY_SPEC), ("b", None)):
        root = base / name
        write(root, "data/orders.csv", ORDERS_CSV)
        write(root, "data/users.csv", USERS_CSV)
        write(root, "shop_features/__init__.py", "")
        write(root, "shop_features/users.py", USERS_PY)
        if text is None:
            data = _shuffled(yaml.safe_load(TINY_SPEC), random.Random(seed))
            text = yaml.safe_dump(data, sort_keys=False, default_flow_style=flow, width=60)
        write(root, "specs/shop.yaml", text)
    assert _fingerprints(base / "a") == _fingerprints(base / "b")


def test_run_repeats_micro_batches_and_picks_up_new_rows(tiny_project: Path):
    """`engine run NAME --every` ticks until --max-runs; a file change between ticks is picked up."""
    import subprocess
    import sys
    import time

    proc = subprocess.Popen(
        [sys.executable, "-m", "engine", "run", str(tiny_project), "orders", "--every", "1s", "--max-runs", "4", "--format", "json"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    time.sleep(2.5)
    with open(tiny_project / "data/orders.csv", "a") as fh:
        fh.write("6,11,9.0,2024-01-07 08:00:00\n")
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    ticks = [json.loads(line) for line in out.splitlines()]
    assert len(ticks) == 4
    assert ticks[0]["steps"][0]["status"] == "ran"  # first tick builds
    changed = [t for t in ticks[1:] if t.get("status") != "unchanged"]
    assert len(changed) == 1  # exactly the tick after the new row
    assert len(api.read_feature_group(tiny_project, "orders")) == 6


def test_run_stops_cleanly_on_ctrl_c(tiny_project: Path):
    import signal
    import subprocess
    import sys
    import time

    proc = subprocess.Popen(
        [sys.executable, "-m", "engine", "run", str(tiny_project), "orders", "--every", "1s"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    time.sleep(3)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "stopped after" in err and "Traceback" not in err


def test_init_writes_a_project_that_validates_and_refuses_a_non_empty_folder(tmp_path: Path):
    root = tmp_path / "tips"
    rc, out, err = run_engine("init", str(root))
    assert rc == 0, err
    assert (root / "specs/project.yaml").exists() and (root / "tips_features/time.py").exists()
    rc, out, err = run_engine("validate", str(root))
    assert rc == 0, err
    assert "project 'tips'" in out
    rc, _, err = run_engine("init", str(root))
    assert rc == 2 and "is not empty" in err
    rc, out, err = run_engine("apply", str(root), "--format", "json")
    assert rc == 0, err
    assert {s["status"] for s in json.loads(out)["steps"]} == {"ran"}
    assert (root / "out/march_scores.csv").exists()


def test_lineage_shows_what_an_object_reads_and_what_reads_it(tiny_project: Path):
    rc, out, err = run_engine("lineage", str(tiny_project), "orders")
    assert rc == 0, err
    from tests.conftest import check_golden

    check_golden("lineage/tiny_orders.txt", out)
    rc, out, _ = run_engine("lineage", str(tiny_project), "--format", "json")
    doc = json.loads(out)
    assert {"from": "source:orders_raw", "to": "feature_group:orders@1"} in doc["edges"]
    assert {"from": "feature_group:orders@1", "to": "feature_group:user_spend@1"} in doc["edges"]
    rc, _, err = run_engine("lineage", str(tiny_project), "orderz")
    assert rc == 2 and "did you mean 'orders'" in err


def test_a_new_optional_setting_at_its_default_does_not_change_fingerprints():
    """Upgrading the engine (new optional fields with defaults) must not rebuild unchanged specs."""
    import dataclasses

    from engine.compiler.fingerprint import definition_fingerprint
    from engine.model import objects as m

    source = m.Source(name="s", format=m.SourceFormat.CSV, path="data/s.csv", resolved_paths=())

    @dataclasses.dataclass(frozen=True)
    class Source(m.Source):  # the same object in an engine that added a setting
        future_option: str = "off"

    newer = Source(name="s", format=m.SourceFormat.CSV, path="data/s.csv", resolved_paths=())
    assert definition_fingerprint(source) == definition_fingerprint(newer)
    changed = dataclasses.replace(source, on_bad_rows="quarantine")
    assert definition_fingerprint(changed) != definition_fingerprint(source)



def test_init_name_option_and_recover_on_a_healthy_workspace(tmp_path: Path, tiny_project: Path):
    rc, _, err = run_engine("init", str(tmp_path / "p"), "--name", "Bad-Name")
    assert rc == 2 and "must be lowercase letters" in err
    rc, out, err = run_engine("init", str(tmp_path / "q"), "--name", "shop2")
    assert rc == 0, err
    assert "project: shop2" in (tmp_path / "q/specs/project.yaml").read_text()
    rc, _, err = run_engine("recover", str(tiny_project))
    assert rc == 2 and "nothing to recover" in err
    api.apply(tiny_project)
    rc, out, err = run_engine("recover", str(tiny_project))
    assert rc == 0 and out.strip() == "The workspace is consistent: every table is at its recorded commit."


def test_init_schema_reference_resolves_to_the_schema_it_writes(tmp_path: Path):
    """Issue 13 item 10: the editor's $schema line points at a file in the project, not at a URL."""
    root = tmp_path / "tips"
    rc, _, err = run_engine("init", str(root))
    assert rc == 0, err
    spec = root / "specs/project.yaml"
    first = spec.read_text().splitlines()[0]
    assert first.startswith("# yaml-language-server: $schema="), first
    reference = first.split("$schema=", 1)[1]
    assert "://" not in reference  # relative: resolved against the spec file, as editors do
    target = (spec.parent / reference).resolve()
    assert target.is_file() and target.is_relative_to(root.resolve()), target
    rc, out, _ = run_engine("schema")
    assert rc == 0 and json.loads(target.read_text()) == json.loads(out)
    assert "project: tips\n" in (root / "engine.yaml").read_text()
