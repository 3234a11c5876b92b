"""Train the LSTM on a point-in-time Feast training set; log, register and gate it in MLflow.

The training set is the mart's complete labelled rows (entity, timestamp, label) joined
point-in-time with the feature service. Splits are chronological with an embargo of
``sequence_length`` hours between them, so no lag window straddles two folds. Every new
version gets the alias ``challenger``; it also becomes ``champion`` only if it beats the
persistence (random-walk) forecast on the holdout MAE.
"""

from __future__ import annotations

import copy
import logging
import time
import warnings
from dataclasses import asdict, dataclass, field
from datetime import timedelta

import mlflow
import numpy as np
import pandas as pd
import torch
from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.models import infer_signature

from sentinance import services
from sentinance.config import MODEL_NAME, Settings, get_settings, sequence_length
from sentinance.ml import feature_store
from sentinance.ml.model import SEQUENCE_FEATURES, LSTMForecaster, set_seed, to_sequences

log = logging.getLogger(__name__)

EXPERIMENT = "sentinance-forecasting"
CHAMPION, CHALLENGER = "champion", "challenger"
LABEL = "next_log_return"


@dataclass(frozen=True)
class TrainParams:
    """Model and training hyper-parameters (defaults train 90 days x 9 instruments in seconds)."""

    sequence_length: int = field(default_factory=sequence_length)
    hidden_size: int = 32
    num_layers: int = 1
    dropout: float = 0.0
    learning_rate: float = 3e-3
    weight_decay: float = 1e-5
    batch_size: int = 256
    max_epochs: int = 15
    patience: int = 3
    validation_fraction: float = 0.15
    holdout_fraction: float = 0.15
    embargo_hours: int | None = None  # None: sequence_length
    num_threads: int = 2
    seed: int | None = None  # None: settings.seed


@dataclass(frozen=True)
class TrainResult:
    model_name: str
    version: str
    aliases: tuple[str, ...]
    metrics: dict[str, float]
    run_id: str


@dataclass(frozen=True)
class Fold:
    frame: pd.DataFrame
    x: np.ndarray
    y: np.ndarray


def mlflow_experiment(settings: Settings, name: str) -> str:
    """Point MLflow at the state dir's SQLite store; return the experiment's id (created if needed)."""
    mlflow.set_tracking_uri(services.mlflow_tracking_uri(settings))
    experiment = mlflow.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    return mlflow.create_experiment(name, artifact_location=f"{services.mlflow_artifact_root(settings)}/{name}")


def serving_version(settings: Settings) -> tuple[ModelVersion, str]:
    """The model version to serve and its alias: champion, else challenger (shadow scoring)."""
    mlflow.set_tracking_uri(services.mlflow_tracking_uri(settings))
    client = MlflowClient()
    for alias in (CHAMPION, CHALLENGER):
        try:
            return client.get_model_version_by_alias(MODEL_NAME, alias), alias
        except MlflowException:
            log.info("no %s version of %s", alias, MODEL_NAME)
    raise LookupError(f"{MODEL_NAME} has neither a {CHAMPION} nor a {CHALLENGER} version: train first")


def training_set(settings: Settings) -> pd.DataFrame:
    """Complete labelled mart rows with their point-in-time features from Feast."""
    entity_df = feature_store.query(
        settings,
        f"SELECT instrument_id, event_timestamp, {LABEL} FROM {feature_store.MART_TABLE} "
        f"WHERE is_complete AND {LABEL} IS NOT NULL",
    )
    if entity_df.empty:
        raise ValueError(f"{feature_store.MART_TABLE} has no complete labelled rows to train on")
    entity_df[LABEL] = entity_df[LABEL].astype("float64")
    return feature_store.historical_features(settings, entity_df)


def split(frame: pd.DataFrame, params: TrainParams) -> dict[str, Fold]:
    """Chronological train / validation / holdout folds with an embargo between them."""
    embargo = timedelta(hours=params.sequence_length if params.embargo_hours is None else params.embargo_hours)
    times = frame["event_timestamp"].drop_duplicates().sort_values()
    t_val = times.iloc[int(len(times) * (1 - params.validation_fraction - params.holdout_fraction))]
    t_hold = times.iloc[int(len(times) * (1 - params.holdout_fraction))]
    ts = frame["event_timestamp"]
    masks = {
        "train": ts < t_val,
        "validation": (ts >= t_val + embargo) & (ts < t_hold),
        "holdout": ts >= t_hold + embargo,
    }
    folds = {}
    for name, mask in masks.items():
        part = frame[mask].reset_index(drop=True)
        if part.empty:
            raise ValueError(f"the {name} fold is empty: too little history for the split and embargo")
        folds[name] = Fold(part, to_sequences(part, params.sequence_length), part[LABEL].to_numpy(np.float32))
    return folds


def _fit(model: LSTMForecaster, folds: dict[str, Fold], params: TrainParams) -> list[dict[str, float]]:
    """Adam on the standardized target with early stopping; restores the best weights."""
    x_train = torch.as_tensor(folds["train"].x)
    y_train = torch.as_tensor(folds["train"].y)
    x_val = torch.as_tensor(folds["validation"].x)
    y_val = torch.as_tensor(folds["validation"].y)
    optimizer = torch.optim.Adam(model.parameters(), lr=params.learning_rate, weight_decay=params.weight_decay)

    def loss_fn(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return (((pred - target) / model.target_std) ** 2).mean()

    history: list[dict[str, float]] = []
    best_loss, best_state, stale = float("inf"), copy.deepcopy(model.state_dict()), 0
    generator = torch.Generator().manual_seed(params.seed)
    for epoch in range(params.max_epochs):
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


def _forecast_metrics(prefix: str, pred: np.ndarray, actual: np.ndarray, close: np.ndarray) -> dict[str, float]:
    error = pred - actual
    next_close = close * np.exp(actual)
    return {
        f"holdout_{prefix}_mae": float(np.mean(np.abs(error))),
        f"holdout_{prefix}_rmse": float(np.sqrt(np.mean(error**2))),
        f"holdout_{prefix}_mape_close": float(np.mean(np.abs(close * np.exp(pred) - next_close) / next_close) * 100),
    }


def holdout_metrics(model: LSTMForecaster, fold: Fold) -> dict[str, float]:
    """LSTM vs persistence on the holdout.

    Persistence is the random walk: next log return 0, i.e. next close = last close. Its
    point forecast has no direction, so its directional accuracy is that of the naive
    "the last hour's direction repeats" rule.
    """
    actual = fold.y.astype(np.float64)
    close = fold.frame["close"].to_numpy(np.float64)
    lstm = model.predict(fold.x).astype(np.float64)
    last_return = fold.frame["log_return_lag_0"].to_numpy(np.float64)
    return {
        **_forecast_metrics("lstm", lstm, actual, close),
        "holdout_lstm_directional_accuracy": float(np.mean(np.sign(lstm) == np.sign(actual))),
        **_forecast_metrics("persistence", np.zeros_like(actual), actual, close),
        "holdout_persistence_directional_accuracy": float(np.mean(np.sign(last_return) == np.sign(actual))),
        "holdout_rows": float(len(actual)),
    }


def train_and_register(settings: Settings | None = None, params: TrainParams | None = None) -> TrainResult:
    """Build the training set, train, evaluate, log to MLflow and register a new version."""
    settings = settings or get_settings()
    params = params or TrainParams()
    seed = settings.seed if params.seed is None else params.seed
    params = TrainParams(**{**asdict(params), "seed": seed})
    torch.set_num_threads(params.num_threads)
    set_seed(seed)

    frame = training_set(settings)
    folds = split(frame, params)
    model = LSTMForecaster(params.sequence_length, SEQUENCE_FEATURES, params.hidden_size, params.num_layers, params.dropout)
    model.fit_scaling(folds["train"].x, folds["train"].y)
    started = time.perf_counter()
    history = _fit(model, folds, params)
    train_seconds = time.perf_counter() - started
    metrics = {**holdout_metrics(model, folds["holdout"]), "train_seconds": train_seconds, "epochs": float(len(history))}
    promote = metrics["holdout_lstm_mae"] < metrics["holdout_persistence_mae"]
    train_times = folds["train"].frame["event_timestamp"]

    mlflow.set_experiment(experiment_id=mlflow_experiment(settings, EXPERIMENT))
    with mlflow.start_run(run_name=f"lstm-seq{params.sequence_length}") as run:
        mlflow.log_params(asdict(params))
        mlflow.log_params(
            {
                "features": ",".join(SEQUENCE_FEATURES),
                "feature_service": feature_store.FEATURE_SERVICE,
                "train_start": train_times.min().isoformat(),
                "train_end": train_times.max().isoformat(),
                "holdout_start": folds["holdout"].frame["event_timestamp"].min().isoformat(),
                **{f"{name}_rows": len(fold.y) for name, fold in folds.items()},
                "champion_gate": "holdout_lstm_mae < holdout_persistence_mae",
                "gate_passed": promote,
            }
        )
        for epoch, losses in enumerate(history):
            mlflow.log_metrics(losses, step=epoch)
        mlflow.log_metrics(metrics)
        mlflow.set_tag("gate", "passed" if promote else "failed")
        with warnings.catch_warnings():  # the table name is not a URI MLflow knows; it is still the source
            warnings.simplefilter("ignore", UserWarning)
            for name in ("train", "holdout"):
                dataset = mlflow.data.from_pandas(
                    folds[name].frame, source=feature_store.MART_TABLE, targets=LABEL, name=f"fct_training_features_{name}"
                )
                mlflow.log_input(dataset, context="training" if name == "train" else "evaluation")
        # torch.export assumes equal-sized dims are the same dim: keep the example's batch
        # size unlike sequence_length and the feature count so the batch stays dynamic
        batch = next(n for n in range(5, 50) if n not in (params.sequence_length, len(SEQUENCE_FEATURES)))
        example = folds["train"].x[:batch]
        with warnings.catch_warnings():  # torch.export notes nn.LSTM's flat weights; harmless
            warnings.filterwarnings("ignore", message="The tensor attributes self.lstm._flat_weights")
            info = mlflow.pytorch.log_model(
                model,
                name="model",
                signature=infer_signature(example, model.predict(example)),
                input_example=example,
                registered_model_name=MODEL_NAME,
                metadata={"sequence_length": params.sequence_length, "features": list(SEQUENCE_FEATURES)},
                pip_requirements=[f"torch=={torch.__version__.split('+')[0]}", f"mlflow=={mlflow.__version__}", "numpy"],
            )
        version = str(info.registered_model_version)

    client = MlflowClient()
    aliases = [CHALLENGER, *([CHAMPION] if promote else [])]
    for alias in aliases:
        client.set_registered_model_alias(MODEL_NAME, alias, version)
    client.set_model_version_tag(MODEL_NAME, version, "gate", "passed" if promote else "failed")
    log.info(
        "registered %s v%s (%s): LSTM MAE %.6f vs persistence %.6f, %d epochs in %.1fs",
        MODEL_NAME, version, ", ".join(aliases), metrics["holdout_lstm_mae"], metrics["holdout_persistence_mae"], len(history), train_seconds,
    )
    return TrainResult(MODEL_NAME, version, tuple(aliases), metrics, run.info.run_id)
