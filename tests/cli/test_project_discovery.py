"""Issue 13 item 8: every verb finds its project the same way — PATH, --project PATH, or the nearest
engine.yaml above the current folder (as git finds .git) — and says how to make one when there is none."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import check_golden, run_engine, write


def _mark(root: Path, text: str = "project: shop\n") -> Path:
    return write(root, "engine.yaml", text)


def test_verbs_walk_up_to_engine_yaml_when_no_path_is_given(tiny_project: Path):
    _mark(tiny_project)
    inside = tiny_project / "data"  # no spec file here: only the marker above says where the project is
    rc, out, err = run_engine("validate", cwd=inside)
    assert rc == 0, err
    assert "project 'shop'" in out
    rc, out, err = run_engine("plan", "--format", "json", cwd=inside)
    assert rc == 0, err
    assert len(json.loads(out)["steps"]) == 5
    rc, out, err = run_engine("apply", "--format", "json", cwd=tiny_project / "shop_features")
    assert rc == 0, err
    assert (tiny_project / ".engine").is_dir()


def test_without_marker_or_path_is_a_usage_error_saying_how_to_make_one(tmp_path: Path):
    """At a repository root, unrelated YAML files must not be read as specs."""
    write(tmp_path, "docker-compose.yaml", "services: {db: {image: postgres}}\n")
    write(tmp_path, "conf/logging.yml", "version: 1\n")
    for verb in ("validate", "plan", "apply", "show", "lineage", "check"):
        rc, out, err = run_engine(verb, cwd=tmp_path)
        assert rc == 2, (verb, err)
        assert "no engine.yaml in" in err and "engine init" in err and "PATH" in err, (verb, err)
        assert "docker-compose" not in err and "Traceback" not in err


def test_marker_names_the_spec_files_and_the_workspace(tmp_path: Path):
    from tests.conftest import ORDERS_CSV, TINY_SPEC, USERS_CSV, USERS_PY

    root = tmp_path / "shop"
    write(root, "pipelines/shop.yaml", TINY_SPEC)
    write(root, "data/orders.csv", ORDERS_CSV)
    write(root, "data/users.csv", USERS_CSV)
    write(root, "shop_features/__init__.py", "")
    write(root, "shop_features/users.py", USERS_PY)
    write(root, "docker-compose.yaml", "services: {db: {image: postgres}}\n")  # not a spec
    _mark(root, "project: shop\nspecs: [pipelines/*.yaml]\nworkspace: state/ws\n")
    rc, out, err = run_engine("validate", cwd=root / "data")
    assert rc == 0, err
    assert out.startswith("1 spec file valid")
    rc, out, err = run_engine("validate", str(root))  # an explicit folder holding engine.yaml uses it too
    assert rc == 0, err
    rc, _, err = run_engine("apply", cwd=root)
    assert rc == 0, err
    assert (root / "state/ws/catalog.sqlite").exists() and not (root / ".engine").exists()
    rc, out, err = run_engine("show", "feature_group", "orders", "--format", "json", cwd=root / "data")
    assert rc == 0, err
    assert json.loads(out)["row_count"] == 5


def test_marker_problems_are_positioned_spec_errors(tiny_project: Path):
    _mark(tiny_project, "project: shop\nspecz: [specs/]\n")
    rc, _, err = run_engine("validate", cwd=tiny_project)
    assert rc == 3, err
    assert err.startswith("engine.yaml:2:1: specz: unknown key 'specz' in engine.yaml (did you mean 'specs'?)"), err
    _mark(tiny_project, "project: shop2\n")
    rc, _, err = run_engine("validate", cwd=tiny_project)
    assert rc == 3, err
    assert "specs/shop.yaml:2:10: project: project 'shop' conflicts with 'shop2' at engine.yaml:1:10" in err, err
    _mark(tiny_project, "project: shop\nspecs: [specs/, extra/]\n")
    rc, _, err = run_engine("validate", cwd=tiny_project)
    assert rc == 3 and "engine.yaml:2:17: specs[1]: specs entry 'extra/' names no spec file" in err, err


def test_project_option_is_the_same_as_path_for_every_verb(tiny_project: Path, tmp_path: Path):
    for verb in ("validate", "plan", "lineage"):
        by_path = run_engine(verb, str(tiny_project), cwd=tmp_path)
        by_option = run_engine(verb, "--project", str(tiny_project), cwd=tmp_path)
        assert by_path[0] == 0 and by_path == by_option, (verb, by_option[2])
    rc, _, err = run_engine("plan", str(tiny_project), "--project", str(tmp_path))
    assert rc == 2 and "name different projects" in err


def test_lineage_with_one_argument_inside_a_project_is_the_object(tiny_project: Path):
    _mark(tiny_project)
    rc, out, err = run_engine("lineage", "orders", cwd=tiny_project / "data")
    assert rc == 0, err
    check_golden("lineage/tiny_orders.txt", out)
    assert run_engine("lineage", str(tiny_project), "orders")[1] == out  # PATH NAME, as before
    assert run_engine("lineage", "--project", str(tiny_project), "orders")[1] == out
    rc, out, err = run_engine("lineage", str(tiny_project))  # PATH alone: the whole DAG, as before
    assert rc == 0 and "feature_group:user_spend@1  <- feature_group:orders@1" in out


def test_show_takes_the_project_first_and_keeps_path_as_a_deprecated_alias(tiny_project: Path):
    rc, _, err = run_engine("apply", str(tiny_project))
    assert rc == 0, err
    rc, new, err = run_engine("show", str(tiny_project), "feature_group", "orders", "--format", "json")
    assert rc == 0 and err == "", err
    rc, old, err = run_engine("show", "feature_group", "orders", "--path", str(tiny_project), "--format", "json")
    assert rc == 0 and old == new
    assert err == "note: engine show --path PATH is deprecated; use engine show PATH KIND [NAME], or --project PATH\n"
    rc, _, err = run_engine("show", str(tiny_project), "feature_gruop", "orders")
    assert rc == 2 and "did you mean 'feature_group'" in err


def test_predict_with_one_argument_is_the_job(tips: Path):
    row = '[{"driver_id": 3, "distance_km": 4.0, "requested_at": "2024-03-02T10:00:00Z"}]'
    import subprocess
    import sys

    def predict(*args: str, cwd: Path) -> dict:
        proc = subprocess.run([sys.executable, "-m", "engine", "predict", *args], cwd=cwd, input=row, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout)["predictions"]

    inside = predict("api", cwd=tips / "data")
    assert inside == predict(str(tips), "api", cwd=tips.parent) == predict("api", "--project", str(tips), cwd=tips.parent)
    assert inside[0]["status"] == "ok"


def test_init_marker_only_marks_an_existing_project(tiny_project: Path):
    rc, out, err = run_engine("init", "--marker-only", cwd=tiny_project)
    assert rc == 0, err
    assert "project: shop\n" in (tiny_project / "engine.yaml").read_text()
    rc, out, err = run_engine("validate", cwd=tiny_project / "data")
    assert rc == 0 and "project 'shop'" in out, err
    rc, _, err = run_engine("init", "--marker-only", cwd=tiny_project)
    assert rc == 2 and "exists already" in err
