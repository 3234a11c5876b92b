"""Explanations of the LSTM: SHAP global importance and LIME for recent predictions.

* SHAP: ``shap.GradientExplainer`` (expected gradients) on the torch module itself, with a
  background sample of its training rows. Global importance is the mean |SHAP| over the
  explained samples, per (lag, feature) cell, summed over lags per feature and over
  features per lag. Units: the model's output, log return.
* LIME: ``lime.lime_tabular.RecurrentTabularExplainer`` fits a local linear surrogate
  around each of a few recent inputs; its weights name lagged features (``basis_bps_t-0``
  is the latest period).

Both are logged to the active MLflow run under ``explanations/`` (JSON values and PNG plots).
"""

from __future__ import annotations

from dataclasses import dataclass

import mlflow
import numpy as np
import shap
import torch
from lime.lime_tabular import RecurrentTabularExplainer
from matplotlib.figure import Figure
from torch import nn

from sentinance.catalog import FORECASTER
from sentinance.ml.model import LSTMForecaster

ARTIFACT_DIR = "explanations"


@dataclass(frozen=True)
class ExplainParams:
    shap_background: int = 100  # training rows the expected gradients integrate over
    shap_samples: int = 200  # rows explained for the global importance
    shap_draws: int = 32  # background draws per explained row
    lime_instances: int = 3  # most recent inputs explained locally
    lime_samples: int = 500  # perturbations per LIME explanation
    lime_features: int = 10  # weights kept per LIME explanation


class _Column(nn.Module):
    """The forecaster with a (batch, 1) output, the shape SHAP's explainers expect."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x).unsqueeze(-1)


def _sample(x: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    return x[np.sort(rng.choice(len(x), size=min(size, len(x)), replace=False))]


def shap_importance(
    model: LSTMForecaster, background: np.ndarray, samples: np.ndarray, params: ExplainParams, seed: int
) -> dict:
    """Mean |SHAP| per feature, per lag (0 = latest period) and per (lag, feature)."""
    rng = np.random.default_rng(seed)
    model.eval()
    explainer = shap.GradientExplainer(
        _Column(model), torch.as_tensor(_sample(background, params.shap_background, rng))
    )
    explained = _sample(samples, params.shap_samples, rng)
    values = np.asarray(explainer.shap_values(torch.as_tensor(explained), nsamples=params.shap_draws, rseed=seed))
    cells = np.abs(values.reshape(explained.shape)).mean(axis=0)[::-1]  # (lag, feature), lag 0 first
    return {
        "explained_rows": len(explained),
        "background_rows": min(params.shap_background, len(background)),
        "by_feature": dict(zip(model.features, cells.sum(axis=0).tolist(), strict=True)),
        "by_lag": cells.sum(axis=1).tolist(),
        "by_lag_and_feature": {f: cells[:, i].tolist() for i, f in enumerate(model.features)},
    }


def lime_explanations(
    model: LSTMForecaster, training: np.ndarray, recent: np.ndarray, labels: list[str], params: ExplainParams, seed: int
) -> list[dict]:
    """LIME weights of the ``lime_features`` most influential lagged features for each recent input."""
    explainer = RecurrentTabularExplainer(
        training, mode="regression", feature_names=list(model.features), discretize_continuous=False, random_state=seed
    )
    explanations = []
    for row, label in zip(recent, labels, strict=True):
        found = explainer.explain_instance(
            row,
            lambda z: model.predict(z.astype(np.float32)),
            num_features=params.lime_features,
            num_samples=params.lime_samples,
        )
        explanations.append(
            {
                "input": label,
                "prediction": float(model.predict(row[None])[0]),
                "local_prediction": float(np.ravel(found.local_pred)[0]),
                "intercept": float(found.intercept[0] if isinstance(found.intercept, dict) else found.intercept),
                "score": float(found.score),
                "weights": [{"feature": name, "weight": float(w)} for name, w in found.as_list()],
            }
        )
    return explanations


def _bars(labels: list[str], values: list[float], title: str, xlabel: str) -> Figure:
    figure = Figure(figsize=(7, 0.35 * len(labels) + 1.2), layout="constrained")
    ax = figure.subplots()
    ax.barh(labels[::-1], values[::-1], color=["tab:red" if v < 0 else "tab:blue" for v in values[::-1]])
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    return figure


def _heatmap(importance: dict) -> Figure:
    features = list(importance["by_lag_and_feature"])
    cells = np.array([importance["by_lag_and_feature"][f] for f in features])  # (feature, lag)
    figure = Figure(figsize=(9, 2.8), layout="constrained")
    ax = figure.subplots()
    image = ax.imshow(cells, aspect="auto", cmap="viridis")
    ax.set_yticks(range(len(features)), features)
    ax.set_xlabel(f"lag ({FORECASTER.interval} periods before the forecast; 0 = latest)")
    ax.set_title("mean |SHAP| per lag and feature")
    figure.colorbar(image, ax=ax)
    return figure


def log_explanations(
    model: LSTMForecaster,
    training: np.ndarray,
    samples: np.ndarray,
    recent: np.ndarray,
    recent_labels: list[str],
    params: ExplainParams,
    seed: int,
) -> dict:
    """SHAP over ``samples`` (background: ``training``) and LIME for each ``recent`` input (named by
    ``recent_labels``), logged to the active MLflow run."""
    importance = shap_importance(model, training, samples, params, seed)
    local = lime_explanations(model, training, recent, recent_labels, params, seed)
    mlflow.log_dict({"shap": importance, "lime": local}, f"{ARTIFACT_DIR}/explanations.json")
    mlflow.log_metrics({f"shap_mean_abs_{f}": v for f, v in importance["by_feature"].items()})
    ranked = sorted(importance["by_feature"].items(), key=lambda kv: -kv[1])
    mlflow.log_figure(
        _bars(
            [f for f, _ in ranked],
            [v for _, v in ranked],
            "Global importance: mean |SHAP| summed over lags",
            "log return",
        ),
        f"{ARTIFACT_DIR}/shap_by_feature.png",
    )
    mlflow.log_figure(_heatmap(importance), f"{ARTIFACT_DIR}/shap_by_lag_and_feature.png")
    for i, explanation in enumerate(local):
        weights = explanation["weights"]
        mlflow.log_figure(
            _bars(
                [w["feature"] for w in weights],
                [w["weight"] for w in weights],
                f"LIME, {explanation['input']}: forecast {explanation['prediction']:+.2e}",
                "local weight (log return)",
            ),
            f"{ARTIFACT_DIR}/lime_recent_{i}.png",
        )
    return {"shap": importance, "lime": local}
