"""Train the LSTM on a point-in-time Feast training set, walk-forward; log, explain, register, gate.

1. The training set (Feast ``get_historical_features`` on the mart's complete labelled rows)
   is stored in the Delta table ``gold/training_sets`` and logged with ``mlflow.data``
   (source: that path and Delta version).
2. Walk-forward evaluation (:func:`sentinance.ml.evaluation.walk_forward`): per fold, the
   scalers are fitted on the fold's training part only, early stopping watches the
   validation tail (keeping a copy of the best weights), and the LSTM, persistence and the
   EMA drift forecast are scored on the fold's test window.
3. The registered model is the **newest fold's** model: trained on everything before the
   newest test window (minus the embargo), so its out-of-sample errors there are those of
   the registered weights, and the gate (:mod:`sentinance.ml.promotion`) compares it with
   persistence and the current champion on exactly those rows.
4. SHAP and LIME explanations, figures, per-epoch and per-fold metrics, the gate's
   statistics and the lineage (Delta versions, git commit, definitions hash, seeds) go to
   the MLflow run; every new version gets ``challenger``, and ``champion`` if the gate passes.

Registering and aliasing are two steps; :func:`finish` makes the second converge. A version
whose training set, parameters and code are those of this training is not trained again:
it is finished (its aliases and tags, from its run's gate decision and records, if a killed
run left them unset) and returned.
"""

from __future__ import annotations

import copy
import json
import logging
import time
import warnings
from dataclasses import asdict, dataclass, fields, replace
from datetime import timedelta
from typing import Literal

import mlflow
import numpy as np
import pandas as pd
import torch
from mlflow.data.delta_dataset_source import DeltaDatasetSource
from mlflow.entities.model_registry import ModelVersion
from mlflow.models import infer_signature

from sentinance import faults
from sentinance.catalog import FORECASTER
from sentinance.ml import evaluation, explain, plots, promotion, registry, training_set
from sentinance.ml.model import LSTMForecaster, set_seed, to_sequences
from sentinance.ml.training_set import TrainingSetRef
from sentinance.settings import Settings, get_settings

log = logging.getLogger(__name__)

MODELS = plots.MODELS


@dataclass(frozen=True)
class TrainParams:
    """Model, walk-forward and gate settings (defaults: 90 days x 9 instruments in about a minute on 2 cores)."""

    sequence_length: int | None = None  # None: settings.sequence_length
    hidden_size: int = 32
    num_layers: int = 1
    dropout: float = 0.0
    learning_rate: float = 3e-3
    weight_decay: float = 1e-5
    batch_size: int = 256
    max_epochs: int = 15
    patience: int = 3
    n_folds: int = 3
    test_fraction: float = 0.1  # of the timeline, per fold
    validation_fraction: float = 0.15  # of each fold's fitting window, its tail, for early stopping
    window: Literal["expanding", "rolling"] = "expanding"
    embargo_periods: int | None = None  # None: sequence_length; periods of the contract's interval
    ema_span: int = 6  # periods, of the EMA drift baseline
    alpha: float = 0.05  # significance of the gate's tests
    gate_loss: Literal["squared", "absolute"] = "squared"
    num_threads: int = 1  # the model is tiny: more intra-op threads only spin, badly so on a busy machine
    seed: int | None = None  # None: settings.seed

    @property
    def embargo(self) -> timedelta:
        return FORECASTER.period * (self.sequence_length if self.embargo_periods is None else self.embargo_periods)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> TrainParams:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in json.loads(text).items() if k in known})


@dataclass(frozen=True)
class TrainResult:
    model_name: str
    version: str
    aliases: tuple[str, ...]
    metrics: dict[str, float]
    run_id: str
    training_set_id: str
    gate: dict
    reused: bool = False  # the same training set and parameters made this version before: nothing trained


@dataclass
class FoldFit:
    window: evaluation.FoldWindow
    model: LSTMForecaster
    history: list[dict[str, float]]
    seconds: float
    train_x: np.ndarray
    test: pd.DataFrame  # the test rows with actual, lstm, persistence, ema, naive_direction


@dataclass
class WalkForward:
    folds: list[FoldFit]
    predictions: pd.DataFrame  # every fold's test rows, with a fold column
    metrics: dict[str, float]

    @property
    def newest(self) -> FoldFit:
        return self.folds[-1]


def _fit(
    model: LSTMForecaster,
    train: tuple[np.ndarray, np.ndarray],
    validation: tuple[np.ndarray, np.ndarray],
    params: TrainParams,
) -> list[dict[str, float]]:
    """Adam on the standardized target with early stopping; restores a copy of the best weights."""
    x_train, y_train = (torch.as_tensor(a) for a in train)
    x_val, y_val = (torch.as_tensor(a) for a in validation)
    optimizer = torch.optim.Adam(model.parameters(), lr=params.learning_rate, weight_decay=params.weight_decay)

    def loss_fn(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return (((pred - target) / model.target_std) ** 2).mean()

    history: list[dict[str, float]] = []
    best_loss, best_state, stale = float("inf"), copy.deepcopy(model.state_dict()), 0
    generator = torch.Generator().manual_seed(params.seed)
    for _ in range(params.max_epochs):
        model.train()
        total = 0.0
        for batch in torch.randperm(len(x_train), generator=generator).split(params.batch_size):
            optimizer.zero_grad()
            loss = loss_fn(model(x_train[batch]), y_train[batch])
            loss.backward()
            optimizer.step()
            total += loss.item() * len(batch)
        model.eval()
        with torch.no_grad():
            val_loss = loss_fn(model(x_val), y_val).item()
        history.append({"train_loss": total / len(x_train), "val_loss": val_loss})
        if val_loss < best_loss:
            best_loss, best_state, stale = val_loss, copy.deepcopy(model.state_dict()), 0
        else:
            stale += 1
            if stale >= params.patience:
                break
    model.load_state_dict(best_state)
    model.eval()
    return history


def _xy(part: pd.DataFrame, params: TrainParams) -> tuple[np.ndarray, np.ndarray]:
    return to_sequences(part, params.sequence_length), part[FORECASTER.label].to_numpy(np.float32)


def fit_fold(frame: pd.DataFrame, window: evaluation.FoldWindow, params: TrainParams) -> FoldFit:
    """Fit one fold's LSTM (seeded, scalers on its training part) and forecast its test window."""
    parts = {name: frame[mask].reset_index(drop=True) for name, mask in window.masks(frame["event_timestamp"]).items()}
    train, validation = _xy(parts["train"], params), _xy(parts["validation"], params)
    set_seed(params.seed)
    model = LSTMForecaster(
        params.sequence_length, FORECASTER.features, params.hidden_size, params.num_layers, params.dropout
    )
    model.fit_scaling(*train)
    started = time.perf_counter()
    history = _fit(model, train, validation, params)
    seconds = time.perf_counter() - started
    test = parts["test"]
    test = test.assign(
        fold=window.index,
        actual=test[FORECASTER.label].astype("float64"),
        lstm=model.predict(to_sequences(test, params.sequence_length)).astype(np.float64),
        persistence=evaluation.persistence_forecast(test),
        ema=evaluation.ema_forecast(test, params.sequence_length, params.ema_span),
        naive_direction=evaluation.naive_direction(test),
    )
    return FoldFit(window, model, history, seconds, train[0], test)


def scored_metrics(rows: pd.DataFrame, scope: str) -> dict[str, float]:
    """``<scope>_<model>_<metric>`` for the LSTM and both baselines, and the LSTM/persistence MAPE ratio."""
    metrics: dict[str, float] = {}
    for model in MODELS:
        direction = rows["naive_direction"].to_numpy() if model == "persistence" else None
        found = evaluation.forecast_metrics(rows[model], rows["actual"], rows["close"], direction)
        metrics.update({f"{scope}_{model}_{k}": v for k, v in found.items()})
    metrics[f"{scope}_mape_ratio"] = metrics[f"{scope}_lstm_mape"] / metrics[f"{scope}_persistence_mape"]
    metrics[f"{scope}_rows"] = float(len(rows))
    return metrics


def walk_forward(frame: pd.DataFrame, params: TrainParams) -> WalkForward:
    """Fit and score every fold; metrics per fold (``fold<k>_``), newest fold (``holdout_``), pooled (``cv_``)."""
    if params.seed is None or params.sequence_length is None:
        raise ValueError(
            "walk_forward needs params.seed and params.sequence_length (train_and_register takes them "
            "from the settings)"
        )
    torch.set_num_threads(params.num_threads)
    windows = evaluation.walk_forward(
        frame["event_timestamp"],
        n_folds=params.n_folds,
        test_fraction=params.test_fraction,
        validation_fraction=params.validation_fraction,
        embargo=params.embargo,
        window=params.window,
    )
    folds = [fit_fold(frame, window, params) for window in windows]
    predictions = pd.concat([f.test for f in folds], ignore_index=True)
    metrics: dict[str, float] = {}
    for fold in folds:
        k = fold.window.index
        metrics.update(scored_metrics(fold.test, f"fold{k}"))
        metrics.update({f"fold{k}_train_seconds": fold.seconds, f"fold{k}_epochs": float(len(fold.history))})
    metrics.update(scored_metrics(folds[-1].test, "holdout"))
    metrics.update(scored_metrics(predictions, "cv"))
    pooled = evaluation.compare(  # informational: the gate tests the newest fold only
        evaluation.loss(predictions["lstm"], predictions["actual"], params.gate_loss),
        evaluation.loss(predictions["persistence"], predictions["actual"], params.gate_loss),
        predictions["event_timestamp"],
        alpha=params.alpha,
    )
    metrics.update(pooled.as_dict("cv_vs_persistence_"))
    return WalkForward(folds, predictions, metrics)


def _log_datasets(frame: pd.DataFrame, holdout: pd.DataFrame, ref: TrainingSetRef) -> None:
    source = DeltaDatasetSource(path=ref.path, delta_table_version=ref.delta_version)
    training = mlflow.data.from_pandas(
        frame, source=source, targets=FORECASTER.label, name=f"training_set_{ref.training_set_id}"
    )
    evaluated = mlflow.data.from_pandas(
        holdout.drop(columns="fold"),
        source=source,
        targets=FORECASTER.label,
        predictions="lstm",
        name=f"holdout_{ref.training_set_id}",
    )
    mlflow.log_input(training, context="training")
    mlflow.log_input(evaluated, context="evaluation")


def _log_model(model: LSTMForecaster, example_x: np.ndarray, params: TrainParams) -> str:
    # torch.export assumes equal-sized dims are the same dim: keep the example's batch
    # size unlike sequence_length and the feature count so the batch stays dynamic
    batch = next(n for n in range(5, 50) if n not in (params.sequence_length, len(FORECASTER.features)))
    example = example_x[:batch]
    with warnings.catch_warnings():  # torch.export notes nn.LSTM's flat weights; harmless
        warnings.filterwarnings("ignore", message="The tensor attributes self.lstm._flat_weights")
        info = mlflow.pytorch.log_model(
            model,
            name="model",
            signature=infer_signature(example, model.predict(example)),
            input_example=example,
            registered_model_name=FORECASTER.name,
            metadata={
                "sequence_length": params.sequence_length,
                "features": list(FORECASTER.features),
                "interval": FORECASTER.interval,
            },
            pip_requirements=[f"torch=={torch.__version__.split('+')[0]}", f"mlflow=={mlflow.__version__}", "numpy"],
        )
    return str(info.registered_model_version)


def _log_epochs(result: WalkForward) -> None:
    for fold in result.folds:
        for epoch, losses in enumerate(fold.history):
            mlflow.log_metrics({f"fold{fold.window.index}_{k}": v for k, v in losses.items()}, step=epoch)


def train_and_register(
    settings: Settings | None = None,
    params: TrainParams | None = None,
    explain_params: explain.ExplainParams | None = None,
) -> TrainResult:
    """Build and store the training set, evaluate walk-forward, log and register, gate the version."""
    settings = settings or get_settings()
    params = params or TrainParams()
    explain_params = explain_params or explain.ExplainParams()
    params = replace(
        params,
        seed=settings.seed if params.seed is None else params.seed,
        sequence_length=params.sequence_length or settings.sequence_length,
    )
    lineage = registry.lineage(settings)

    frame = training_set.build(settings)
    ref = training_set.save(settings, frame)
    made = registry.version_trained_on(settings, ref.training_set_id, params.to_json())
    if made is not None:  # training is deterministic: the same inputs would register a bit-identical copy
        log.info(
            "%s v%s was trained on training set %s with these parameters: reused, nothing trained",
            FORECASTER.name,
            made.version,
            ref.training_set_id,
        )
        return replace(finish(settings, made), reused=True)
    result = walk_forward(frame, params)
    newest = result.newest
    gate = promotion.decide(settings, newest.test, alpha=params.alpha, loss_kind=params.gate_loss)
    records = {
        **lineage,
        registry.TRAIN_PARAMS_TAG: params.to_json(),
        "seed": str(params.seed),
        "training_set_id": ref.training_set_id,
        "training_set_path": ref.path,
        "training_set_delta_version": str(ref.delta_version),
        "gate": "passed" if gate.promoted else "failed",
        "gate_reason": gate.reason,
    }

    mlflow.set_experiment(experiment_id=registry.experiment(settings, registry.TRAINING_EXPERIMENT))
    with mlflow.start_run(run_name=f"lstm-seq{params.sequence_length}-{ref.training_set_id[:8]}"):
        window = newest.window
        mlflow.log_params({**asdict(params), **{f"explain_{k}": v for k, v in asdict(explain_params).items()}})
        mlflow.log_params(
            {
                "features": ",".join(FORECASTER.features),
                "feature_service": FORECASTER.feature_service,
                "train_start": window.train_start.isoformat(),
                "train_end": window.validation_end.isoformat(),  # the last period the registered model was fitted on
                "holdout_start": window.test_start.isoformat(),
                "holdout_end": window.test_end.isoformat(),
                **{f"fold{f.window.index}_test_start": f.window.test_start.isoformat() for f in result.folds},
                "gate_rule": f"beats persistence and champion: lower mean {params.gate_loss} loss, "
                f"DM (HLN) and paired t p < {params.alpha}",
            }
        )
        mlflow.set_tags(records)
        _log_epochs(result)
        mlflow.log_metrics({**result.metrics, **gate.metrics()})
        mlflow.log_dict(gate.report(), "gate.json")
        mlflow.log_figure(plots.error_by_fold(result.metrics, params.n_folds), "plots/error_by_fold.png")
        instrument = newest.test["instrument_id"].iloc[0]
        mlflow.log_figure(plots.forecast_vs_actual(newest.test, instrument), "plots/forecast_vs_actual.png")
        _log_datasets(frame, newest.test, ref)
        test_x = to_sequences(newest.test, params.sequence_length)
        recent = newest.test.tail(explain_params.lime_instances)  # the newest period's rows come last
        labels = [f"{r.instrument_id} at {r.event_timestamp:%Y-%m-%d %H:%M}" for r in recent.itertuples()]
        explain.log_explanations(
            newest.model, newest.train_x, test_x, test_x[-len(recent) :], labels, explain_params, params.seed
        )
        version = _log_model(newest.model, newest.train_x, params)

    faults.reach(settings, "registry-alias")
    return finish(settings, registry.client(settings).get_model_version(FORECASTER.name, version))


def finish(settings: Settings, version: ModelVersion) -> TrainResult:
    """Give a registered version its aliases (``challenger``, and ``champion`` if its gate passed) and its
    training run's records as tags, unless that was done (the ``registration`` tag, set last); return what
    its training found. A run killed between registering and aliasing is finished by the next one."""
    client = registry.client(settings)
    run = client.get_run(version.run_id)
    tags = run.data.tags
    if version.tags.get(registry.REGISTRATION_TAG) != registry.COMPLETE:
        for alias in [registry.CHALLENGER, *([registry.CHAMPION] if tags["gate"] == "passed" else [])]:
            client.set_registered_model_alias(FORECASTER.name, alias, version.version)
        for key, value in tags.items():
            if not key.startswith("mlflow."):  # the records of train_and_register, not MLflow's own
                client.set_model_version_tag(FORECASTER.name, version.version, key, value)
        client.set_model_version_tag(FORECASTER.name, version.version, registry.REGISTRATION_TAG, registry.COMPLETE)
    current = client.get_registered_model(FORECASTER.name).aliases
    aliases = tuple(sorted(alias for alias, number in current.items() if str(number) == str(version.version)))
    metrics = run.data.metrics
    log.info(
        "registered %s v%s (%s): LSTM/persistence MAPE %.4f (holdout), %.4f (all folds); gate: %s",
        FORECASTER.name,
        version.version,
        ", ".join(aliases) or "no alias",
        metrics["holdout_mape_ratio"],
        metrics["cv_mape_ratio"],
        tags["gate_reason"],
    )
    gate = mlflow.artifacts.load_dict(f"{run.info.artifact_uri}/gate.json")
    return TrainResult(
        FORECASTER.name, str(version.version), aliases, metrics, run.info.run_id, tags["training_set_id"], gate
    )
