"""Spark DataFrames as inputs (``nbops[spark]``): how nbops recognises one without importing pyspark.

A classic ``pyspark.sql.DataFrame`` and a Spark Connect one (``pyspark.sql.connect.dataframe.DataFrame``, what
Databricks serverless and shared compute hand a notebook) are both recognised by their class's module, so
``%load_ext nbops`` and every pandas path stay free of pyspark. The Spark code of each domain lives beside its
pandas code (``data/``, ``drift/``, ``validation/``) and imports pyspark inside its functions.
"""
from __future__ import annotations

# Spark type class names (``type(field.dataType).__name__``), read by the drift and contract code
INTEGRAL = ("ByteType", "ShortType", "IntegerType", "LongType")
FLOAT = ("FloatType", "DoubleType")
TEXT = ("StringType", "VarcharType", "CharType")


def is_spark(obj) -> bool:
    """True for a pyspark DataFrame, classic or Spark Connect."""
    return any(c.__module__.startswith("pyspark.sql") and c.__name__ == "DataFrame" for c in type(obj).__mro__)
