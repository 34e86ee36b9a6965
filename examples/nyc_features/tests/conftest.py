"""Test setup of the nyc-features library: import it from ``src/`` when it is not installed.

Appended, not prepended, to ``sys.path``: an installed copy (``pip install -e``) wins, and
nothing here shadows another test package of the same session.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
if importlib.util.find_spec("nyc_features") is None and str(SRC) not in sys.path:
    sys.path.append(str(SRC))
