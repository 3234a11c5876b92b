"""What training, the gate and scoring need to know about a model's label beyond its contract.

A :class:`Target` pairs a model contract (:mod:`sentinance.catalog`) with the baselines its
LSTM is measured against, the metrics and losses that fit its label, and the columns a served
forecast carries. The walk-forward evaluation (:mod:`sentinance.ml.train`), the gate
(:mod:`sentinance.ml.promotion`) and scoring (:mod:`sentinance.ml.score`) run the same code
for each target:

* :data:`RETURNS` — the next period's log return (:data:`~sentinance.catalog.FORECASTER`):
  baselines persistence (``r̂ = 0``, the gate's reference) and the EMA drift; MAPE of the implied
  close, RMSE, MAE, directional accuracy; squared or absolute loss; backtested.
* :data:`VOLATILITY` — the next day's realised volatility (:data:`~sentinance.catalog.VOLATILITY`):
  baselines HAR-RV (Corsi, 2009; least squares on each fold's fitting window, the gate's reference)
  and persistence (``RV̂ = RV_d``); QLIKE, RMSE, MAE, MAPE; QLIKE or squared loss; the LSTM learns
  the log of the label.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from sentinance.catalog import FORECASTER, ModelContract
from sentinance.catalog import VOLATILITY as VOLATILITY_CONTRACT
from sentinance.ml import evaluation

if TYPE_CHECKING:
    from sentinance.ml.train import TrainParams

MODEL = "lstm"  # the column of the trained model's forecasts beside the baselines'


@dataclass(frozen=True)
class Target(ABC):
    contract: ModelContract
    baseline: str  # the forecast the gate and the pooled comparison test the model against
    baselines: tuple[str, ...]  # every baseline forecast scored beside the model
    losses: tuple[evaluation.LossKind, ...]  # the gate losses that suit the label; the first is the default
    ic_models: tuple[str, ...]  # forecasts whose cross-sectional IC is measured (constant ones have none)
    log_target: bool  # the LSTM learns the label's log (a positive label)
    unit: str  # what a forecast measures, for plot axes
    headline: str  # the ratio metric (model / gate baseline, per scope) training logs first
    backtest: bool  # whether the forecast drives the trading rules of :mod:`sentinance.ml.backtest`

    @property
    def models(self) -> tuple[str, ...]:
        return (MODEL, *self.baselines)

    @abstractmethod
    def baseline_forecasts(
        self, fit: pd.DataFrame, test: pd.DataFrame, params: TrainParams
    ) -> tuple[dict[str, np.ndarray], dict[str, float]]:
        """The baselines' forecasts (and any extra columns) for ``test``, fitted on ``fit`` where they
        learn anything; and what they learnt, as metrics (e.g. HAR's coefficients)."""

    @abstractmethod
    def error_metrics(self, rows: pd.DataFrame) -> dict[str, float]:
        """``<model>_<metric>`` of every model and baseline on scored rows, and the headline ratio."""

    @abstractmethod
    def served(self, rows: pd.DataFrame, predicted: np.ndarray) -> dict[str, Any]:
        """The forecast's columns of the predictions table, for feature rows and their forecasts."""


@dataclass(frozen=True)
class ReturnTarget(Target):
    def baseline_forecasts(
        self, fit: pd.DataFrame, test: pd.DataFrame, params: TrainParams
    ) -> tuple[dict[str, np.ndarray], dict[str, float]]:
        return {
            "persistence": evaluation.persistence_forecast(test),
            "ema": evaluation.ema_forecast(test, params.sequence_length, params.ema_span),
            "naive_direction": evaluation.naive_direction(test),
        }, {}

    def error_metrics(self, rows: pd.DataFrame) -> dict[str, float]:
        metrics: dict[str, float] = {}
        for model in self.models:
            direction = rows["naive_direction"].to_numpy() if model == "persistence" else None
            found = evaluation.forecast_metrics(rows[model], rows["actual"], rows["close"], direction)
            metrics.update({f"{model}_{k}": v for k, v in found.items()})
        metrics[self.headline] = metrics[f"{MODEL}_mape"] / metrics["persistence_mape"]
        return metrics

    def served(self, rows: pd.DataFrame, predicted: np.ndarray) -> dict[str, Any]:
        return {
            "predicted_log_return": predicted,
            "predicted_close": rows["close"].astype("float64").to_numpy() * np.exp(predicted),
        }


@dataclass(frozen=True)
class VolatilityTarget(Target):
    def baseline_forecasts(
        self, fit: pd.DataFrame, test: pd.DataFrame, params: TrainParams
    ) -> tuple[dict[str, np.ndarray], dict[str, float]]:
        components = self.contract.features
        coefficients = evaluation.har_fit(fit, components, self.contract.label)
        return {
            "har": evaluation.har_forecast(test, components, coefficients),
            "persistence": test[f"{components[0]}_lag_0"].to_numpy(np.float64),
        }, dict(zip(("har_b0", *(f"har_b_{c}" for c in components)), coefficients.tolist(), strict=True))

    def error_metrics(self, rows: pd.DataFrame) -> dict[str, float]:
        metrics: dict[str, float] = {}
        for model in self.models:
            found = evaluation.volatility_metrics(rows[model], rows["actual"])
            metrics.update({f"{model}_{k}": v for k, v in found.items()})
        metrics[self.headline] = metrics[f"{MODEL}_qlike"] / metrics[f"{self.baseline}_qlike"]
        metrics["mse_ratio"] = (metrics[f"{MODEL}_rmse"] / metrics[f"{self.baseline}_rmse"]) ** 2
        return metrics

    def served(self, rows: pd.DataFrame, predicted: np.ndarray) -> dict[str, Any]:
        return {self.contract.prediction: predicted}


RETURNS = ReturnTarget(
    contract=FORECASTER,
    baseline="persistence",
    baselines=("persistence", "ema"),
    losses=("squared", "absolute"),
    ic_models=(MODEL, "ema"),
    log_target=False,
    unit="log return",
    headline="mape_ratio",
    backtest=True,
)
VOLATILITY = VolatilityTarget(
    contract=VOLATILITY_CONTRACT,
    baseline="har",
    baselines=("har", "persistence"),
    losses=("qlike", "squared"),
    ic_models=(MODEL, "har", "persistence"),
    log_target=True,
    unit="realised volatility",
    headline="qlike_ratio",
    backtest=False,
)
TARGETS: dict[str, Target] = {t.contract.name: t for t in (RETURNS, VOLATILITY)}


def for_model(name: str) -> Target:
    """The target of a registered model name."""
    return TARGETS[name]
