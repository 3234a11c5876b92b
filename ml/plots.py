"""Evaluation figures logged with each training run (matplotlib Figures, no pyplot state)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from sentinance.ml.backtest import BacktestParams
from sentinance.ml.targets import MODEL, RETURNS, Target

MODELS = RETURNS.models


def forecast_vs_actual(predictions: pd.DataFrame, instrument: str, target: Target = RETURNS) -> Figure:
    """One instrument over the newest fold: the actual label against every forecast, and for a return
    target the next close they imply."""
    rows = predictions[predictions["instrument_id"] == instrument].sort_values("event_timestamp")
    target_time = rows["event_timestamp"] + pd.Timedelta(seconds=target.contract.horizon_seconds)
    if "close" not in target.contract.context:
        figure = Figure(figsize=(11, 4), layout="constrained")
        ax = figure.subplots()
        ax.plot(target_time, rows["actual"], color="black", lw=1.2, label="actual")
        for model in target.models:
            ax.plot(target_time, rows[model], lw=0.9, label=model)
        ax.set_ylabel(f"{target.contract.label} ({target.unit})")
        ax.set_title(f"{instrument}: newest walk-forward fold (out of sample), by the end of the forecast span")
        ax.legend(loc="upper left")
        return figure
    figure = Figure(figsize=(11, 6), layout="constrained")
    price, returns = figure.subplots(2, 1, sharex=True)
    price.plot(target_time, rows["close"] * np.exp(rows["actual"]), color="black", lw=1.2, label="actual")
    for model in target.models:
        price.plot(target_time, rows["close"] * np.exp(rows[model]), lw=0.9, label=model)
    price.set_ylabel("next close")
    price.set_title(f"{instrument}: newest walk-forward fold (out of sample)")
    price.legend(loc="upper left")
    returns.plot(target_time, rows["actual"], color="black", lw=0.8, label="actual")
    returns.plot(target_time, rows[MODEL], lw=1.0, label=MODEL)
    returns.plot(target_time, rows["ema"], lw=1.0, label="ema")
    returns.axhline(0, color="grey", lw=0.6, label="persistence")
    returns.set_ylabel("next log return")
    returns.legend(loc="upper left")
    return figure


def error_by_fold(metrics: dict[str, float], n_folds: int, target: Target = RETURNS) -> Figure:
    """Per fold and model, the headline error relative to the gate's baseline, and directional accuracy
    (returns) or RMSE relative to the baseline (volatility)."""
    figure = Figure(figsize=(10, 4), layout="constrained")
    first, second = figure.subplots(1, 2)
    folds = np.arange(n_folds)
    labels = [f"fold {k}" for k in folds]
    error = target.headline.removesuffix("_ratio")
    others = tuple(m for m in target.models if m != target.baseline)

    def relative(metric: str):
        return lambda k, m: metrics[f"fold{k}_{m}_{metric}"] / metrics[f"fold{k}_{target.baseline}_{metric}"]

    if f"fold0_{MODEL}_directional_accuracy" in metrics:
        second_panel = (
            target.models,
            lambda k, m: metrics[f"fold{k}_{m}_directional_accuracy"],
            0.5,
            "directional accuracy (persistence: last period's sign)",
        )
    else:
        second_panel = (others, relative("rmse"), 1.0, f"RMSE / {target.baseline} RMSE (below 1: better)")
    for panel, (models, value, line, label) in (
        (
            first,
            (others, relative(error), 1.0, f"{error.upper()} / {target.baseline} {error.upper()} (below 1: better)"),
        ),
        (second, second_panel),
    ):
        width = 0.8 / len(models)
        for i, model in enumerate(models):
            panel.bar(
                folds + i * width,
                [value(k, model) - line for k in folds],
                width,
                bottom=line,
                label=model,
                color=f"C{target.models.index(model)}",
            )  # bars grow from the reference line
        panel.set_xticks(folds + width * (len(models) - 1) / 2, labels)
        panel.axhline(line, color="grey", lw=0.8)
        values = [value(k, m) for k in folds for m in models] + [line]
        panel.set_ylim(min(values) - 0.02 * line, max(values) + 0.02 * line)
        panel.set_ylabel(label)
        panel.legend()
    figure.suptitle("Walk-forward out-of-sample errors")
    return figure


def backtest_equity(equity: pd.DataFrame, params: BacktestParams) -> Figure:
    """Every backtested strategy's equity over the out-of-sample window, after costs."""
    figure = Figure(figsize=(11, 4.5), layout="constrained")
    ax = figure.subplots()
    for column in equity.columns:
        style = {"color": "black", "lw": 1.4} if column == "buy_and_hold" else {"lw": 1.0}
        ax.plot(equity.index, equity[column], label=column, **style)
    ax.axhline(1.0, color="grey", lw=0.6)
    ax.set_ylabel("equity (start = 1)")
    ax.set_title(
        f"Backtest on the newest fold (out of sample): fees {params.fees_bps:g} bps + slippage "
        f"{params.slippage_bps:g} bps per unit traded, equal-weight sleeves"
    )
    ax.legend(loc="upper left", ncols=3)
    return figure
