"""On-demand features: user Python functions declared under ``functions``, imported only when a
step (or the online path) needs them, applied vectorised offline and per value online — the same
function object both ways, so there is no offline/online skew. Owns no storage.
"""

from __future__ import annotations

import importlib
import sys
import traceback
from pathlib import Path

from engine.errors import ExecutionError
from engine.model import objects as m

_PANDAS_TYPES = {"int64": "Int64", "float64": "float64", "string": "string", "bool": "boolean", "timestamp": "datetime64[us, UTC]"}


def import_function(root: Path, module: str, function: str, owner: str):
    """Import ``module:function`` from the project folder (and ``src/``), never from elsewhere first."""
    base = str(Path(root).resolve())
    for path in (str(Path(base) / "src"), base):
        if path not in sys.path:
            sys.path.insert(0, path)
    try:
        mod = importlib.import_module(module)
    except Exception as exc:
        raise ExecutionError(f"{owner}: importing '{module}' failed: {type(exc).__name__}: {exc}") from exc
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


def apply_functions(frame, functions: list[m.Function], root: Path):
    """Add one column per function (named after it) to a pandas frame, vectorised.

    Each function is called with one pandas Series per declared input; it must return a Series
    (or array) of the same length. The result is cast to the declared ``returns`` type.
    """
    import pandas as pd

    for fn_spec in functions:
        fn = import_function(root, fn_spec.module, fn_spec.function, str(fn_spec.id))
        missing = [c for c in fn_spec.inputs if c not in frame.columns]
        if missing:
            raise ExecutionError(f"{fn_spec.id}: inputs {missing} are not columns of the feature view")
        try:
            result = fn(*[frame[c] for c in fn_spec.inputs])
        except Exception as exc:
            raise ExecutionError(f"{fn_spec.id}: {fn_spec.module}:{fn_spec.function} raised {type(exc).__name__}: {exc}{user_frame(exc, root)}") from exc
        values = pd.Series(result, index=frame.index) if not isinstance(result, pd.Series) else result.set_axis(frame.index)
        if len(values) != len(frame):
            raise ExecutionError(f"{fn_spec.id}: returned {len(values)} values for {len(frame)} rows")
        try:
            frame[fn_spec.name] = values.astype(_PANDAS_TYPES[fn_spec.returns])
        except (TypeError, ValueError) as exc:
            raise ExecutionError(f"{fn_spec.id}: result is not {fn_spec.returns}: {exc}") from exc
    return frame
