"""Great Expectations plumbing shared by the landing contracts (candles, trades).

A :class:`Contract` names a suite, its expectations, a coercion of raw records and the columns
that identify a quarantined row. Each contract gets its own pandas data asset, validation
definition and checkpoint in one file-backed GX project under ``settings.gx_dir`` (built once
per process, definitions refreshed from code); every run is stored and rendered into the
project's Data Docs. Rows are tagged with a ``_row`` index column so that, with result_format
COMPLETE, every failing row is routed to quarantine together with the names of the expectations
it failed. Row-level checks GX has no expectation for (e.g. per-series time order) are computed
into ``_check_<name>`` columns (True / False / None when not applicable) and asserted by GX.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cache

import great_expectations as gx
import great_expectations.expectations as gxe
import numpy as np
import pandas as pd
import pyarrow as pa
from great_expectations.data_context.types.base import ProgressBarsConfig

from sentinance.catalog import LINEAGE_FIELDS
from sentinance.settings import Settings

log = logging.getLogger(__name__)

ROW = "_row"
CHECK = "_check_"
LINEAGE_COLUMNS = [f.name for f in LINEAGE_FIELDS]


@dataclass(frozen=True, eq=False)  # hashed by identity: one checkpoint per contract object
class Contract:
    """A landing contract: the suite and how to prepare a raw batch for it."""

    suite: str  # e.g. bronze_candles
    asset: str  # the GX data asset, e.g. candles
    expectations: Callable[[], list[gxe.Expectation]]  # each with its short name in meta["name"]
    coerce: Callable[[pd.DataFrame], pd.DataFrame]  # typed copy; unparseable values become null
    columns: Sequence[str]  # the columns the suite reads
    identity: Sequence[str]  # columns copied to quarantine (the record's key)
    quarantine: pa.Schema
    checks: Callable[[pd.DataFrame], dict[str, pd.Series]] = lambda batch: {}  # derived row checks


@dataclass(frozen=True)
class Validation:
    valid: pd.DataFrame  # coerced rows that passed every expectation (input columns kept)
    quarantined: pd.DataFrame  # shaped like the contract's quarantine schema
    success: bool
    statistics: dict[str, int] = field(default_factory=dict)  # unexpected rows per expectation


def not_null(columns: Sequence[str]) -> list[gxe.Expectation]:
    return [gxe.ExpectColumnValuesToNotBeNull(column=c, meta={"name": f"not_null_{c}"}) for c in columns]


def check(name: str) -> gxe.Expectation:
    """The expectation on a derived ``_check_<name>`` column: every applicable row is True."""
    return gxe.ExpectColumnValuesToBeInSet(column=f"{CHECK}{name}", value_set=[True], meta={"name": name})


def text(values: pd.Series | None, index: pd.Index) -> pd.Series:
    """Strings (integral numbers without a trailing .0), None for missing."""
    if values is None:
        return pd.Series(None, index=index, dtype=object)
    if pd.api.types.infer_dtype(values, skipna=True) in ("string", "empty"):
        return values.astype(object).where(values.notna(), None)

    def one(v: object) -> str | None:
        if v is None or (isinstance(v, float) and not np.isfinite(v)) or v is pd.NA or v is pd.NaT:
            return None
        if isinstance(v, (float, np.floating)) and float(v).is_integer():
            return str(int(v))
        return str(v)

    return values.astype(object).map(one)


def timestamps(values: pd.Series | None, index: pd.Index) -> pd.Series:
    """UTC timestamps; unparseable values become NaT."""
    if values is None:
        return pd.Series(pd.NaT, index=index, dtype="datetime64[us, UTC]")
    if not isinstance(values.dtype, pd.DatetimeTZDtype):
        values = pd.to_datetime(values.astype(object), utc=True, errors="coerce", format="ISO8601")
    return values.dt.tz_convert("UTC")


def numbers(values: pd.Series | None, index: pd.Index) -> pd.Series:
    """float64; unparseable or infinite values become NaN."""
    parsed = pd.to_numeric(values, errors="coerce") if values is not None else np.nan
    return pd.Series(parsed, index=index, dtype="float64").replace([np.inf, -np.inf], np.nan)


def typed(
    df: pd.DataFrame, *, text_columns: Sequence[str], time_columns: Sequence[str], number_columns: Sequence[str]
) -> pd.DataFrame:
    """Typed copy of a raw batch (missing columns added as nulls): unparseable values become null, never errors."""
    out = df.copy()
    for column in text_columns:
        out[column] = text(out.get(column), out.index)
    for column in time_columns:
        out[column] = timestamps(out.get(column), out.index)
    for column in number_columns:
        out[column] = numbers(out.get(column), out.index)
    return out


def _name(meta: dict | None) -> str:
    return str((meta or {})["name"])


@cache
def _checkpoint(gx_dir: str, contract: Contract) -> gx.Checkpoint:
    """The contract's datasource, suite, validation definition and checkpoint in the GX project."""
    context = gx.get_context(mode="file", project_root_dir=gx_dir)
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    context.variables.save()
    batch = (
        context.data_sources.add_or_update_pandas(f"landing_{contract.asset}")
        .add_dataframe_asset(contract.asset)
        .add_batch_definition_whole_dataframe("landing_batch")
    )
    suite = context.suites.add_or_update(gx.ExpectationSuite(name=contract.suite, expectations=contract.expectations()))
    validation = context.validation_definitions.add_or_update(
        gx.ValidationDefinition(name=f"{contract.suite}_landing", data=batch, suite=suite)
    )
    return context.checkpoints.add_or_update(
        gx.Checkpoint(
            name=f"{contract.suite}_checkpoint",
            validation_definitions=[validation],
            actions=[gx.checkpoint.UpdateDataDocsAction(name="update_data_docs")],
            result_format={"result_format": "COMPLETE", "unexpected_index_column_names": [ROW]},
        )
    )


def _raw_json(raw: pd.DataFrame) -> list[str]:
    """Each row as JSON with its original (uncoerced) values."""
    records = json.loads(
        raw.to_json(orient="records", date_format="iso", date_unit="us", double_precision=15, default_handler=str)
    )
    return [json.dumps(r, sort_keys=True) for r in records]


def validate(settings: Settings, contract: Contract, df: pd.DataFrame) -> Validation:
    """Run the contract's checkpoint on a landing batch and split it into valid and quarantined rows.

    Lineage columns (source, flow_run_id, ...) pass through to ``valid`` and feed quarantine's
    lineage; ``raw_record`` holds the other columns as received.
    """
    raw = df.reset_index(drop=True)
    batch = contract.coerce(raw)
    names = [_name(e.meta) for e in contract.expectations()]
    if batch.empty:
        return Validation(batch, contract.quarantine.empty_table().to_pandas(), True, dict.fromkeys(names, 0))
    settings.gx_dir.mkdir(parents=True, exist_ok=True)
    checks = {f"{CHECK}{name}": values.astype(object) for name, values in contract.checks(batch).items()}
    frame = batch[list(contract.columns)].assign(**checks, **{ROW: np.arange(len(batch))})
    result = _checkpoint(str(settings.gx_dir), contract).run(batch_parameters={"dataframe": frame})

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
    quarantined = bad[list(contract.identity)].assign(
        failed_expectations=[",".join(n for n in names if n in failed[r]) for r in rows],
        raw_record=_raw_json(raw.iloc[rows].drop(columns=LINEAGE_COLUMNS, errors="ignore")),
        quarantined_at=pd.Timestamp.now(tz="UTC").floor("us"),
        source=bad.get("source"),
        flow_run_id=bad.get("flow_run_id"),
    )[contract.quarantine.names]
    valid = batch.drop(index=rows).reset_index(drop=True)
    if rows:
        log.warning(
            "GX %s: %d of %d rows quarantined %s",
            contract.suite,
            len(rows),
            len(batch),
            {k: v for k, v in statistics.items() if v},
        )
    return Validation(valid, quarantined, bool(result.success), statistics)
