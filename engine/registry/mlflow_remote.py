"""Talking to an MLflow tracking server: the client, bounded HTTP retries and timeouts, and every
MLflow or network failure turned into ``StorageIOError`` (exit 74) naming the server.

Owns how ``engine.registry.mlflow`` reaches the server; must not decide what is stored. MLflow is
imported only here and only when a registry is used (STYLE habit 8).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from engine.errors import EngineError, StorageIOError, UsageError

_MAX_PAGE = 1000
_ALREADY_EXISTS = "RESOURCE_ALREADY_EXISTS"


class Remote:
    """One MLflow server: ``tracking_uri`` (http or https) and its model registry.

    MLflow's defaults retry a refused connection for minutes (7 retries, backoff 2) with a 120 s
    read timeout; each call here runs with ``max_retries``, backoff 1 and ``timeout`` seconds
    unless the user set ``MLFLOW_HTTP_REQUEST_*`` themselves, which wins. MLflow's "View run at"
    lines on stdout are switched off the same way.
    """

    def __init__(self, tracking_uri: str, registry_uri: str | None = None, *, timeout: float = 10.0, max_retries: int = 1) -> None:
        for uri in (tracking_uri, registry_uri or tracking_uri):
            parsed = urlparse(uri)
            if parsed.scheme not in ("http", "https") or not parsed.netloc:
                raise UsageError(f"MLflow tracking URI must be http(s)://host[:port] of a tracking server, got {uri!r}")
        self.tracking_uri = tracking_uri.rstrip("/")
        self.registry_uri = (registry_uri or tracking_uri).rstrip("/")
        self.settings = {
            "MLFLOW_HTTP_REQUEST_MAX_RETRIES": str(int(max_retries)),
            "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
            "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER": "0",
            "MLFLOW_HTTP_REQUEST_TIMEOUT": str(max(1, int(timeout))),
            "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true",  # stdout is the CLI's (plans, JSON)
        }
        self._client = None

    @property
    def client(self):
        """The ``mlflow.MlflowClient`` (imported and built on first use, never against a default URI)."""
        if self._client is None:
            try:
                from mlflow import MlflowClient
            except ImportError as exc:
                raise UsageError("the MLflow registry needs the mlflow package: pip install 'engine[mlflow]'") from exc
            self._client = MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.registry_uri)
        return self._client

    @contextmanager
    def _bounded(self) -> Iterator[None]:
        """MLflow reads its HTTP settings from the environment at each request: set ours for the
        duration of one call, leaving any the user set alone."""
        added = [key for key in self.settings if key not in os.environ]
        for key in added:
            os.environ[key] = self.settings[key]
        try:
            yield
        finally:
            for key in added:
                os.environ.pop(key, None)

    def error(self, what: str, exc: BaseException) -> StorageIOError:
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if _is_connection_error(exc):
            return StorageIOError(f"MLflow tracking server {self.tracking_uri} is unreachable (could not {what}): {text}")
        return StorageIOError(f"MLflow tracking server {self.tracking_uri}: could not {what}: {text}")

    @staticmethod
    def unreachable(exc: BaseException) -> bool:
        """Whether ``exc`` (raised by :meth:`call`) means the server could not be reached at all."""
        return isinstance(exc, StorageIOError) and exc.__cause__ is not None and _is_connection_error(exc.__cause__)

    def call(self, what: str, func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """``func(*args, **kwargs)`` with bounded HTTP; MLflow and network errors → StorageIOError."""
        from mlflow.exceptions import MlflowException

        with self._bounded():
            try:
                return func(*args, **kwargs)
            except EngineError:
                raise
            except (MlflowException, OSError) as exc:
                raise self.error(what, exc) from exc

    def create_once(self, what: str, func: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        """Create something that another writer may have created first (that is fine)."""
        from mlflow.exceptions import MlflowException

        with self._bounded():
            try:
                func(*args, **kwargs)
            except MlflowException as exc:
                if exc.error_code != _ALREADY_EXISTS:
                    raise self.error(what, exc) from exc
            except OSError as exc:
                raise self.error(what, exc) from exc

    def pages(self, what: str, func: Callable[..., Any], *args: Any) -> list:
        """Every result of a paginated MLflow search."""
        out: list = []
        token = None
        while True:
            page = self.call(what, func, *args, max_results=_MAX_PAGE, page_token=token)
            out.extend(page)
            token = page.token
            if not token:
                return out

    def quietly(self, func: Callable[..., Any], *args: Any) -> None:
        """Best-effort clean-up: a failure here must not hide the error being handled."""
        try:
            self.call("clean up", func, *args)
        except Exception:  # noqa: BLE001 - clean-up after a failure; what remains is reported by check()
            pass

    def download(self, source: str, file: str, into: Path, *, what: str) -> Path:
        """Download ``source/file`` into the folder ``into``; StorageIOError when missing or unreadable."""
        from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

        repository = self.call(f"open {source}", get_artifact_repository, source, tracking_uri=self.tracking_uri)
        into.mkdir(parents=True, exist_ok=True)
        try:
            return Path(self.call(f"download {what}", repository.download_artifacts, file, dst_path=str(into)))
        except StorageIOError as exc:
            raise StorageIOError(f"{what} is missing or unreadable at {source}/{file}: {exc.message}") from exc.__cause__

    def delete_artifacts(self, uri: str) -> None:
        """Delete everything under an artifact URI (a failed register's run)."""
        from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

        repository = self.call(f"open {uri}", get_artifact_repository, uri, tracking_uri=self.tracking_uri)
        self.call(f"delete {uri}", repository.delete_artifacts)


def _is_connection_error(exc: BaseException) -> bool:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        name = type(current).__name__
        if name in ("ConnectionError", "ConnectTimeout", "NewConnectionError", "MaxRetryError", "ConnectionRefusedError"):
            return True
        if "Max retries exceeded" in str(current) or "Failed to establish a new connection" in str(current):
            return True
        current = current.__cause__ or current.__context__
    return False
