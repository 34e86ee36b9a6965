"""On-demand features: user Python functions declared under ``functions``, imported only when a
step (or the online path) needs them, applied vectorised offline and per value online — the same
function object both ways, so there is no offline/online skew. Owns no storage.
"""

from __future__ import annotations

import importlib
import os
import sys
import traceback
from collections.abc import Mapping
from pathlib import Path

from engine.errors import ExecutionError
from engine.model import objects as m

_PANDAS_TYPES = {"int64": "Int64", "float64": "float64", "string": "string", "bool": "boolean", "timestamp": "datetime64[us, UTC]"}


_LOADED: dict[str, tuple[str, int]] = {}  # module name -> (file, mtime_ns) when this module imported it


def _inside(base: Path, file: str | None) -> bool:
    if not file:
        return False
    path = Path(file).resolve()
    return path == base or base in path.parents


def _purge_stale(top: str, base: Path) -> None:
    """Forget an imported package that is not this project's or whose files changed since.

    A long-lived process (the Python API, a test session, the server) may apply several projects
    whose feature packages share a name, or the same project after its code was edited: the
    fingerprint then says "changed", and the new code must run, not the cached module.
    """
    names = [n for n in sys.modules if n == top or n.startswith(top + ".")]
    stale = False
    for name in names:
        file = getattr(sys.modules[name], "__file__", None)
        if not _inside(base, file):
            stale = True
            break
        seen = _LOADED.get(name)
        try:
            if seen is not None and seen[1] != os.stat(seen[0]).st_mtime_ns:
                stale = True
                break
        except OSError:
            stale = True
            break
    if stale:
        for name in names:
            sys.modules.pop(name, None)
            _LOADED.pop(name, None)
        importlib.invalidate_caches()


def import_function(root: Path, module: str, function: str, owner: str):
    """Import ``module:function`` from the project folder (and ``src/``), never from elsewhere
    first; a module the project does not hold is imported as installed (a declared feature
    library, checked by validate)."""
    from engine.compiler.libraries import project_has_module

    base = Path(root).resolve()
    if not base.is_dir():  # a Spark executor on another machine: the package came with the job (pyFiles)
        return _import_shipped(module, function, owner)
    top = module.split(".")[0]
    if project_has_module(base, top):
        for path in (str(base / "src"), str(base)):
            if path in sys.path:
                sys.path.remove(path)
            sys.path.insert(0, path)
        home = base
    else:
        home = _installed_home(top) or base
    _purge_stale(top, home)
    try:
        mod = importlib.import_module(module)
        for name, loaded in list(sys.modules.items()):
            file = getattr(loaded, "__file__", None)
            if name not in _LOADED and (name == top or name.startswith(top + ".")) and _inside(home, file):
                _LOADED[name] = (file, os.stat(file).st_mtime_ns)
    except Exception as exc:
        raise ExecutionError(f"{owner}: importing '{module}' failed: {type(exc).__name__}: {exc}") from exc
    fn = getattr(mod, function, None)
    if not callable(fn):
        raise ExecutionError(f"{owner}: '{module}' has no function '{function}'")
    return fn


def _installed_home(top: str) -> Path | None:
    """The folder an installed top-level package ``top`` lives in (its files are checked for
    edits like the project's, so an upgraded or edited library is imported afresh)."""
    from engine.compiler.libraries import package_files

    files = package_files(top)
    if not files:
        return None
    rel, path = files[0]
    return path.resolve().parents[len(Path(rel).parts) - 1]


def _import_shipped(module: str, function: str, owner: str):
    try:
        mod = importlib.import_module(module)
    except Exception as exc:
        raise ExecutionError(
            f"{owner}: importing '{module}' failed on this worker: {type(exc).__name__}: {exc} "
            "(ship the feature package with the job: spark.submit.pyFiles, see docs/spark.md)"
        ) from exc
    fn = getattr(mod, function, None)
    if not callable(fn):
        raise ExecutionError(f"{owner}: '{module}' has no function '{function}'")
    return fn


def user_frame(exc: BaseException, root: Path) -> str:
    """The innermost traceback frame inside the project, as `` (file:line)`` for messages."""
    root_s = str(Path(root).resolve())
    for frame in reversed(traceback.extract_tb(exc.__traceback__)):
        if frame.filename.startswith(root_s):
            return f" ({Path(frame.filename).relative_to(root_s)}:{frame.lineno})"
    return ""


def function_code(root: Path, functions: list[m.Function]) -> dict[str, dict[str, str]]:
    """What a model records of the on-demand functions it was trained with: each function's
    reference and the code digest of its package (syntax trees: comments and formatting do not
    count); for a function of an installed feature library, also the library's distribution name,
    its version and the function's own syntax-tree digest."""
    from engine.compiler.fingerprint import library_function_digest, python_package_fingerprint
    from engine.compiler.libraries import library_of, project_has_module

    out: dict[str, dict[str, str]] = {}
    for f in functions:
        if f.builtin:  # no code: the group's stored state, part of the view's data
            continue
        entry = {"python": f"{f.module}:{f.function}", "code": python_package_fingerprint(root, f.module, f.function)}
        top = f.module.split(".")[0]
        if not project_has_module(Path(root), top) and (lib := library_of(top)) is not None:
            entry |= {"package": lib.name, "version": lib.version, "function": library_function_digest(f.module, f.function)}
        out[f.name] = entry
    return out


def code_drift(recorded: "Mapping[str, Mapping[str, str]]", root: Path) -> list[str]:
    """The recorded functions whose code now differs from the code a model was trained with, as
    ``function:NAME (module:function)`` — for a library function, naming the library version it
    was trained with and the one installed now; empty when nothing drifted."""
    from engine.compiler.fingerprint import python_package_fingerprint
    from engine.compiler.libraries import library_of

    out = []
    for name, entry in sorted(recorded.items()):
        module, _, function = entry["python"].partition(":")
        if entry.get("package"):
            lib = library_of(module.split(".")[0])
            now = f"{lib.name} {lib.version}" if lib is not None else "not installed"
            if lib is None or lib.version != entry.get("version"):
                out.append(f"function:{name} ({entry['python']}: trained with {entry['package']} {entry.get('version')}, installed: {now})")
                continue
            if python_package_fingerprint(root, module, function) != entry["code"]:
                out.append(f"function:{name} ({entry['python']}: the code of {entry['package']} {entry.get('version')} changed since training)")
            continue
        if python_package_fingerprint(root, module) != entry["code"]:
            out.append(f"function:{name} ({entry['python']})")
    return out


#: The engine type of each declared ``returns`` (what a backend stores the column as).
RETURN_TYPES = {"int64": "BIGINT", "float64": "DOUBLE", "string": "VARCHAR", "bool": "BOOLEAN", "timestamp": "TIMESTAMPTZ"}


def apply_functions(frame, functions: list[m.Function], root: Path, owner: str | None = None, builtins: "Mapping[str, object] | None" = None):
    """Add one column per function (named after it) to a pandas frame, vectorised.

    Each function is called with one pandas Series per declared input; it must return a Series
    (or array) of the same length. The result is cast to the declared ``returns`` type. A failure
    is an ExecutionError naming ``owner`` (the feature view), the function and the first input row
    that fails alone (found by bisection: the functions are row-wise, as online).
    """
    import pandas as pd

    where = f"{owner}: " if owner else ""
    for fn_spec in functions:
        if fn_spec.builtin:  # the group's stored binning or PCA (``builtins``: name -> callable)
            fn = (builtins or {})[fn_spec.name]
        else:
            fn = import_function(root, fn_spec.module, fn_spec.function, str(fn_spec.id))
        missing = [c for c in fn_spec.inputs if c not in frame.columns]
        if missing:
            raise ExecutionError(f"{where}{fn_spec.id}: inputs {missing} are not columns of the feature view")
        try:
            result = fn(*[frame[c] for c in fn_spec.inputs])
        except Exception as exc:
            row = first_failing_row(fn, frame[list(fn_spec.inputs)])
            shown = f"; first failing input row: {_row_text(row)}" if row is not None else ""
            raise ExecutionError(
                f"{where}{fn_spec.id}: {fn_spec.module}:{fn_spec.function} raised {type(exc).__name__}: {exc}{user_frame(exc, root)}{shown}"
            ) from exc
        values = pd.Series(result, index=frame.index) if not isinstance(result, pd.Series) else result.set_axis(frame.index)
        if len(values) != len(frame):
            raise ExecutionError(f"{where}{fn_spec.id}: returned {len(values)} values for {len(frame)} rows")
        try:
            frame[fn_spec.name] = values.astype(_PANDAS_TYPES[fn_spec.returns])
        except (TypeError, ValueError) as exc:
            raise ExecutionError(f"{where}{fn_spec.id}: result is not {fn_spec.returns}: {exc}") from exc
    return frame


def first_failing_row(fn, inputs) -> dict | None:
    """The first row of ``inputs`` (a pandas frame, one column per argument) on which ``fn`` raises
    by itself; None when no single row does (the failure needs several rows). Bisection: a slice
    holding a failing row fails, so about 2·log2(rows) calls."""

    def fails(part) -> bool:
        try:
            fn(*[part[c] for c in part.columns])
        except Exception:
            return True
        return False

    lo, hi = 0, len(inputs)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if fails(inputs.iloc[lo:mid]):
            hi = mid
        else:
            lo = mid
    if hi - lo == 1 and fails(inputs.iloc[lo:hi]):
        return {str(k): v for k, v in inputs.iloc[lo].items()}
    return None


def _row_text(row: dict) -> str:
    text = "{" + ", ".join(f"{k}: {v!r}" if isinstance(v, str) else f"{k}: {v}" for k, v in row.items()) + "}"
    return text if len(text) <= 500 else text[:497] + "..."


class OnDemandFrames:
    """The view's on-demand functions as one row-wise frame function (``Backend.map_frames``): a
    backend may call it on any slice of the rows, in any process that can import the project's
    feature package. Holds names only, never function objects, so it travels to Spark executors."""

    def __init__(self, functions: list[m.Function], root: Path, owner: str, builtins: "Mapping[str, object] | None" = None) -> None:
        self.functions = [(f.name, f.module, f.function, tuple(f.inputs), f.returns, f.builtin) for f in functions]
        self.root = str(root)
        self.owner = owner
        self.builtins = dict(builtins or {})  # name -> BinFunction / PcaComponent (plain data: picklable)

    def added(self) -> dict[str, str]:
        """The columns this adds, with their engine types."""
        return {name: RETURN_TYPES[returns] for name, _, _, _, returns, _ in self.functions}

    def modules(self) -> tuple[str, ...]:
        """The modules its functions live in (a distributed backend ships the libraries among them)."""
        return tuple(dict.fromkeys(module for _, module, _, _, _, builtin in self.functions if not builtin))

    def __call__(self, frame):
        functions = [m.Function(name, module, function, inputs, returns, builtin=builtin) for name, module, function, inputs, returns, builtin in self.functions]
        return apply_functions(frame, functions, Path(self.root), self.owner, self.builtins)
