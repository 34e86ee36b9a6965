"""engine: declare and run ML systems on a feature store from one YAML spec.

Importing this package is cheap: no pandas, scikit-learn, XGBoost or DuckDB is loaded until a
step needs it.
"""

__version__ = "0.1.0"
