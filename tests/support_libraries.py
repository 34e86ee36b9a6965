"""The example feature library (examples/nyc_features, distribution ``nyc-features``) made
importable and visible to ``importlib.metadata`` — what ``engine validate`` reads to check a
project's ``requires`` — in this process and in the subprocesses it starts."""

from __future__ import annotations

import importlib
import importlib.metadata
import site
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
EXAMPLE_LIBRARY = REPO / "examples" / "nyc_features"
DISTRIBUTION = "nyc-features"


def _installed_version() -> str | None:
    try:
        return importlib.metadata.version(DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        return None


def ensure_example_library() -> str:
    """Install ``examples/nyc_features`` in editable mode into the running interpreter's
    environment if it is not installed yet, and make the new install take effect in this process
    (its ``.pth`` file); returns the installed version. Subprocesses started with
    ``sys.executable`` see it by themselves (their ``site`` reads the ``.pth`` at start-up)."""
    version = _installed_version()
    if version is not None:
        return version
    # One installer at a time (parallel test workers share the environment).
    with open(Path(tempfile.gettempdir()) / "engine-tests-nyc-features.lock", "w") as lock:
        try:
            import fcntl

            fcntl.flock(lock, fcntl.LOCK_EX)
        except ImportError:  # not POSIX: no lock
            pass
        importlib.invalidate_caches()
        if _installed_version() is None:
            subprocess.run(
                [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "-e", str(EXAMPLE_LIBRARY)],
                check=True,
            )
    site.addsitedir(sysconfig.get_paths()["purelib"])  # runs the new .pth (the src/ path entry)
    importlib.invalidate_caches()
    version = _installed_version()
    if version is None:
        raise RuntimeError(f"{DISTRIBUTION} is still not visible to importlib.metadata after installing {EXAMPLE_LIBRARY}")
    return version
