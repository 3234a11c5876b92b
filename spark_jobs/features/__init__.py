"""The silver feature job: per-series indicators and cross-exchange features from the bronze candles."""
