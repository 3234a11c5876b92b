"""PySpark jobs: silver features computed from the bronze candles."""
