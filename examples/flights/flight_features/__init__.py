"""Feature functions of the flights example: pure, deterministic pandas code; no I/O, no engine.

Modules:

* ``flight_features.time``   — on-demand features of the scheduled departure (scalar or Series).
* ``flight_features.ids``    — the deterministic ``flight_id`` (same format as ``sql/flights.sql``).
* ``flight_features.planes`` — the ``planes`` feature group (``plane_features``).
"""

__version__ = "0.1.0"
