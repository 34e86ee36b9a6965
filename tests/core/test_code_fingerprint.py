"""Function code is part of a feature's identity after AST normalisation (issue 10, item 3): a
comment, a docstring or reformatting changes no fingerprint and re-runs nothing; a change of what
the code does re-runs the groups that use it."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from engine.compiler.fingerprint import DigestCache, cached, code_digest
from tests.conftest import run_engine, write

BASE = '''
import pandas as pd


def user_features(users: pd.DataFrame) -> pd.DataFrame:
    out = users[["user_id", "signup_year"]].copy()
    out["tenure_years"] = 2024 - out["signup_year"]
    return out
'''

RESTYLED = '''
"""User features: a module docstring that was not there before."""
import pandas as pd   # pandas


def user_features(users: pd.DataFrame) -> pd.DataFrame:
    """Tenure in years, as of 2024."""
    # copy, so the input is never mutated
    out = users[[ "user_id",
                  "signup_year" ]].copy()

    out["tenure_years"] = (2024 - out["signup_year"])  # years
    return out
'''

CHANGED = BASE.replace("2024 - ", "2025 - ")


def _digest(tmp_path: Path, text: str, name: str = "m.py") -> str:
    path = tmp_path / name
    path.write_text(text)
    return code_digest(path)


def test_comments_docstrings_and_formatting_do_not_change_the_code_digest(tmp_path: Path) -> None:
    assert _digest(tmp_path, BASE, "a.py") == _digest(tmp_path, RESTYLED, "b.py")
    assert _digest(tmp_path, BASE, "c.py") != _digest(tmp_path, CHANGED, "d.py")
    # A string that is not a docstring is code.
    assert _digest(tmp_path, "x = 1\n'note'\n", "e.py") != _digest(tmp_path, "x = 1\n", "f.py")


@settings(max_examples=60, deadline=None)
@given(lines=st.lists(st.sampled_from(["", "# a comment", "    # indented comment", "   "]), max_size=6), at=st.integers(0, 8))
def test_blank_and_comment_lines_anywhere_never_change_the_digest(tmp_path_factory, lines, at) -> None:
    tmp = tmp_path_factory.mktemp("code")
    source = BASE.splitlines()
    at = min(at, len(source))
    noisy = "\n".join(source[:at] + lines + source[at:]) + "\n"
    assert _digest(tmp, noisy, "noisy.py") == _digest(tmp, BASE, "base.py")


def test_a_file_that_does_not_parse_is_hashed_by_bytes_and_cached_per_kind(tmp_path: Path) -> None:
    cache = DigestCache()
    broken = tmp_path / "broken.py"
    broken.write_text("def f(:\n")
    with cached(cache):
        assert code_digest(broken) == code_digest(broken)
    assert _digest(tmp_path, "def f(:\n", "b1.py") != _digest(tmp_path, "def f(:\n  # x\n", "b2.py")


def test_a_comment_re_runs_nothing_and_a_code_change_re_runs_the_group(tmp_path: Path, tiny_project: Path) -> None:
    code, out, err = run_engine("apply", str(tiny_project))
    assert code == 0, out + err
    write(tiny_project, "shop_features/users.py", RESTYLED)
    code, out, err = run_engine("apply", str(tiny_project))
    assert code == 0 and "No changes" in out + err, out + err
    write(tiny_project, "shop_features/users.py", CHANGED)
    code, out, err = run_engine("apply", str(tiny_project))
    assert code == 0 and "feature_group:users@1" in out + err and "No changes" not in out + err, out + err
