"""Opening a Spark session for the engine: settings, checks before the JVM starts, one session per process.

Owns the SparkSession's lifetime and the failures of starting one: pyspark or Java missing (exit 2,
naming the ``spark`` extra and Java 17), a master that does not answer (exit 74 within a bounded
time, naming its URL). Must not compile operations or touch tables.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import urlparse

from engine.errors import StorageIOError, UsageError

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

log = logging.getLogger("engine.spark")

DEFAULT_MASTER = "local[2]"
CONNECT_TIMEOUT_S = 10.0  # how long a master may take to accept a connection before exit 74

#: Settings every engine session runs with: UTC (DESIGN §3 Time), Parquet timestamps the lake and
#: DuckDB read as UTC instants, case-sensitive names (DuckDB's are case-insensitive but the engine
#: refuses names differing in case), no SQL over raw file paths, quiet consoles.
BASE_CONF = {
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
    "spark.sql.parquet.datetimeRebaseModeInWrite": "CORRECTED",
    "spark.sql.parquet.int96RebaseModeInWrite": "CORRECTED",
    "spark.sql.caseSensitive": "true",
    "spark.sql.runSQLOnFiles": "false",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    "spark.sql.ansi.enabled": "false",
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.sql.shuffle.partitions": "4",
    "spark.hadoop.mapreduce.fileoutputcommitter.marksuccessfuljobs": "false",
    "spark.hadoop.parquet.enable.summary-metadata": "false",
}


@dataclass(frozen=True)
class SparkSettings:
    """Where and how to run: ``backend: {kind: spark, master: ..., conf: {...}}`` in the spec, or
    ``ENGINE_SPARK_MASTER`` / ``ENGINE_SPARK_CONF`` (a JSON object) in the environment."""

    master: str = DEFAULT_MASTER
    conf: tuple[tuple[str, str], ...] = field(default=())

    @classmethod
    def from_env(cls, master: str | None = None, conf: Mapping[str, object] | None = None) -> "SparkSettings":
        """The spec's ``master`` and ``conf`` (``backend:``), under the environment's:
        ``ENGINE_SPARK_MASTER`` replaces the master, ``ENGINE_SPARK_CONF`` adds to and overrides conf."""
        master = os.environ.get("ENGINE_SPARK_MASTER") or master or DEFAULT_MASTER
        merged: dict[str, str] = {str(k): str(v) for k, v in (conf or {}).items()}
        text = os.environ.get("ENGINE_SPARK_CONF")
        if text:
            try:
                loaded = json.loads(text)
            except ValueError as exc:
                raise UsageError(f"ENGINE_SPARK_CONF is not a JSON object: {exc}") from None
            if not isinstance(loaded, dict):
                raise UsageError("ENGINE_SPARK_CONF must be a JSON object of Spark settings")
            merged.update({str(k): str(v) for k, v in loaded.items()})
        return cls(master, tuple(sorted(merged.items())))


_active: tuple[SparkSettings, "SparkSession"] | None = None
_log_path: str | None = None


def log_path() -> str | None:
    """Where the running session's Spark log goes (None before a session started)."""
    return _log_path


def check_installed() -> None:
    """UsageError (exit 2) when pyspark or Java is missing: no JVM is started, no traceback."""
    import importlib.util

    try:
        found = importlib.util.find_spec("pyspark") is not None
    except (ImportError, ValueError):
        found = False
    if not found:
        raise UsageError(
            "the spark backend needs PySpark and Java 17 or later: install the extra with "
            "`pip install 'engine[spark]'` (or `pip install -e '.[spark]'` in a checkout) and a Java runtime "
            "(e.g. apt-get install openjdk-17-jre-headless)"
        )
    java_home = os.environ.get("JAVA_HOME")
    if not (java_home and os.path.isfile(os.path.join(java_home, "bin", "java"))) and shutil.which("java") is None:
        raise UsageError(
            "the spark backend needs Java 17 or later and none was found (no `java` on PATH, JAVA_HOME unset): "
            "install a Java runtime (e.g. apt-get install openjdk-17-jre-headless) or set JAVA_HOME; "
            "PySpark itself comes with `pip install 'engine[spark]'`"
        )


def check_reachable(master: str, timeout_s: float = CONNECT_TIMEOUT_S) -> None:
    """StorageIOError (exit 74) naming ``master`` when a cluster master (spark://, sc://) does not
    accept a TCP connection within ``timeout_s``: Spark itself would retry for minutes."""
    url = urlparse(master)
    if url.scheme not in ("spark", "sc"):
        return  # local[...], yarn, k8s://...: the cluster manager reports its own failures
    hosts = [h for h in (url.netloc.split("@")[-1]).split(",") if h]
    default_port = 7077 if url.scheme == "spark" else 15002
    problems = []
    for entry in hosts:
        host, _, port = entry.partition(":")
        try:
            with socket.create_connection((host, int(port or default_port)), timeout=timeout_s):
                return
        except (OSError, ValueError) as exc:
            problems.append(f"{entry}: {exc}")
    raise StorageIOError(
        f"cannot reach the Spark master {master} within {timeout_s:g} s ({'; '.join(problems) or 'no host'}); "
        "start the cluster or point backend.master (or ENGINE_SPARK_MASTER) at a running one"
    )


def session(settings: SparkSettings, log_file: str | None = None) -> "SparkSession":
    """The process's SparkSession for ``settings``, started on first use (a different master stops
    the previous one: one SparkContext per process). Spark's own log (stack traces of failed tasks
    included) goes to ``log_file`` (default: a file in the system's temp folder), never to the
    terminal: the engine reports each failure itself, in one line (``log_path``)."""
    global _active, _log_path
    if _active is not None and _active[0] == settings:
        return _active[1]
    check_installed()
    check_reachable(settings.master)
    if _active is not None:
        stop()
    from pyspark.sql import SparkSession

    conf = {**BASE_CONF, **dict(settings.conf)}
    if settings.master.startswith("local"):  # nothing outside this machine talks to a local driver
        conf.setdefault("spark.driver.bindAddress", "127.0.0.1")
        conf.setdefault("spark.driver.host", "127.0.0.1")
        # Python workers (row-wise feature functions) run this interpreter, with its packages.
        conf.setdefault("spark.pyspark.python", sys.executable)
    log4j = os.path.join(os.path.dirname(__file__), "log4j2.properties")
    driver_options = conf.get("spark.driver.extraJavaOptions", "")
    _log_path = log_file or os.path.join(tempfile.gettempdir(), f"engine-spark-{os.getuid()}.log")
    os.makedirs(os.path.dirname(_log_path), exist_ok=True)
    conf["spark.driver.extraJavaOptions"] = f"-Dlog4j2.configurationFile=file:{log4j} -Dengine.spark.log={_log_path} {driver_options}".strip()
    os.environ.setdefault("PYARROW_IGNORE_TIMEZONE", "1")
    # PySpark logs every SQL error with its JVM stack trace to stderr; the engine reports the first
    # line itself and keeps the trace in its debug log.
    import warnings

    warnings.filterwarnings("ignore", message="PySpark does not yet fully support pandas", category=FutureWarning)
    from pyspark.logger import PySparkLogger

    for name in ("SQLQueryContextLogger", "DataFrameQueryContextLogger"):
        PySparkLogger.getLogger(name).setLevel(logging.CRITICAL + 1)
    if settings.master.startswith("sc://"):
        builder = SparkSession.builder.remote(settings.master)
    else:
        builder = SparkSession.builder.master(settings.master).appName("engine")
    for key, value in conf.items():
        builder = builder.config(key, value)
    try:
        spark = builder.getOrCreate()
    except Exception as exc:
        log.debug("Spark failed to start", exc_info=True)
        raise StorageIOError(f"cannot start a Spark session on {settings.master}: {first_line(exc)}") from None
    spark.sparkContext.setLogLevel("ERROR") if not settings.master.startswith("sc://") else None
    _active = (settings, spark)
    return spark


def stop() -> None:
    """Stop the process's SparkSession (tests and the end of a benchmark; the CLI exits instead)."""
    global _active
    if _active is not None:
        try:
            _active[1].stop()
        finally:
            _active = None


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith(("at ", "Traceback", "JVM stacktrace")):
            return line[:500]
    return type(exc).__name__
