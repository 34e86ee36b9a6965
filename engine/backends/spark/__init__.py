"""The Spark backend: the feature-store operations of ``engine.sql.ops`` compiled for Apache Spark
(PySpark), over the same lake tables as DuckDB. The only package that imports ``pyspark``, and
only when a session is opened (``engine validate`` and ``--help`` never load it).
"""
