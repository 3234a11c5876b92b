"""Drift between the serving model's training window and the latest window, and the retrain decision.

* **Feature drift**: per feature, the two-sample KS statistic (and p-value) and the PSI of
  the current window against 10 quantile bins of the reference. Only scale-free features
  are compared (returns and indicators), never price levels, which trend by nature.
* **Prediction drift**: KS and PSI of the serving model's forecasts on the two windows.
* **Performance drift**: on the current window's labelled rows after the model's training
  window, is the model significantly worse than persistence (one-sided Diebold–Mariano and
  paired t at ``alpha``)? Its MAE ratio to persistence is reported beside the one it had
  on its holdout.

PSI bands: < 0.1 stable, 0.1-0.25 moderate shift (reported), > 0.25 significant shift
(drift). KS p-values are reported, not used to decide: with thousands of rows they reject
for shifts far too small to matter. Any drift (feature, prediction or performance) — or no
model at all — sets ``retrain``. The report is logged to the MLflow experiment
``sentinance-monitoring`` (JSON and Markdown); ``DriftResult.markdown`` is ready for a
Prefect artifact.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import unquote, urlparse

import mlflow
import numpy as np
import pandas as pd
from scipy.stats import ks_2samp

from sentinance.catalog import FORECASTER
from sentinance.errors import MissingInputError
from sentinance.ml import evaluation, feature_store, registry
from sentinance.ml.model import to_sequences
from sentinance.settings import Settings, get_settings

log = logging.getLogger(__name__)

PSI_BINS = 10
PSI_MODERATE, PSI_DRIFT_THRESHOLD = 0.1, 0.25
PERFORMANCE_ALPHA = 0.05
REPORT_FILE = "drift_report"


@dataclass(frozen=True)
class DriftResult:
    ks_statistic: dict[str, float]
    ks_pvalue: dict[str, float]
    psi: dict[str, float]
    max_psi: float
    drifted: bool  # feature drift
    prediction: dict | None  # ks_statistic, ks_pvalue, psi, drifted (None without a model)
    performance: dict | None  # rows, periods, maes and ratios, DM / t p-values, drifted
    retrain: bool
    reasons: tuple[str, ...]
    model_version: str | None
    report_path: str
    reference_rows: int
    current_rows: int
    run_id: str
    markdown: str

    @classmethod
    def no_new_data(cls, model_version: str | None) -> DriftResult:
        """The check of a window that has not changed since the last one: nothing to compare, no retrain."""
        reason = "no new data since the last check"
        return cls(
            {},
            {},
            {},
            0.0,
            False,
            None,
            None,
            False,
            (reason,),
            model_version,
            "",
            0,
            0,
            "",
            f"## Drift report: {reason}",
        )


def psi(reference: np.ndarray, current: np.ndarray, bins: int = PSI_BINS) -> float:
    """Population stability index of ``current`` against quantile bins of ``reference``."""
    edges = np.unique(np.quantile(reference, np.linspace(0, 1, bins + 1)[1:-1]))
    shares = [
        np.clip(np.bincount(np.searchsorted(edges, v, side="right"), minlength=len(edges) + 1) / len(v), 1e-6, None)
        for v in (reference, current)
    ]
    return float(np.sum((shares[1] - shares[0]) * np.log(shares[1] / shares[0])))


def band(value: float) -> str:
    return "significant" if value > PSI_DRIFT_THRESHOLD else "moderate" if value > PSI_MODERATE else "stable"


def _distribution_shift(reference: np.ndarray, current: np.ndarray) -> dict:
    reference, current = reference[~np.isnan(reference)], current[~np.isnan(current)]
    test = ks_2samp(reference, current)
    value = psi(reference, current)
    return {
        "ks_statistic": float(test.statistic),
        "ks_pvalue": float(test.pvalue),
        "psi": value,
        "band": band(value),
        "drifted": value > PSI_DRIFT_THRESHOLD,
    }


def _local_path(uri: str) -> str:
    parsed = urlparse(uri)
    return unquote(parsed.path) if parsed.scheme == "file" else uri


def _mart(settings: Settings, sequence_length: int | None) -> pd.DataFrame:
    columns = ["instrument_id", "event_timestamp", "close", "is_complete", "next_log_return", *FORECASTER.features]
    if sequence_length:
        columns += [c for f in FORECASTER.features for c in FORECASTER.lag_columns(f, sequence_length)]
    mart = feature_store.query(settings, f"SELECT {', '.join(columns)} FROM {FORECASTER.mart}")
    if mart.empty:
        raise MissingInputError(f"{FORECASTER.mart} is empty: nothing to monitor (run `sentinance marts` first)")
    numeric = [c for c in mart.columns if c not in ("instrument_id", "event_timestamp", "is_complete")]
    return mart.astype(dict.fromkeys(numeric, "float64")).assign(
        event_timestamp=pd.to_datetime(mart["event_timestamp"], utc=True)
    )


def _performance(current: pd.DataFrame, predicted: np.ndarray, train_end: pd.Timestamp, holdout: dict) -> dict | None:
    """The model against persistence on the current window's labelled rows it never saw."""
    unseen = (current["event_timestamp"] > train_end).to_numpy() & current["next_log_return"].notna().to_numpy()
    rows = current[unseen]
    if rows["event_timestamp"].nunique() < 3:
        return None
    actual = rows["next_log_return"].to_numpy()
    model_loss = evaluation.loss(predicted[unseen], actual)
    persistence_loss = evaluation.loss(evaluation.persistence_forecast(rows), actual)
    worse = evaluation.compare(persistence_loss, model_loss, rows["event_timestamp"], alpha=PERFORMANCE_ALPHA)
    mae = float(np.mean(np.abs(predicted[unseen] - actual)))
    persistence_mae = float(np.mean(np.abs(actual)))
    return {
        "rows": len(rows),
        "periods": worse.periods,
        "lstm_mae": mae,
        "persistence_mae": persistence_mae,
        "mae_ratio": mae / persistence_mae,
        "holdout_mae_ratio": holdout.get("holdout_lstm_mae", np.nan) / holdout.get("holdout_persistence_mae", np.nan),
        "worse_than_persistence_dm_pvalue": worse.dm_pvalue,
        "worse_than_persistence_t_pvalue": worse.t_pvalue,
        "drifted": worse.a_better,
    }


def _markdown(report: dict) -> str:
    lines = [
        f"## Drift report: retrain = **{str(report['retrain']).lower()}**",
        "",
        *(f"- {reason}" for reason in report["reasons"] or ["no drift"]),
        "",
        f"Reference {report['reference']['start']} .. {report['reference']['end']} "
        f"({report['reference']['rows']} rows); "
        f"current {report['current']['start']} .. {report['current']['end']} ({report['current']['rows']} rows). "
        f"PSI bands: < {PSI_MODERATE} stable, {PSI_MODERATE}-{PSI_DRIFT_THRESHOLD} moderate, "
        f"> {PSI_DRIFT_THRESHOLD} significant.",
        "",
        "| input | KS statistic | KS p-value | PSI | band |",
        "|---|---|---|---|---|",
    ]
    shifts = {**report["features"], **({"prediction": report["prediction"]} if report["prediction"] else {})}
    for name, shift in shifts.items():
        lines.append(
            f"| {name} | {shift['ks_statistic']:.4f} | {shift['ks_pvalue']:.3g} | {shift['psi']:.4f} "
            f"| {shift['band']} |"
        )
    performance = report["performance"]
    if performance:
        lines += [
            "",
            f"Performance on {performance['rows']} unseen labelled rows: MAE / persistence MAE "
            f"{performance['mae_ratio']:.4f} (holdout {performance['holdout_mae_ratio']:.4f}); worse than persistence: "
            f"DM p={performance['worse_than_persistence_dm_pvalue']:.3g}, "
            f"t p={performance['worse_than_persistence_t_pvalue']:.3g}.",
        ]
    return "\n".join(lines)


def check_drift(settings: Settings | None = None, *, window_days: int = 7) -> DriftResult:
    """Compare the last ``window_days`` of the mart with the serving model's training window.

    The reference excludes any overlap with the current window; with no model registered,
    it is every row before the current window (and only feature drift is measured).
    """
    settings = settings or get_settings()
    try:
        version, alias = registry.serving_version(settings)
    except MissingInputError:
        version = None
    run = registry.client(settings).get_run(version.run_id) if version else None
    model = registry.load_model(version) if version else None
    meta = model.metadata.metadata if model else {}
    mart = _mart(settings, int(meta["sequence_length"]) if model else None)
    times = mart["event_timestamp"]
    current_mask = times > times.max() - timedelta(days=window_days)
    reference_mask = ~current_mask
    if run is not None:
        train_start, train_end = (pd.Timestamp(run.data.params[k]) for k in ("train_start", "train_end"))
        reference_mask &= times.between(train_start, train_end)
        if not reference_mask.any():
            log.warning("the training window does not precede the current window: reference = all older rows")
            reference_mask = ~current_mask
    reference, current = mart[reference_mask], mart[current_mask]
    if reference.empty:
        raise MissingInputError(f"no mart rows older than the last {window_days} days to compare with")

    features = {f: _distribution_shift(reference[f].to_numpy(), current[f].to_numpy()) for f in FORECASTER.features}
    prediction = performance = None
    complete_reference = reference[reference["is_complete"].astype(bool)]
    complete_current = current[current["is_complete"].astype(bool)].reset_index(drop=True)
    if model is not None and (complete_reference.empty or complete_current.empty):
        # e.g. a lake younger than the indicators' warm-up plus the window: the model cannot score both sides
        log.info("no complete rows on one side of the comparison: prediction and performance drift not measured")
    elif model is not None:
        forecasts = [
            np.asarray(
                model.predict(to_sequences(rows, int(meta["sequence_length"]), tuple(meta["features"]))), np.float64
            )
            for rows in (complete_reference, complete_current)
        ]
        prediction = _distribution_shift(*forecasts)
        performance = _performance(complete_current, forecasts[1], train_end, run.data.metrics)

    reasons = [
        f"feature drift: {f} PSI {s['psi']:.3f} > {PSI_DRIFT_THRESHOLD}" for f, s in features.items() if s["drifted"]
    ]
    if version is None:
        reasons.append("no registered model")
    if prediction and prediction["drifted"]:
        reasons.append(f"prediction drift: PSI {prediction['psi']:.3f} > {PSI_DRIFT_THRESHOLD}")
    if performance and performance["drifted"]:
        reasons.append(
            "performance drift: significantly worse than persistence "
            f"(DM p={performance['worse_than_persistence_dm_pvalue']:.3g})"
        )
    psis = {f: s["psi"] for f, s in features.items()}
    max_psi = max(psis.values())
    report = {
        "model": None if version is None else {"version": str(version.version), "alias": alias},
        "reference": {
            "start": str(times[reference_mask].min()),
            "end": str(times[reference_mask].max()),
            "rows": len(reference),
        },
        "current": {
            "start": str(times[current_mask].min()),
            "end": str(times[current_mask].max()),
            "rows": len(current),
        },
        "features": features,
        "prediction": prediction,
        "performance": performance,
        "psi_bands": {"moderate": PSI_MODERATE, "significant": PSI_DRIFT_THRESHOLD},
        "max_psi": max_psi,
        "retrain": bool(reasons),
        "reasons": reasons,
    }
    markdown = _markdown(report)

    mlflow.set_experiment(experiment_id=registry.experiment(settings, registry.MONITORING_EXPERIMENT))
    with mlflow.start_run(run_name=f"drift-{times.max():%Y%m%dT%H}") as monitoring:
        mlflow.log_params(
            {
                "window_days": window_days,
                "psi_bins": PSI_BINS,
                "model_version": report["model"] and report["model"]["version"],
            }
        )
        mlflow.log_metrics(
            {
                **{f"psi_{f}": s["psi"] for f, s in features.items()},
                **{f"ks_statistic_{f}": s["ks_statistic"] for f, s in features.items()},
                **{f"ks_pvalue_{f}": s["ks_pvalue"] for f, s in features.items()},
                **(
                    {f"prediction_{k}": prediction[k] for k in ("psi", "ks_statistic", "ks_pvalue")}
                    if prediction
                    else {}
                ),
                **({f"performance_{k}": float(v) for k, v in performance.items()} if performance else {}),
                "max_psi": max_psi,
                "retrain": float(bool(reasons)),
            }
        )
        mlflow.set_tags(
            {
                "retrain": str(bool(reasons)).lower(),
                "drifted": str(any(s["drifted"] for s in features.values())).lower(),
            }
        )
        mlflow.log_dict(report, f"{REPORT_FILE}.json")
        mlflow.log_text(markdown, f"{REPORT_FILE}.md")
        report_path = _local_path(f"{monitoring.info.artifact_uri}/{REPORT_FILE}.json")
    log.log(
        logging.WARNING if reasons else logging.INFO,
        "drift check: max PSI %.3f; retrain=%s %s",
        max_psi,
        bool(reasons),
        reasons,
    )
    return DriftResult(
        {f: s["ks_statistic"] for f, s in features.items()},
        {f: s["ks_pvalue"] for f, s in features.items()},
        psis,
        max_psi,
        any(s["drifted"] for s in features.values()),
        prediction,
        performance,
        bool(reasons),
        tuple(reasons),
        None if version is None else str(version.version),
        report_path,
        len(reference),
        len(current),
        monitoring.info.run_id,
        markdown,
    )
