"""nyc-features: New York feature functions shared by engine projects.

Pure, deterministic pandas code; no I/O, no engine. Every function accepts a scalar (an online
request value: a missing value gives ``None``) or a pandas Series (offline training data: missing
values give ``<NA>``) and returns the same values either way.

Modules:

* ``nyc_features.calendar`` — New York local calendar features of an instant: ``day_of_week``,
  ``is_weekend``, ``hour_of_day``, ``is_us_federal_holiday``.
* ``nyc_features.geo`` — ``haversine_km`` and ``nearest_airport_km`` (JFK, LGA, EWR).

Reference them from a spec as ``python: nyc_features.calendar:day_of_week`` after declaring the
library: ``requires: [{package: nyc-features, version: ">=1.0,<2"}]``.
"""

__version__ = "1.0.0"
