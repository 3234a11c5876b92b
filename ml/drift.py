"""Feature drift between the serving model's training window and the latest window (KS + PSI).

Only scale-free features are compared (returns and indicators), never price levels, which
trend by nature. PSI uses 10 quantile bins of the reference; read it as
< 0.1 stable, 0.1-0.25 moderate shift, > 0.25 significant shift (flagged as drift).
Results are logged as metrics and a JSON report to the MLflow experiment
``sentinance-monitoring``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import unquote, urlparse

import mlflow
import numpy as np
import pandas as pd
from mlflow import MlflowClient
from scipy.stats import ks_2samp

from sentinance.config import Settings, get_settings
from sentinance.ml import feature_store
from sentinance.ml.model import SEQUENCE_FEATURES
from sentinance.ml.train import mlflow_experiment, serving_version

log = logging.getLogger(__name__)

EXPERIMENT = "sentinance-monitoring"
PSI_BINS = 10
PSI_DRIFT_THRESHOLD = 0.25
REPORT_FILE = "drift_report.json"


@dataclass(frozen=True)
class DriftResult:
    ks_statistic: dict[str, float]
    ks_pvalue: dict[str, float]
    psi: dict[str, float]
    max_psi: float
    drifted: bool
    report_path: str
    reference_rows: int
    current_rows: int
    run_id: str


def psi(reference: np.ndarray, current: np.ndarray, bins: int = PSI_BINS) -> float:
    """Population stability index of ``current`` against quantile bins of ``reference``."""
    edges = np.unique(np.quantile(reference, np.linspace(0, 1, bins + 1)[1:-1]))
    shares = [
        np.clip(np.bincount(np.searchsorted(edges, v, side="right"), minlength=len(edges) + 1) / len(v), 1e-6, None)
        for v in (reference, current)
    ]
    return float(np.sum((shares[1] - shares[0]) * np.log(shares[1] / shares[0])))


def _training_window(settings: Settings) -> tuple[pd.Timestamp, pd.Timestamp] | None:
    """Training window recorded on the serving model's run, if a model is registered."""
    try:
        version, _ = serving_version(settings)
    except LookupError:
        return None
    params = MlflowClient().get_run(version.run_id).data.params
    if "train_start" not in params:
        return None
    return pd.to_datetime(params["train_start"], utc=True), pd.to_datetime(params["train_end"], utc=True)


def _local_path(uri: str) -> str:
    parsed = urlparse(uri)
    return unquote(parsed.path) if parsed.scheme == "file" else uri


def check_drift(settings: Settings | None = None, *, window_days: int = 7) -> DriftResult:
    """Compare the last ``window_days`` of the mart with the reference window.

    The reference is the serving model's training window (without any overlap with the
    current window); with no model registered, every row before the current window.
    """
    settings = settings or get_settings()
    columns = ", ".join(SEQUENCE_FEATURES)
    mart = feature_store.query(settings, f"SELECT event_timestamp, {columns} FROM {feature_store.MART_TABLE}")
    if mart.empty:
        raise ValueError(f"{feature_store.MART_TABLE} is empty: nothing to monitor")
    times = pd.to_datetime(mart["event_timestamp"], utc=True)
    current_start = times.max() - timedelta(days=window_days)
    current_mask = times > current_start
    window = _training_window(settings)
    reference_mask = ~current_mask
    if window is not None:
        reference_mask &= times.between(*window)
    if not reference_mask.any():
        log.warning("the training window does not precede the current window: reference = all older rows")
        reference_mask = ~current_mask
    reference, current = mart[reference_mask], mart[current_mask]
    if reference.empty:
        raise ValueError(f"no mart rows older than the last {window_days} days to compare with")

    ks_statistic, ks_pvalue, psis = {}, {}, {}
    for feature in SEQUENCE_FEATURES:
        ref = reference[feature].dropna().to_numpy(np.float64)
        cur = current[feature].dropna().to_numpy(np.float64)
        test = ks_2samp(ref, cur)
        ks_statistic[feature], ks_pvalue[feature] = float(test.statistic), float(test.pvalue)
        psis[feature] = psi(ref, cur)
    max_psi = max(psis.values())
    drifted = max_psi > PSI_DRIFT_THRESHOLD
    report = {
        "reference": {"start": str(times[reference_mask].min()), "end": str(times[reference_mask].max()), "rows": len(reference)},
        "current": {"start": str(times[current_mask].min()), "end": str(times[current_mask].max()), "rows": len(current)},
        "features": {f: {"ks_statistic": ks_statistic[f], "ks_pvalue": ks_pvalue[f], "psi": psis[f]} for f in SEQUENCE_FEATURES},
        "max_psi": max_psi,
        "psi_threshold": PSI_DRIFT_THRESHOLD,
        "drifted": drifted,
    }

    mlflow.set_experiment(experiment_id=mlflow_experiment(settings, EXPERIMENT))
    with mlflow.start_run(run_name=f"drift-{times.max():%Y%m%dT%H}") as run:
        mlflow.log_params({"window_days": window_days, "psi_bins": PSI_BINS, "reference_from_training_window": window is not None})
        mlflow.log_metrics(
            {
                **{f"psi_{f}": v for f, v in psis.items()},
                **{f"ks_statistic_{f}": v for f, v in ks_statistic.items()},
                **{f"ks_pvalue_{f}": v for f, v in ks_pvalue.items()},
                "max_psi": max_psi,
                "drifted": float(drifted),
            }
        )
        mlflow.set_tag("drifted", str(drifted).lower())
        mlflow.log_dict(report, REPORT_FILE)
        report_path = _local_path(f"{run.info.artifact_uri}/{REPORT_FILE}")
    log.log(logging.WARNING if drifted else logging.INFO, "drift check: max PSI %.3f (drifted=%s)", max_psi, drifted)
    return DriftResult(ks_statistic, ks_pvalue, psis, max_psi, drifted, report_path, len(reference), len(current), run.info.run_id)
