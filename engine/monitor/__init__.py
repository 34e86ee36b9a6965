"""Monitoring of online inference: the request/prediction spool the endpoint writes
(``spool.py``), its ingestion into a ``serving_log__<job>`` feature group (``ingest.py``), and the
comparison of serving distributions with training (``drift.py``, ``report.py``)."""
