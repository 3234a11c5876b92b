"""Market-manipulation detectors (pump-and-dump, wash trading) over bronze, into ``gold/anomalies``."""
