"""A/B comparison of champion and challenger on the same targets.

Batch scoring writes both versions' forecasts of the same (instrument, period) to the
predictions table (the challenger as a shadow); once the periods are over, the mart's
``next_log_return`` is the actual. The challenger is better if its mean loss is lower and
both one-sided tests (Diebold–Mariano with the HLN correction, paired t) on the mean losses
per period reject at ``alpha`` (:func:`sentinance.ml.evaluation.compare`). Fewer than
``min_periods`` paired periods (of the contract's interval) is reported as insufficient and
not tested. Every outcome is
logged to the MLflow experiment ``sentinance-monitoring`` and tagged on the challenger.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass

import mlflow
import pandas as pd

from sentinance import lake
from sentinance.catalog import FORECASTER
from sentinance.ml import evaluation, feature_store, registry
from sentinance.ml.score import predictions_path
from sentinance.settings import Settings, get_settings

log = logging.getLogger(__name__)

MIN_PERIODS = 30
COMPARED, INSUFFICIENT, SKIPPED = "compared", "insufficient_data", "skipped"


@dataclass(frozen=True)
class ABResult:
    status: str  # compared | insufficient_data | skipped
    reason: str
    champion_version: str | None
    challenger_version: str | None
    pairs: int  # (instrument, period) rows both versions forecast and whose actual is known
    periods: int  # the tests' sample size
    min_periods: int
    comparison: dict | None  # challenger (a) against champion (b), see evaluation.Comparison
    challenger_better: bool
    run_id: str


def paired_forecasts(settings: Settings, champion: str, challenger: str) -> pd.DataFrame:
    """Rows with both versions' forecasts and the actual: instrument_id, feature_time, champion, challenger, actual."""
    path = predictions_path(settings)
    if not lake.exists(path):
        return pd.DataFrame(columns=["instrument_id", "feature_time", "champion", "challenger", "actual"])
    predictions = lake.read(path, columns=["instrument_id", "feature_time", "predicted_log_return", "model_version"])
    predictions = predictions[predictions["model_version"].isin([champion, challenger])]
    wide = (
        predictions.pivot_table(
            index=["instrument_id", "feature_time"],
            columns="model_version",
            values="predicted_log_return",
            aggfunc="last",
        )
        .reindex(columns=[champion, challenger])
        .dropna()
        .set_axis(["champion", "challenger"], axis="columns")
        .reset_index()
    )
    if wide.empty:
        return wide.assign(actual=pd.Series(dtype="float64"))
    actuals = feature_store.query(
        settings,
        f"SELECT instrument_id, event_timestamp AS feature_time, next_log_return AS actual "
        f"FROM {FORECASTER.mart} WHERE next_log_return IS NOT NULL AND event_timestamp >= %s",
        [wide["feature_time"].min().to_pydatetime()],
    )
    actuals = actuals.astype({"actual": "float64"}).assign(
        feature_time=lambda f: pd.to_datetime(f["feature_time"], utc=True)
    )
    return wide.merge(actuals, on=["instrument_id", "feature_time"], how="inner")


def compare_champion_challenger(
    settings: Settings | None = None,
    *,
    alpha: float = 0.05,
    min_periods: int = MIN_PERIODS,
    loss_kind: str = "squared",
) -> ABResult:
    """Test whether the challenger beats the champion on the periods both forecast."""
    settings = settings or get_settings()
    champion = registry.alias_version(settings, registry.CHAMPION)
    challenger = registry.alias_version(settings, registry.CHALLENGER)
    versions = (champion and str(champion.version), challenger and str(challenger.version))
    pairs = pd.DataFrame()
    comparison = None
    if champion is None or challenger is None or versions[0] == versions[1]:
        status, reason = SKIPPED, "needs a champion and a different challenger"
    else:
        pairs = paired_forecasts(settings, *versions)
        periods = pairs["feature_time"].nunique()
        if periods < min_periods:
            status, reason = INSUFFICIENT, f"{periods} paired periods with actuals < minimum {min_periods}"
        else:
            comparison = evaluation.compare(
                evaluation.loss(pairs["challenger"], pairs["actual"], loss_kind),
                evaluation.loss(pairs["champion"], pairs["actual"], loss_kind),
                pairs["feature_time"],
                alpha=alpha,
            )
            status = COMPARED
            reason = (
                f"challenger {'better' if comparison.a_better else 'not better'} "
                f"(DM p={comparison.dm_pvalue:.3g}, t p={comparison.t_pvalue:.3g}, {comparison.periods} periods)"
            )
    challenger_better = bool(comparison and comparison.a_better)
    periods = int(pairs["feature_time"].nunique()) if len(pairs) else 0

    mlflow.set_experiment(experiment_id=registry.experiment(settings, registry.MONITORING_EXPERIMENT))
    with mlflow.start_run(run_name=f"ab-v{versions[0]}-vs-v{versions[1]}") as run:
        mlflow.log_params(
            {
                "champion_version": versions[0],
                "challenger_version": versions[1],
                "alpha": alpha,
                "min_periods": min_periods,
                "loss": loss_kind,
            }
        )
        mlflow.log_metrics(
            {"pairs": float(len(pairs)), "periods": float(periods), **(comparison.as_dict("ab_") if comparison else {})}
        )
        mlflow.set_tags({"status": status, "challenger_better": str(challenger_better).lower()})
        result = ABResult(
            status,
            reason,
            *versions,
            len(pairs),
            periods,
            min_periods,
            comparison.as_dict() if comparison else None,
            challenger_better,
            run.info.run_id,
        )
        mlflow.log_dict(asdict(result), "ab_testing.json")
    if challenger is not None and status != SKIPPED:
        client = registry.client(settings)
        client.set_model_version_tag(FORECASTER.name, versions[1], "ab_testing", f"{status}: {reason}")
    log.info("A/B v%s (champion) vs v%s (challenger): %s, %s", *versions, status, reason)
    return result
