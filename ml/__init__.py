"""Forecasting models: Feast training sets, LSTM training, MLflow registry, scoring, drift."""
