"""The Spark backend from the command line: choosing it, what `engine validate` says about what it
cannot do (exit 3, positioned), and its failures as documented exit codes without a traceback
(Spark or Java missing: 2; a master that does not answer: 74; a failing feature function: 5).
Every apply here is a real `engine` process on a local Spark (``local[1]``: one JVM each).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from tests.conftest import TINY_SPEC, USERS_PY, make_shop, run_engine
from tests.support_spark import free_port

LOCAL = {"ENGINE_SPARK_MASTER": "local[1]", "ENGINE_BACKEND": "spark"}


def _project(root: Path, spec: str = TINY_SPEC, users_py: str = USERS_PY) -> Path:
    return make_shop(root, spec, users_py)


def _no_traceback(out: str, err: str) -> None:
    assert "Traceback" not in out + err and "Py4J" not in out + err and "at org.apache" not in out + err


# --- choosing the backend, and what validate says about it (issue 9, items 1 and 4) --------------------


def test_validate_names_a_capability_spark_lacks_positioned_and_exits_3(tmp_path) -> None:
    spec = TINY_SPEC.replace(
        "orders_raw: {format: csv, path: data/orders.csv, timezone: America/New_York}",
        "orders_raw: {format: csv, path: data/orders.csv, timezone: America/New_York, on_bad_rows: quarantine}",
    )
    root = _project(tmp_path / "shop", spec)
    code, out, err = run_engine("validate", str(root))
    assert code == 0, err  # DuckDB quarantines bad rows
    code, out, err = run_engine("validate", str(root), "--backend", "spark")
    assert code == 3, out + err
    assert "specs/shop.yaml:4:93: sources.orders_raw.on_bad_rows" in err and "sources.orders_raw.on_bad_rows" in err and "the spark backend cannot quarantine bad rows" in err, err
    code, _, err_env = run_engine("validate", str(root), env={"ENGINE_BACKEND": "spark"})
    assert code == 3 and "spark backend" in err_env
    _no_traceback(out, err)


def test_validate_refuses_an_unknown_backend_with_usage_exit_2(tmp_path) -> None:
    root = _project(tmp_path / "shop")
    code, out, err = run_engine("validate", str(root), "--backend", "sparky")
    assert code == 2 and "spark" in err


def _with_backend(block: str) -> str:
    return TINY_SPEC.replace("project: shop\n", f"project: shop\n{block}\n", 1).replace(
        "orders_raw: {format: csv, path: data/orders.csv, timezone: America/New_York}",
        "orders_raw: {format: csv, path: data/orders.csv, timezone: America/New_York, on_bad_rows: quarantine}",
    )


def test_the_spec_backend_key_chooses_spark_and_the_flag_and_environment_override_it(tmp_path) -> None:
    """`backend: {kind: spark}` in the spec makes validate check Spark's capabilities (no JVM);
    `--backend duckdb` and ENGINE_BACKEND=duckdb take precedence over it."""
    root = _project(tmp_path / "shop", _with_backend("backend: {kind: spark, master: 'local[1]', conf: {spark.sql.shuffle.partitions: 3}}"))
    code, out, err = run_engine("validate", str(root))
    assert code == 3 and "the spark backend cannot quarantine bad rows" in err, out + err
    assert run_engine("validate", str(root), "--backend", "duckdb")[0] == 0
    assert run_engine("validate", str(root), env={"ENGINE_BACKEND": "duckdb"})[0] == 0
    code, out, err = run_engine("apply", str(root))  # apply checks the same before anything runs
    assert code == 3 and "the spark backend cannot quarantine bad rows" in err and "Applied" not in out + err, out + err
    _no_traceback(out, err)


def test_spark_settings_under_another_backend_kind_are_refused_positioned(tmp_path) -> None:
    root = _project(tmp_path / "shop", TINY_SPEC.replace("project: shop\n", "project: shop\nbackend: {kind: duckdb, master: 'local[2]'}\n", 1))
    code, out, err = run_engine("validate", str(root))
    assert code == 3, out + err
    assert "specs/shop.yaml:3:" in err and "backend.master" in err and "kind: spark" in err, err
    root = _project(tmp_path / "shop2", TINY_SPEC.replace("project: shop\n", "project: shop\nbackend: {kind: spark, master: 'http://x'}\n", 1))
    code, out, err = run_engine("validate", str(root))
    assert code == 3 and "backend.master" in err, out + err


def test_the_spec_master_is_used_and_the_environment_overrides_it(tmp_path) -> None:
    """Where Spark runs comes from the spec's backend.master, unless ENGINE_SPARK_MASTER says
    otherwise: each unreachable master is named by the exit-74 message (no JVM is started)."""
    in_spec, in_env = f"spark://127.0.0.1:{free_port()}", f"spark://127.0.0.1:{free_port()}"
    root = _project(tmp_path / "shop", TINY_SPEC.replace("project: shop\n", f"project: shop\nbackend: {{kind: spark, master: '{in_spec}'}}\n", 1))
    env = {"ENGINE_BACKEND": "", "ENGINE_SPARK_MASTER": ""}
    code, out, err = run_engine("apply", str(root), env=env, timeout=90)
    assert code == 74 and in_spec in err, out + err
    code, out, err = run_engine("apply", str(root), env={**env, "ENGINE_SPARK_MASTER": in_env}, timeout=90)
    assert code == 74 and in_env in err and in_spec not in err, out + err
    _no_traceback(out, err)


# --- failures (issue 9, bad input) ---------------------------------------------------------------------

_BLOCK_PYSPARK = """
import sys
class _Block:
    def find_spec(self, name, path=None, target=None):
        if name == "pyspark" or name.startswith("pyspark."):
            raise ModuleNotFoundError(f"No module named {name!r}")
        return None
sys.meta_path.insert(0, _Block())
sys.argv = ["engine", *sys.argv[1:]]
from engine.cli.main import main
main()
"""


def test_without_pyspark_apply_names_the_extra_and_java_and_exits_2(tmp_path) -> None:
    import subprocess

    root = _project(tmp_path / "shop")
    proc = subprocess.run(
        [sys.executable, "-c", _BLOCK_PYSPARK, "apply", str(root), "--backend", "spark"],
        capture_output=True, text=True, timeout=120, env={**os.environ, **LOCAL},
    )  # fmt: skip
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "pip install 'engine[spark]'" in proc.stderr and "Java 17" in proc.stderr
    _no_traceback(proc.stdout, proc.stderr)


def test_without_java_apply_says_so_and_exits_2(tmp_path) -> None:
    root = _project(tmp_path / "shop")
    env = {**LOCAL, "PATH": str(Path(sys.executable).parent), "JAVA_HOME": ""}
    code, out, err = run_engine("apply", str(root), "--backend", "spark", env=env)
    assert code == 2, out + err
    assert "Java 17" in err and "openjdk-17-jre-headless" in err
    _no_traceback(out, err)


def test_an_unreachable_master_exits_74_naming_it_within_a_bounded_time(tmp_path) -> None:
    root = _project(tmp_path / "shop")
    url = f"spark://127.0.0.1:{free_port()}"
    started = time.monotonic()
    code, out, err = run_engine("apply", str(root), "--backend", "spark", env={"ENGINE_SPARK_MASTER": url}, timeout=90)
    assert code == 74, out + err
    assert url in err and time.monotonic() - started < 60
    _no_traceback(out, err)


FAILING_PY = """
import pandas as pd


def user_features(users: pd.DataFrame) -> pd.DataFrame:
    out = users[["user_id", "signup_year"]].copy()
    if (out["signup_year"] > 2021).any():
        raise ValueError("signup_year in the future")
    out["tenure_years"] = 2024 - out["signup_year"]
    return out
"""


def test_a_failing_feature_function_exits_5_naming_the_function_and_the_group(tmp_path) -> None:
    root = _project(tmp_path / "shop", users_py=FAILING_PY)
    code, out, err = run_engine("apply", str(root), "--backend", "spark", env=LOCAL, timeout=300)
    assert code == 5, out + err
    assert "feature_group:users@1" in err and "user_features" in err and "signup_year in the future" in err
    _no_traceback(out, err)


VIEW_SPEC = TINY_SPEC + """functions:
  order_size: {python: shop_features.users:order_size, inputs: [amount], returns: string}
feature_views:
  spend:
    spine: orders
    features: [amount]
    join:
      - {feature_group: user_spend, on: [user_id]}
    on_demand: [order_size]
"""

ORDER_SIZE_PY = USERS_PY + """

def order_size(amount):
    if (amount == 20.0).any():
        raise ValueError("cannot size an order of 20")
    return amount.map(lambda a: "big" if a >= 5 else "small")
"""


def test_an_on_demand_function_failing_on_an_executor_exits_5_naming_view_function_and_row(tmp_path) -> None:
    """The same function the online path calls runs on Spark's executors (mapInArrow); its failure
    there is exit 5 naming the view, the function and the first input row that fails, with the
    worker's trace kept out of the terminal."""
    spec = VIEW_SPEC.replace("project: shop\n", "project: shop\nbackend: {kind: spark, master: 'local[1]'}\n", 1)
    root = _project(tmp_path / "shop", spec, users_py=ORDER_SIZE_PY)
    # Spark and its master come from the spec alone here.
    code, out, err = run_engine("apply", str(root), env={"ENGINE_BACKEND": "", "ENGINE_SPARK_MASTER": ""}, timeout=300)
    assert code == 5, out + err
    assert "feature_view:spend@1" in err and "function:order_size" in err and "cannot size an order of 20" in err, err
    assert "first failing input row: {amount: 20.0}" in err, err
    _no_traceback(out, err)
    assert "PythonException" not in out + err and "[[engine-error]]" not in out + err
    assert "TaskSetManager" in (root / ".engine" / "logs" / "spark.log").read_text()  # the trace went to the log


def test_validate_for_spark_imports_no_pyspark(tmp_path) -> None:
    """`engine validate --backend spark` stays pure and fast: capabilities are class flags."""
    import subprocess

    root = _project(tmp_path / "shop")
    code = f"import sys; from engine import api; api.validate({str(root)!r}, backend='spark'); print('pyspark' in sys.modules, 'py4j' in sys.modules)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout.split() == ["False", "False"], proc.stdout + proc.stderr
