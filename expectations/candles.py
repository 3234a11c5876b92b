"""Great Expectations checkpoint for a landing batch of raw candles.

The suite ``bronze_candles`` lives in a file-backed GX project under ``settings.gx_dir``
(built once per process, definitions refreshed from this module); each run is stored and
rendered into the project's Data Docs. Rows are tagged with a ``_row`` index column so that,
with result_format COMPLETE, every failing row is routed to quarantine together with the
names of the expectations it failed.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from dataclasses import dataclass, field
from functools import lru_cache

import great_expectations as gx
import great_expectations.expectations as gxe
import numpy as np
import pandas as pd
from great_expectations.data_context.types.base import ProgressBarsConfig

from sentinance.config import Settings
from sentinance.schemas import CANDLE_KEYS, LINEAGE_FIELDS, QUARANTINE_CANDLES

log = logging.getLogger(__name__)

SUITE = "bronze_candles"
ROW = "_row"
TEXT_COLUMNS = ["exchange", "symbol", "interval"]
PRICE_COLUMNS = ["open", "high", "low", "close"]
NUMERIC_COLUMNS = [*PRICE_COLUMNS, "volume"]
MARKET_COLUMNS = [*CANDLE_KEYS, *NUMERIC_COLUMNS, "trade_count"]
LINEAGE_COLUMNS = [f.name for f in LINEAGE_FIELDS]


def _expectations() -> list[gxe.Expectation]:
    """The suite; each expectation carries its short name in ``meta["name"]``."""
    not_null = [
        gxe.ExpectColumnValuesToNotBeNull(column=c, meta={"name": f"not_null_{c}"})
        for c in [*CANDLE_KEYS, *NUMERIC_COLUMNS]
    ]
    pairs = [
        gxe.ExpectColumnPairValuesAToBeGreaterThanB(
            column_A=a, column_B=b, or_equal=True, ignore_row_if="either_value_is_missing", meta={"name": name},
        )
        for a, b, name in [("high", "open", "high_gte_open"), ("high", "close", "high_gte_close"),
                           ("open", "low", "low_lte_open"), ("close", "low", "low_lte_close")]
    ]
    return [
        *not_null,
        *pairs,
        gxe.ExpectColumnValuesToBeBetween(column="volume", min_value=0, meta={"name": "volume_non_negative"}),
        gxe.ExpectCompoundColumnsToBeUnique(column_list=CANDLE_KEYS, meta={"name": "unique_candle_key"}),
    ]


def _name(meta: dict | None) -> str:
    return str((meta or {})["name"])


@lru_cache(maxsize=None)
def _checkpoint(gx_dir: str) -> gx.Checkpoint:
    """File-backed GX project with the datasource, suite, validation definition and checkpoint."""
    context = gx.get_context(mode="file", project_root_dir=gx_dir)
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    context.variables.save()
    batch = (
        context.data_sources.add_or_update_pandas("landing")
        .add_dataframe_asset("candles")
        .add_batch_definition_whole_dataframe("landing_batch")
    )
    suite = gx.ExpectationSuite(name=SUITE, expectations=_expectations())
    suite = context.suites.add_or_update(suite)
    validation = context.validation_definitions.add_or_update(
        gx.ValidationDefinition(name=f"{SUITE}_landing", data=batch, suite=suite)
    )
    return context.checkpoints.add_or_update(
        gx.Checkpoint(
            name=f"{SUITE}_checkpoint",
            validation_definitions=[validation],
            actions=[gx.checkpoint.UpdateDataDocsAction(name="update_data_docs")],
            result_format={"result_format": "COMPLETE", "unexpected_index_column_names": [ROW]},
        )
    )


@dataclass(frozen=True)
class CandleValidation:
    valid: pd.DataFrame          # coerced rows that passed every expectation (input columns kept)
    quarantined: pd.DataFrame    # shaped like schemas.QUARANTINE_CANDLES
    success: bool
    statistics: dict[str, int] = field(default_factory=dict)  # unexpected rows per expectation


def coerce_candles(df: pd.DataFrame) -> pd.DataFrame:
    """Typed copy of a raw batch: unparseable values become null (for not-null to catch), never errors.

    Missing market columns are added as nulls; non-integral or infinite numbers become null.
    """
    out = df.copy()
    for column in TEXT_COLUMNS:
        values = out[column] if column in out else pd.Series(None, index=out.index, dtype=object)
        out[column] = values.astype(object).where(values.notna(), None).map(lambda v: v if v is None else str(v))
    times = out["open_time"] if "open_time" in out else pd.Series(pd.NaT, index=out.index)
    if not isinstance(times.dtype, pd.DatetimeTZDtype):
        times = pd.to_datetime(times.astype(object), utc=True, errors="coerce", format="ISO8601")
    out["open_time"] = times.dt.tz_convert("UTC")
    for column in NUMERIC_COLUMNS:
        values = pd.to_numeric(out[column], errors="coerce") if column in out else np.nan
        out[column] = pd.Series(values, index=out.index, dtype="float64").replace([np.inf, -np.inf], np.nan)
    counts = pd.to_numeric(out["trade_count"], errors="coerce") if "trade_count" in out else np.nan
    counts = pd.Series(counts, index=out.index, dtype="float64")
    out["trade_count"] = counts.where(np.isfinite(counts) & (counts == counts.round())).astype("Int64")
    return out


def _raw_json(raw: pd.DataFrame) -> list[str]:
    """Each row as JSON with its original (uncoerced) values."""
    records = json.loads(raw.to_json(orient="records", date_format="iso", date_unit="us",
                                     double_precision=15, default_handler=str))
    return [json.dumps(r, sort_keys=True) for r in records]


def validate_candles(settings: Settings, df: pd.DataFrame) -> CandleValidation:
    """Run the ``bronze_candles`` checkpoint on a landing batch and split it into valid and quarantined rows.

    Lineage columns (source, flow_run_id, ...) pass through to ``valid`` and feed quarantine's
    lineage; ``raw_record`` holds the other columns as received.
    """
    raw = df.reset_index(drop=True)
    batch = coerce_candles(raw)
    names = [_name(e.meta) for e in _expectations()]
    if batch.empty:
        return CandleValidation(batch, QUARANTINE_CANDLES.empty_table().to_pandas(), True, dict.fromkeys(names, 0))
    settings.gx_dir.mkdir(parents=True, exist_ok=True)
    checkpoint = _checkpoint(str(settings.gx_dir))
    result = checkpoint.run(batch_parameters={"dataframe": batch.assign(**{ROW: np.arange(len(batch))})})

    failed: dict[int, list[str]] = defaultdict(list)
    statistics = dict.fromkeys(names, 0)
    for run in result.run_results.values():
        for outcome in run.results:
            if outcome.exception_info.get("raised_exception"):
                raise RuntimeError(f"GX expectation crashed: {outcome.exception_info.get('exception_message')}")
            name = _name(outcome.expectation_config.meta if outcome.expectation_config else None)
            statistics[name] = int(outcome.result.get("unexpected_count", 0))
            for hit in outcome.result.get("unexpected_index_list", []):
                failed[int(hit[ROW])].append(name)

    rows = sorted(failed)
    bad = batch.iloc[rows].reset_index(drop=True)
    quarantined = bad[["exchange", "symbol", "interval", "open_time"]].assign(
        failed_expectations=[",".join(n for n in names if n in failed[r]) for r in rows],
        raw_record=_raw_json(raw.iloc[rows].drop(columns=LINEAGE_COLUMNS, errors="ignore")),
        quarantined_at=pd.Timestamp.now(tz="UTC").floor("us"),
        source=bad["source"] if "source" in bad else None,
        flow_run_id=bad["flow_run_id"] if "flow_run_id" in bad else None,
    )
    valid = batch.drop(index=rows).reset_index(drop=True)
    if rows:
        log.warning("GX %s: %d of %d rows quarantined %s", SUITE, len(rows), len(batch),
                    {k: v for k, v in statistics.items() if v})
    return CandleValidation(valid, quarantined, bool(result.success), statistics)
