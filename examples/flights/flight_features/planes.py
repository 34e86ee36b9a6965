"""The ``planes`` feature group: one row of aircraft features per tail number, pure pandas.

Called by the engine as ``plane_features(planes_raw)`` (``python:`` transform, one DataFrame per
input); it never reads files, never mutates its input and returns rows sorted by ``tailnum``.
"""

from __future__ import annotations

import pandas as pd

REFERENCE_YEAR = 2013  # the year of the flights: plane_age is the age during that year
MAJOR_MANUFACTURERS = ("AIRBUS", "BOEING", "BOMBARDIER", "EMBRAER", "MCDONNELL DOUGLAS")
# Legal-form and filler words stripped from the end of a manufacturer name, repeatedly.
_SUFFIXES = {"INC", "CO", "CORP", "CORPORATION", "LTD", "INDUSTRIE", "AIRCRAFT", "SPA"}
# Brands sold under another maker's name (the Canadair CRJ is Bombardier's regional jet).
_ALIASES = {"CANADAIR": "BOMBARDIER"}
_ENGINE_TYPES = {
    "TURBO-FAN": "turbo_fan",
    "TURBO-JET": "turbo_jet",
    "TURBO-PROP": "turbo_prop",
    "TURBO-SHAFT": "turbo_shaft",
    "RECIPROCATING": "reciprocating",
    "4 CYCLE": "four_cycle",
}
_AIRCRAFT_TYPES = {
    "FIXED WING MULTI ENGINE": "fixed_wing_multi",
    "FIXED WING SINGLE ENGINE": "fixed_wing_single",
    "ROTORCRAFT": "rotorcraft",
}
REQUIRED_COLUMNS = ("tailnum", "year", "type", "manufacturer", "model", "engines", "seats", "engine")
OUTPUT_COLUMNS = (
    "tailnum", "year_built", "plane_age", "seats", "engines", "manufacturer", "model",
    "engine_type", "aircraft_type",
)


def normalise_manufacturer(name: str | None) -> str | None:
    """Canonical maker: one of ``MAJOR_MANUFACTURERS`` or ``OTHER``; None stays None.

    >>> normalise_manufacturer("AIRBUS INDUSTRIE"), normalise_manufacturer("Canadair Ltd")
    ('AIRBUS', 'BOMBARDIER')
    >>> normalise_manufacturer("McDonnell Douglas Aircraft Co"), normalise_manufacturer("PIPER")
    ('MCDONNELL DOUGLAS', 'OTHER')
    """
    if name is None or name is pd.NA or (isinstance(name, float) and name != name):
        return None
    words = str(name).upper().replace(".", " ").replace(",", " ").split()
    while words and words[-1] in _SUFFIXES:
        words.pop()
    canonical = " ".join(words)
    canonical = _ALIASES.get(canonical, canonical)
    return canonical if canonical in MAJOR_MANUFACTURERS else "OTHER"


def _category(values: pd.Series, mapping: dict[str, str]) -> pd.Series:
    """Map free text case-insensitively through ``mapping``; unknown text → ``other``."""
    upper = values.astype("string").str.strip().str.upper()
    mapped = upper.map(mapping, na_action="ignore").astype("string")
    return mapped.mask(upper.notna() & mapped.isna(), "other")


def plane_features(planes: pd.DataFrame, reference_year: int = REFERENCE_YEAR) -> pd.DataFrame:
    """Aircraft features keyed by ``tailnum`` (primary key of feature group ``planes``).

    Output columns (nullable dtypes; a missing input gives a missing feature, never a guess):

    * ``tailnum`` (string, unique) · ``year_built`` (Int64)
    * ``plane_age`` (Int64): ``reference_year - year_built``, clipped at 0 for planes delivered
      after the reference year; missing when the build year is unknown
    * ``seats``, ``engines`` (Int64)
    * ``manufacturer`` (string): see :func:`normalise_manufacturer`
    * ``model`` (string, trimmed)
    * ``engine_type`` (string): turbo_fan, turbo_jet, turbo_prop, turbo_shaft, reciprocating,
      four_cycle or other
    * ``aircraft_type`` (string): fixed_wing_multi, fixed_wing_single, rotorcraft or other

    Raises ``ValueError`` when a required column is missing or a tail number is missing or
    repeated (the feature group's primary key must be unique).
    """
    missing = [c for c in REQUIRED_COLUMNS if c not in planes.columns]
    if missing:
        raise ValueError(f"plane_features: input lacks column(s) {missing}")
    tailnum = planes["tailnum"].astype("string").str.strip()
    if tailnum.isna().any():
        raise ValueError("plane_features: tailnum has missing values")
    duplicated = tailnum[tailnum.duplicated()]
    if len(duplicated):
        raise ValueError(f"plane_features: tailnum {duplicated.iloc[0]!r} occurs more than once")

    year_built = pd.to_numeric(planes["year"], errors="raise").astype("Int64")
    out = pd.DataFrame(
        {
            "tailnum": tailnum,
            "year_built": year_built,
            "plane_age": (reference_year - year_built).clip(lower=0),
            "seats": pd.to_numeric(planes["seats"]).astype("Int64"),
            "engines": pd.to_numeric(planes["engines"]).astype("Int64"),
            "manufacturer": planes["manufacturer"].map(normalise_manufacturer).astype("string"),
            "model": planes["model"].astype("string").str.strip(),
            "engine_type": _category(planes["engine"], _ENGINE_TYPES),
            "aircraft_type": _category(planes["type"], _AIRCRAFT_TYPES),
        }
    )
    return out.sort_values("tailnum", kind="stable").reset_index(drop=True)[list(OUTPUT_COLUMNS)]
