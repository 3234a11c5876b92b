"""Train an LSTM on a point-in-time Feast training set, walk-forward over several seeds; log, explain,
backtest, register, gate.

The same code trains each :class:`~sentinance.ml.targets.Target`: the return forecaster
(:data:`~sentinance.ml.targets.RETURNS`, the default) and the volatility model
(:data:`~sentinance.ml.targets.VOLATILITY`), each against its own baselines and registered under
its own name.

1. The training set (Feast ``get_historical_features`` on the mart's complete labelled rows)
   is stored in the Delta table ``gold/training_sets`` and logged with ``mlflow.data``
   (source: that path and Delta version).
2. Walk-forward evaluation (:func:`sentinance.ml.evaluation.walk_forward`): per fold, the
   scalers are fitted on the fold's training part only, early stopping watches the
   validation tail (keeping a copy of the best weights), and the LSTM and the target's
   baselines are scored on the fold's test window: errors, and the cross-sectional IC and
   rank IC per hour across instruments (mean, std, ICIR).
3. The walk-forward runs once per seed (``TrainParams.seeds``: seed, seed + 1, ...); every
   metric of the LSTM is logged for the first, the **registered seed**, and as mean and
   standard deviation over all seeds (``<metric>_seed_mean``, ``<metric>_seed_std``).
4. The registered model is the registered seed's **newest fold's** model: trained on
   everything before the newest test window (minus the embargo), so its out-of-sample errors
   there are those of the registered weights, and the gate (:mod:`sentinance.ml.promotion`)
   compares it with the target's baseline and the current champion on exactly those rows; the
   same comparison with the baseline for every other seed is logged beside it.
5. A return forecaster is backtested on that window (:mod:`sentinance.ml.backtest`): metrics
   and the equity curves to MLflow, one row per strategy and rule to ``gold/backtests``.
6. SHAP and LIME explanations, figures, per-epoch and per-fold metrics, the gate's
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
import math
import time
import warnings
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import timedelta
from typing import Literal

import mlflow
import numpy as np
import pandas as pd
import torch
from mlflow.data.delta_dataset_source import DeltaDatasetSource
from mlflow.entities.model_registry import ModelVersion
from mlflow.models import infer_signature

from sentinance import faults, lake
from sentinance.catalog import BACKTESTS, FORECASTER
from sentinance.errors import SettingsError
from sentinance.ml import backtest, evaluation, explain, plots, promotion, registry, training_set
from sentinance.ml.model import LSTMForecaster, set_seed, to_sequences
from sentinance.ml.targets import MODEL, RETURNS, Target
from sentinance.ml.training_set import TrainingSetRef
from sentinance.settings import Settings, get_settings

log = logging.getLogger(__name__)

SEED_MEAN, SEED_STD = "_seed_mean", "_seed_std"
# the model runs on CPU: its requirements name PyTorch's CPU build and the index that has it, so that
# `mlflow models serve --env-manager virtualenv` (or uv, conda) never resolves PyPI's CUDA wheel (GBs)
TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"


def pip_requirements() -> list[str]:
    """The registered model's requirements.txt: torch pinned to this version's CPU build, mlflow, numpy."""
    return [
        f"--extra-index-url {TORCH_CPU_INDEX}",
        f"torch=={torch.__version__.split('+')[0]}+cpu",
        f"mlflow=={mlflow.__version__}",
        "numpy",
    ]


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
    gate_loss: Literal["squared", "absolute", "qlike"] = "squared"  # qlike: volatility only
    num_threads: int = 1  # the model is tiny: more intra-op threads only spin, badly so on a busy machine
    seed: int | None = None  # None: settings.seed; the registered seed
    seeds: int = 5  # walk-forward runs, with seed, seed + 1, ...: the spread of every metric over them is logged

    @property
    def embargo(self) -> timedelta:
        return FORECASTER.period * (self.sequence_length if self.embargo_periods is None else self.embargo_periods)

    @property
    def seed_list(self) -> list[int]:
        """The seeds of a training run, the registered one first."""
        return [self.seed + i for i in range(self.seeds)]

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
    seeds: tuple[int, ...] = ()
    backtest: dict[str, float] = field(default_factory=dict)  # backtest_<strategy>_<rule>_<metric>
    reused: bool = False  # the same training set and parameters made this version before: nothing trained


@dataclass
class FoldFit:
    window: evaluation.FoldWindow
    model: LSTMForecaster
    history: list[dict[str, float]]
    seconds: float
    train_x: np.ndarray
    test: pd.DataFrame  # the test rows with actual, lstm and the target's baselines (persistence, ema, ...)
    learnt: dict[str, float] = field(default_factory=dict)  # what the baselines fitted (HAR's coefficients)


@dataclass
class WalkForward:
    folds: list[FoldFit]
    predictions: pd.DataFrame  # every fold's test rows, with a fold column
    metrics: dict[str, float]

    @property
    def newest(self) -> FoldFit:
        return self.folds[-1]


@dataclass(frozen=True)
class SeedSpread:
    """The walk-forward over every seed of a training run: how far its metrics move with the seed."""

    seeds: tuple[int, ...]
    metrics: dict[str, float]  # <metric>_seed_mean, <metric>_seed_std, gate_seed_* (see :func:`seed_spread`)
    per_seed: dict[int, dict[str, float]]  # the seed-dependent metrics of each seed
    gate: dict  # the gate's comparison with the baseline, per seed

    def table(self, keys: list[str]) -> str:
        """Markdown: ``metric | mean ± std | per seed``, as qlib's benchmark tables report a model."""
        lines = [
            f"| metric | mean ± std over {len(self.seeds)} seeds | {' | '.join(f'seed {s}' for s in self.seeds)} |",
            f"|---|---|{'---|' * len(self.seeds)}",
        ]
        for key in keys:
            values = " | ".join(f"{self.per_seed[s][key]:.6g}" for s in self.seeds)
            lines.append(
                f"| {key} | {self.metrics[key + SEED_MEAN]:.6g} ± {self.metrics[key + SEED_STD]:.3g} | {values} |"
            )
        return "\n".join(lines)


def _fit(
    model: LSTMForecaster,
    train: tuple[np.ndarray, np.ndarray],
    validation: tuple[np.ndarray, np.ndarray],
    params: TrainParams,
) -> list[dict[str, float]]:
    """Adam on the standardized target with early stopping; restores a copy of the best weights."""
    x_train, y_train = torch.as_tensor(train[0]), model.encode(torch.as_tensor(train[1]))
    x_val, y_val = torch.as_tensor(validation[0]), model.encode(torch.as_tensor(validation[1]))
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
            loss = loss_fn(model.encoded(x_train[batch]), y_train[batch])
            loss.backward()
            optimizer.step()
            total += loss.item() * len(batch)
        model.eval()
        with torch.no_grad():
            val_loss = loss_fn(model.encoded(x_val), y_val).item()
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


def _xy(part: pd.DataFrame, params: TrainParams, target: Target) -> tuple[np.ndarray, np.ndarray]:
    return (
        to_sequences(part, params.sequence_length, target.contract.inputs),
        part[target.contract.label].to_numpy(np.float32),
    )


def fit_fold(
    frame: pd.DataFrame, window: evaluation.FoldWindow, params: TrainParams, target: Target = RETURNS
) -> FoldFit:
    """Fit one fold's LSTM (seeded, scalers on its training part) and forecast its test window, beside the
    target's baselines (fitted, where they learn anything, on the fold's training and validation parts)."""
    parts = {name: frame[mask].reset_index(drop=True) for name, mask in window.masks(frame["event_timestamp"]).items()}
    train, validation = _xy(parts["train"], params, target), _xy(parts["validation"], params, target)
    set_seed(params.seed)
    model = LSTMForecaster(
        params.sequence_length,
        target.contract.inputs,
        params.hidden_size,
        params.num_layers,
        params.dropout,
        log_target=target.log_target,
    )
    model.fit_scaling(*train)
    started = time.perf_counter()
    history = _fit(model, train, validation, params)
    seconds = time.perf_counter() - started
    test = parts["test"]
    baselines, learnt = target.baseline_forecasts(
        pd.concat([parts["train"], parts["validation"]], ignore_index=True), test, params
    )
    test = test.assign(
        fold=window.index,
        actual=test[target.contract.label].astype("float64"),
        **{MODEL: model.predict(to_sequences(test, params.sequence_length, target.contract.inputs)).astype(np.float64)},
        **baselines,
    )
    return FoldFit(window, model, history, seconds, train[0], test, learnt)


def scored_metrics(rows: pd.DataFrame, scope: str, target: Target = RETURNS) -> dict[str, float]:
    """``<scope>_<model>_<metric>`` for the LSTM and the target's baselines, the headline ratio (LSTM /
    gate baseline), and the cross-sectional IC metrics (``<scope>_<model>_ic_mean``, ...)."""
    metrics = {f"{scope}_{k}": v for k, v in target.error_metrics(rows).items()}
    for model in target.ic_models:
        per_hour = evaluation.cross_sectional_ic(rows[model], rows["actual"], rows["event_timestamp"])
        metrics.update({f"{scope}_{model}_{k}": v for k, v in evaluation.ic_summary(per_hour).items()})
    metrics[f"{scope}_rows"] = float(len(rows))
    return metrics


def walk_forward(frame: pd.DataFrame, params: TrainParams, target: Target = RETURNS) -> WalkForward:
    """Fit and score every fold with ``params.seed``; metrics per fold (``fold<k>_``), newest fold
    (``holdout_``), pooled (``cv_``). The embargo is at least the label's horizon (a day-ahead label
    must not reach into the test window)."""
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
        embargo=max(params.embargo, timedelta(seconds=target.contract.horizon_seconds)),
        window=params.window,
    )
    folds = [fit_fold(frame, window, params, target) for window in windows]
    predictions = pd.concat([f.test for f in folds], ignore_index=True)
    metrics: dict[str, float] = {}
    for fold in folds:
        k = fold.window.index
        metrics.update(scored_metrics(fold.test, f"fold{k}", target))
        metrics.update({f"fold{k}_train_seconds": fold.seconds, f"fold{k}_epochs": float(len(fold.history))})
        metrics.update({f"fold{k}_{name}": value for name, value in fold.learnt.items()})
    metrics.update(scored_metrics(folds[-1].test, "holdout", target))
    metrics.update(scored_metrics(predictions, "cv", target))
    pooled = evaluation.compare(  # informational: the gate tests the newest fold only
        evaluation.loss(predictions[MODEL], predictions["actual"], params.gate_loss),
        evaluation.loss(predictions[target.baseline], predictions["actual"], params.gate_loss),
        predictions["event_timestamp"],
        alpha=params.alpha,
        horizon=target.contract.horizon_periods,
    )
    metrics.update(pooled.as_dict(f"cv_vs_{target.baseline}_"))
    return WalkForward(folds, predictions, metrics)


def _seed_dependent(key: str) -> bool:
    """A metric of the LSTM's forecasts or of its training (the baselines do not depend on the seed)."""
    return (f"_{MODEL}_" in key or key.endswith(("_ratio", "_epochs"))) and not key.endswith("_seconds")


def _gate_comparison(newest: pd.DataFrame, params: TrainParams, target: Target) -> evaluation.Comparison:
    actual = newest["actual"]
    return evaluation.compare(
        evaluation.loss(newest[MODEL], actual, params.gate_loss),
        evaluation.loss(newest[target.baseline], actual, params.gate_loss),
        newest["event_timestamp"],
        alpha=params.alpha,
        horizon=target.contract.horizon_periods,
    )


def seed_spread(
    frame: pd.DataFrame, params: TrainParams, registered: WalkForward, target: Target = RETURNS
) -> SeedSpread:
    """Walk forward with every further seed of ``params.seed_list`` and summarise all of them.

    Metrics: ``<metric>_seed_mean`` and ``<metric>_seed_std`` (ddof 1; NaN for one seed) of every
    seed-dependent metric; for the gate's comparison with the baseline on each seed's newest fold,
    ``gate_seed_loss_ratio_*`` (the LSTM's mean loss / the baseline's), ``gate_seed_dm_pvalue_*`` and
    ``gate_seed_pass_share`` (the share of seeds on which the LSTM beats the baseline).
    """
    runs = {params.seed: registered}
    for seed in params.seed_list[1:]:
        runs[seed] = walk_forward(frame, replace(params, seed=seed), target)
    keys = [k for k in registered.metrics if _seed_dependent(k)]
    per_seed = {seed: {k: run.metrics[k] for k in keys} for seed, run in runs.items()}
    comparisons = {seed: _gate_comparison(run.newest.test, params, target) for seed, run in runs.items()}
    gate = {
        "baseline": target.baseline,
        "loss": params.gate_loss,
        "seeds": list(runs),
        "loss_ratio": [c.mean_loss_a / c.mean_loss_b for c in comparisons.values()],
        "dm_pvalue": [c.dm_pvalue for c in comparisons.values()],
        "t_pvalue": [c.t_pvalue for c in comparisons.values()],
        "beats_baseline": [c.a_better for c in comparisons.values()],
    }
    for index, seed in enumerate(runs):
        per_seed[seed].update({f"gate_seed_{k}": gate[k][index] for k in ("loss_ratio", "dm_pvalue")})
    metrics: dict[str, float] = {}
    for key in [*keys, "gate_seed_loss_ratio", "gate_seed_dm_pvalue"]:
        values = np.array([per_seed[seed][key] for seed in runs], np.float64)
        metrics[key + SEED_MEAN] = float(np.mean(values))
        metrics[key + SEED_STD] = float(np.std(values, ddof=1)) if len(values) > 1 else math.nan
    metrics["gate_seed_pass_share"] = float(np.mean(gate["beats_baseline"]))
    return SeedSpread(tuple(runs), metrics, per_seed, gate)


def _log_datasets(frame: pd.DataFrame, holdout: pd.DataFrame, ref: TrainingSetRef, target: Target) -> None:
    source = DeltaDatasetSource(path=ref.path, delta_table_version=ref.delta_version)
    label = target.contract.label
    training = mlflow.data.from_pandas(frame, source=source, targets=label, name=f"training_set_{ref.training_set_id}")
    evaluated = mlflow.data.from_pandas(
        holdout.drop(columns="fold"),
        source=source,
        targets=label,
        predictions=MODEL,
        name=f"holdout_{ref.training_set_id}",
    )
    mlflow.log_input(training, context="training")
    mlflow.log_input(evaluated, context="evaluation")


def _log_model(model: LSTMForecaster, example_x: np.ndarray, params: TrainParams, target: Target) -> str:
    contract = target.contract
    # torch.export assumes equal-sized dims are the same dim: keep the example's batch
    # size unlike sequence_length and the feature count so the batch stays dynamic
    batch = next(n for n in range(5, 50) if n not in (params.sequence_length, len(contract.inputs)))
    example = example_x[:batch]
    with warnings.catch_warnings():  # torch.export notes nn.LSTM's flat weights; harmless
        warnings.filterwarnings("ignore", message="The tensor attributes self.lstm._flat_weights")
        info = mlflow.pytorch.log_model(
            model,
            name="model",
            signature=infer_signature(example, model.predict(example)),
            input_example=example,
            registered_model_name=contract.name,
            metadata={
                "sequence_length": params.sequence_length,
                "features": list(contract.inputs),
                "label": contract.label,
                "interval": contract.interval,
            },
            pip_requirements=pip_requirements(),
        )
    return str(info.registered_model_version)


def _log_epochs(result: WalkForward) -> None:
    for fold in result.folds:
        for epoch, losses in enumerate(fold.history):
            mlflow.log_metrics({f"fold{fold.window.index}_{k}": v for k, v in losses.items()}, step=epoch)


def _log_seed_spread(spread: SeedSpread) -> None:
    mlflow.log_metrics(spread.metrics)
    headline = [k for k in spread.per_seed[spread.seeds[0]] if k.startswith(("holdout_", "cv_", "gate_seed_"))]
    mlflow.log_dict({"seeds": list(spread.seeds), "per_seed": spread.per_seed, "gate": spread.gate}, "seeds/seeds.json")
    mlflow.log_text(spread.table(headline), "seeds/seeds.md")


def _backtest(newest: pd.DataFrame, target: Target, params: backtest.BacktestParams) -> backtest.Backtest:
    """The registered version's trading rules, and persistence's (the last period's sign), on its holdout."""
    bt = backtest.run(newest, {MODEL: MODEL, "persistence": "naive_direction"}, target.contract, params)
    mlflow.log_metrics(bt.metrics())
    mlflow.log_figure(plots.backtest_equity(bt.equity(), params), "plots/backtest_equity.png")
    mlflow.log_text(bt.equity().to_csv(index_label="period"), "backtest/equity.csv")
    return bt


def _check(params: TrainParams, target: Target) -> None:
    if params.gate_loss not in target.losses:
        raise SettingsError(
            f"gate_loss {params.gate_loss!r} does not suit {target.contract.name}: one of {', '.join(target.losses)}"
        )
    if params.seeds < 1:
        raise SettingsError(f"seeds must be at least 1, got {params.seeds}")


def train_and_register(
    settings: Settings | None = None,
    params: TrainParams | None = None,
    explain_params: explain.ExplainParams | None = None,
    *,
    target: Target = RETURNS,
    backtest_params: backtest.BacktestParams | None = None,
) -> TrainResult:
    """Build and store the training set, evaluate walk-forward over the seeds, log, backtest and register,
    gate the version. ``params`` default to :class:`TrainParams` with the target's first gate loss."""
    settings = settings or get_settings()
    contract = target.contract
    params = params or TrainParams(gate_loss=target.losses[0])
    explain_params = explain_params or explain.ExplainParams()
    backtest_params = backtest_params or backtest.BacktestParams()
    params = replace(
        params,
        seed=settings.seed if params.seed is None else params.seed,
        sequence_length=params.sequence_length or settings.sequence_length,
    )
    _check(params, target)
    lineage = registry.lineage(settings)

    frame = training_set.build(settings, contract)
    ref = training_set.save(settings, frame)
    made = registry.version_trained_on(settings, ref.training_set_id, params.to_json(), contract.name)
    if made is not None:  # training is deterministic: the same inputs would register a bit-identical copy
        log.info(
            "%s v%s was trained on training set %s with these parameters: reused, nothing trained",
            contract.name,
            made.version,
            ref.training_set_id,
        )
        return replace(finish(settings, made), reused=True)
    result = walk_forward(frame, params, target)
    spread = seed_spread(frame, params, result, target)
    newest = result.newest
    gate = promotion.decide(settings, newest.test, alpha=params.alpha, loss_kind=params.gate_loss, target=target)
    records = {
        **lineage,
        registry.TRAIN_PARAMS_TAG: params.to_json(),
        "seed": str(params.seed),
        "seeds": ",".join(map(str, spread.seeds)),
        "training_set_id": ref.training_set_id,
        "training_set_path": ref.path,
        "training_set_delta_version": str(ref.delta_version),
        "gate": "passed" if gate.promoted else "failed",
        "gate_reason": gate.reason,
    }
    gate_report = {**gate.report(), "seeds": spread.gate}

    mlflow.set_experiment(experiment_id=registry.experiment(settings, registry.TRAINING_EXPERIMENT))
    run_name = contract.name.removeprefix("sentinance-").removesuffix("-forecaster")
    with mlflow.start_run(run_name=f"{run_name}-seq{params.sequence_length}-{ref.training_set_id[:8]}") as run:
        window = newest.window
        mlflow.log_params(
            {
                **asdict(params),
                **{f"explain_{k}": v for k, v in asdict(explain_params).items()},
                **({f"backtest_{k}": v for k, v in asdict(backtest_params).items()} if target.backtest else {}),
            }
        )
        mlflow.log_params(
            {
                "features": ",".join(contract.inputs),
                "label": contract.label,
                "feature_service": contract.feature_service,
                "train_start": window.train_start.isoformat(),
                "train_end": window.validation_end.isoformat(),  # the last period the registered model was fitted on
                "holdout_start": window.test_start.isoformat(),
                "holdout_end": window.test_end.isoformat(),
                **{f"fold{f.window.index}_test_start": f.window.test_start.isoformat() for f in result.folds},
                "gate_rule": f"beats {target.baseline} and champion: lower mean {params.gate_loss} loss, "
                f"DM (HLN, h={contract.horizon_periods}) and paired t p < {params.alpha}",
            }
        )
        mlflow.set_tags(records)
        _log_epochs(result)
        mlflow.log_metrics({**result.metrics, **gate.metrics()})
        _log_seed_spread(spread)
        mlflow.log_dict(gate_report, "gate.json")
        mlflow.log_figure(plots.error_by_fold(result.metrics, params.n_folds, target), "plots/error_by_fold.png")
        instrument = newest.test["instrument_id"].iloc[0]
        mlflow.log_figure(plots.forecast_vs_actual(newest.test, instrument, target), "plots/forecast_vs_actual.png")
        bt = _backtest(newest.test, target, backtest_params) if target.backtest else None
        _log_datasets(frame, newest.test, ref, target)
        test_x = to_sequences(newest.test, params.sequence_length, contract.inputs)
        recent = newest.test.tail(explain_params.lime_instances)  # the newest period's rows come last
        labels = [f"{r.instrument_id} at {r.event_timestamp:%Y-%m-%d %H:%M}" for r in recent.itertuples()]
        explain.log_explanations(
            newest.model,
            newest.train_x,
            test_x,
            test_x[-len(recent) :],
            labels,
            explain_params,
            params.seed,
            unit=target.unit,
        )
        version = _log_model(newest.model, newest.train_x, params, target)

    if bt is not None:  # keyed by the version: a rerun that finishes it writes the same rows
        rows = bt.rows().assign(
            model_name=contract.name,
            model_version=version,
            run_id=run.info.run_id,
            backtested_at=pd.Timestamp.now("UTC"),
        )
        lake.upsert(settings, BACKTESTS, rows[list(BACKTESTS.schema.names)])
    metrics = result.metrics
    log.info(
        "trained %s v%s: LSTM/%s %s %.4f (holdout), %.4f (all folds), %.4f ± %.4f over %d seeds",
        contract.name,
        version,
        target.baseline,
        target.headline,
        metrics[f"holdout_{target.headline}"],
        metrics[f"cv_{target.headline}"],
        spread.metrics[f"holdout_{target.headline}{SEED_MEAN}"],
        spread.metrics[f"holdout_{target.headline}{SEED_STD}"],
        len(spread.seeds),
    )
    faults.reach(settings, "registry-alias")
    return finish(settings, registry.client(settings).get_model_version(contract.name, version))


def finish(settings: Settings, version: ModelVersion) -> TrainResult:
    """Give a registered version its aliases (``challenger``, and ``champion`` if its gate passed) and its
    training run's records as tags, unless that was done (the ``registration`` tag, set last); return what
    its training found. A run killed between registering and aliasing is finished by the next one."""
    client = registry.client(settings)
    run = client.get_run(version.run_id)
    tags = run.data.tags
    if version.tags.get(registry.REGISTRATION_TAG) != registry.COMPLETE:
        for alias in [registry.CHALLENGER, *([registry.CHAMPION] if tags["gate"] == "passed" else [])]:
            client.set_registered_model_alias(version.name, alias, version.version)
        for key, value in tags.items():
            if not key.startswith("mlflow."):  # the records of train_and_register, not MLflow's own
                client.set_model_version_tag(version.name, version.version, key, value)
        client.set_model_version_tag(version.name, version.version, registry.REGISTRATION_TAG, registry.COMPLETE)
    current = client.get_registered_model(version.name).aliases
    aliases = tuple(sorted(alias for alias, number in current.items() if str(number) == str(version.version)))
    metrics = run.data.metrics
    log.info(
        "registered %s v%s (%s): gate: %s",
        version.name,
        version.version,
        ", ".join(aliases) or "no alias",
        tags["gate_reason"],
    )
    gate = mlflow.artifacts.load_dict(f"{run.info.artifact_uri}/gate.json")
    return TrainResult(
        version.name,
        str(version.version),
        aliases,
        metrics,
        run.info.run_id,
        tags["training_set_id"],
        gate,
        tuple(mlflow.artifacts.load_dict(f"{run.info.artifact_uri}/seeds/seeds.json")["seeds"]),
        {k: v for k, v in metrics.items() if k.startswith("backtest_")},
    )
