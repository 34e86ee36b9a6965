"""Feature libraries reach the executors: each installed distribution a frame function imports
(``requires`` of the project) is packed from what is installed — its package files and its
``.dist-info``, a wheel's layout — into a zip shipped with the job (``SparkContext.addPyFile``),
so executors import the very version the driver validated, whatever their own environment holds.

The project's own package is not shipped: on a cluster whose workers do not share the project
folder, ship it with ``spark.submit.pyFiles`` (docs/spark.md). Libraries with compiled extension
modules can't be imported from a zip: they must be installed on the workers (the build refuses
to pack them, naming the files).
"""

from __future__ import annotations

import hashlib
import importlib
import logging
import os
import sys
import tempfile
import zipfile
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from engine.errors import PlanError

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

log = logging.getLogger(__name__)

_EXTENSIONS = (".so", ".pyd", ".dylib")
_shipped: dict[tuple[int, str], str] = {}  # (SparkContext id, zip name) -> path, per session


def library_zip(top: str, folder: Path) -> Path | None:
    """The zip of the installed library providing import name ``top`` (package files and
    .dist-info), named after its distribution, version and content; None when ``top`` is not an
    installed distribution's package."""
    from importlib import metadata

    from engine.compiler.libraries import library_of, package_files

    lib = library_of(top)
    files = package_files(top)
    if lib is None or not files:
        return None
    compiled = sorted({q.name for d in {p.parent for _, p in files} for q in d.iterdir() if q.suffix in _EXTENSIONS})[:3]
    if compiled:
        raise PlanError(f"library '{lib.name}' {lib.version} has compiled modules ({', '.join(compiled)}): install it on the Spark workers, it can't be shipped with the job")
    members: list[tuple[str, bytes]] = [(rel, p.read_bytes()) for rel, p in files]
    dist = metadata.distribution(lib.name)
    for f in dist.files or ():
        if f.parts and f.parts[0].endswith(".dist-info") and f.name in ("METADATA", "top_level.txt", "RECORD", "entry_points.txt"):
            located = Path(dist.locate_file(f))
            if located.is_file():
                members.append((f.as_posix(), located.read_bytes()))
    content = hashlib.sha256(b"".join(name.encode() + b"\0" + data for name, data in sorted(members))).hexdigest()[:12]
    target = folder / f"{lib.name.replace('-', '_')}-{lib.version}-{content}.zip"
    if not target.exists():
        tmp = target.with_suffix(".part")
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for name, data in sorted(members):
                info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
                info.compress_type = zipfile.ZIP_DEFLATED
                archive.writestr(info, data)
        os.replace(tmp, target)
    return target


def ship_libraries(spark: "SparkSession", modules: Iterable[str], root: str | Path | None) -> list[str]:
    """Ship the installed libraries ``modules`` come from (not the project's own package) to the
    executors of ``spark``; each once per session and content. Returns the zips' names."""
    from engine.compiler.libraries import project_has_module

    tops = sorted({m.split(".")[0] for m in modules})
    base = Path(root) if root else None
    if not tops or spark.sparkContext is None:
        return []
    folder = Path(tempfile.gettempdir()) / f"engine-libraries-{os.getuid()}"
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for top in tops:
        if base is not None and base.is_dir() and project_has_module(base, top):
            continue
        archive = library_zip(top, folder)
        if archive is None:
            continue
        key = (id(spark.sparkContext), archive.name)
        if key not in _shipped:
            _add_for_executors(spark, archive)
            _shipped[key] = str(archive)
            log.debug("shipped %s to the executors", archive.name)
        out.append(archive.name)
    return out


def _add_for_executors(spark: "SparkSession", archive: Path) -> None:
    """``addPyFile`` for the executors only. PySpark also puts the zip's copy first on the
    driver's own ``sys.path``, where the library is already installed (what was packed): left
    there, the driver would import the library from the copy, and the code digests recorded for
    the steps that use it (``python_package_fingerprint``, which reads the package's files) would
    be those of a folder it cannot list. A later run would then see the library's code as changed
    and refuse the view as a breaking change."""
    before = list(sys.path)
    spark.sparkContext.addPyFile(str(archive))
    added = [p for p in sys.path if p not in before]
    if added:
        sys.path[:] = [p for p in sys.path if p not in added]
        for p in added:
            sys.path_importer_cache.pop(p, None)
        importlib.invalidate_caches()
