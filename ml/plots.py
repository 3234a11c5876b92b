"""Evaluation figures logged with each training run (matplotlib Figures, no pyplot state)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from sentinance.catalog import FORECASTER

MODELS = ("lstm", "persistence", "ema")


def forecast_vs_actual(predictions: pd.DataFrame, instrument: str) -> Figure:
    """One instrument over the newest fold: next close (actual vs forecasts) and the log returns."""
    rows = predictions[predictions["instrument_id"] == instrument].sort_values("event_timestamp")
    target = rows["event_timestamp"] + FORECASTER.period
    figure = Figure(figsize=(11, 6), layout="constrained")
    price, returns = figure.subplots(2, 1, sharex=True)
    price.plot(target, rows["close"] * np.exp(rows["actual"]), color="black", lw=1.2, label="actual")
    for model in MODELS:
        price.plot(target, rows["close"] * np.exp(rows[model]), lw=0.9, label=model)
    price.set_ylabel("next close")
    price.set_title(f"{instrument}: newest walk-forward fold (out of sample)")
    price.legend(loc="upper left")
    returns.plot(target, rows["actual"], color="black", lw=0.8, label="actual")
    returns.plot(target, rows["lstm"], lw=1.0, label="lstm")
    returns.plot(target, rows["ema"], lw=1.0, label="ema")
    returns.axhline(0, color="grey", lw=0.6, label="persistence")
    returns.set_ylabel("next log return")
    returns.legend(loc="upper left")
    return figure


def error_by_fold(metrics: dict[str, float], n_folds: int) -> Figure:
    """MAPE relative to persistence, and directional accuracy, per fold and model."""
    figure = Figure(figsize=(10, 4), layout="constrained")
    relative, direction = figure.subplots(1, 2)
    folds = np.arange(n_folds)
    labels = [f"fold {k}" for k in folds]
    for panel, models, value, line, label in (
        (
            relative,
            ("lstm", "ema"),
            lambda k, m: metrics[f"fold{k}_{m}_mape"] / metrics[f"fold{k}_persistence_mape"],
            1.0,
            "MAPE / persistence MAPE (below 1: better)",
        ),
        (
            direction,
            MODELS,
            lambda k, m: metrics[f"fold{k}_{m}_directional_accuracy"],
            0.5,
            "directional accuracy (persistence: last period's sign)",
        ),
    ):
        width = 0.8 / len(models)
        for i, model in enumerate(models):
            panel.bar(
                folds + i * width,
                [value(k, model) - line for k in folds],
                width,
                bottom=line,
                label=model,
                color=f"C{MODELS.index(model)}",
            )  # bars grow from the reference line
        panel.set_xticks(folds + width * (len(models) - 1) / 2, labels)
        panel.axhline(line, color="grey", lw=0.8)
        values = [value(k, m) for k in folds for m in models] + [line]
        panel.set_ylim(min(values) - 0.02 * line, max(values) + 0.02 * line)
        panel.set_ylabel(label)
        panel.legend()
    figure.suptitle("Walk-forward out-of-sample errors")
    return figure
