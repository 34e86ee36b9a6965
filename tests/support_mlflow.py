"""A real MLflow tracking server for the MLflow registry tests: started once per test process on
127.0.0.1 (SQLite backend store, artifacts proxied by the server into a local folder), stopped
at the end of the session (its temporary store removed).

``shared_server()`` starts it on first use (the contract suite's ``Impl.make`` has no access to
fixtures); the ``mlflow_server`` fixture hands the same server to tests and stops it at session
end. MLflow's telemetry is switched off for the server and for this process: no test uses the
network beyond 127.0.0.1.
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

START_TIMEOUT = 90.0  # the first start runs the database migrations (~8 s on 2 cores)
QUIET = {"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"}


@dataclass
class MlflowServer:
    """A running ``mlflow server``: its URI, its artifact folder and its process."""

    uri: str
    root: Path
    artifacts: Path
    process: subprocess.Popen

    def stop(self) -> None:
        """SIGTERM the server's own process group, then SIGKILL if it lingers."""
        if self.process.poll() is not None:
            return
        pgid = os.getpgid(self.process.pid)
        os.killpg(pgid, signal.SIGTERM)
        try:
            self.process.wait(timeout=3)  # uvicorn waits for idle keep-alive clients; no need
        except subprocess.TimeoutExpired:
            os.killpg(pgid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def close(self) -> None:
        """Stop the server and remove its store."""
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def log_tail(self, lines: int = 30) -> str:
        log = self.root / "server.log"
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:]) if log.exists() else ""


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _answers(uri: str) -> bool:
    try:
        with urllib.request.urlopen(f"{uri}/health", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def start_server(root: Path) -> MlflowServer:
    """Start ``mlflow server`` with its store under ``root`` and wait until ``/health`` answers."""
    root.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    uri = f"http://127.0.0.1:{port}"
    artifacts = root / "artifacts"
    command = [
        sys.executable, "-m", "mlflow", "server",
        "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}",
        "--artifacts-destination", str(artifacts),
        "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
    ]  # fmt: skip
    log = open(root / "server.log", "wb")
    from tests.support_spark import _die_with_parent  # SIGTERM to the server when pytest dies, even by a signal atexit misses

    process = subprocess.Popen(
        command, cwd=root, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **QUIET}, start_new_session=True, preexec_fn=_die_with_parent
    )
    log.close()
    server = MlflowServer(uri, root, artifacts, process)
    deadline = time.monotonic() + START_TIMEOUT
    while not _answers(uri):
        if process.poll() is not None or time.monotonic() > deadline:
            server.stop()
            raise RuntimeError(f"mlflow server did not start at {uri}:\n{server.log_tail()}")
        time.sleep(0.2)
    return server


_SERVER: MlflowServer | None = None


def shared_server() -> MlflowServer:
    """The test process's MLflow server, started on first use."""
    global _SERVER
    if _SERVER is None or _SERVER.process.poll() is not None:
        os.environ.update(QUIET)  # before this process imports mlflow
        _SERVER = start_server(Path(tempfile.mkdtemp(prefix="engine-mlflow-server-")))
        atexit.register(_SERVER.close)
    return _SERVER


@pytest.fixture(scope="session")
def mlflow_server():
    """The shared MLflow server (skipped without mlflow); stopped when the session ends."""
    pytest.importorskip("mlflow", reason="mlflow is not installed, so the MLflow registry cannot be tested here")
    server = shared_server()
    yield server
    server.close()


def new_registry(tmp: Path, **kwargs):
    """An ``MlflowRegistry`` on the shared server in a namespace of its own (so tests do not see
    each other's models), caching served copies under ``tmp/models``."""
    from engine.registry.mlflow import MlflowRegistry

    server = shared_server()
    return MlflowRegistry(server.uri, namespace=f"t{uuid.uuid4().hex[:12]}", cache_dir=tmp / "models", **kwargs)


def artifact_path(server: MlflowServer, registry, mv) -> Path:
    """Where the server keeps the artifact file of ``mv`` (under ``--artifacts-destination``)."""
    client = registry.remote.client
    mlv = client.get_model_version(registry.mlflow_name(mv.name), str(mv.version))
    found = [p for p in server.artifacts.rglob(mv.artifact.file) if mlv.run_id in p.parts]
    assert len(found) == 1, found
    return found[0]


def tamper(registry, mv) -> None:
    """Flip one byte of ``mv``'s artifact in the server's artifact store (G5)."""
    path = artifact_path(shared_server(), registry, mv)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
