"""Landing into bronze: dedupe, lineage, GX checkpoint, quarantine, idempotent Delta merge.

Bronze keeps one row per candle key (exchange, symbol, interval, open_time). The merge only
rewrites a row when its ``payload_hash`` changed, so replaying a batch writes nothing and a
corrected candle is updated in place; rows failing the checkpoint are appended to
``bronze/quarantine_candles`` with the expectations they failed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from dataclasses import dataclass, replace
from datetime import datetime

import pandas as pd
import pyarrow as pa

from sentinance import lake
from sentinance.config import ASSETS, EXCHANGES, INTERVAL, Settings, canonical_symbol
from sentinance.expectations.candles import MARKET_COLUMNS, coerce_candles, validate_candles
from sentinance.pipelines.simulator import ORIGIN, simulate_candles, simulate_labels
from sentinance.schemas import BRONZE_CANDLES, CANDLE_KEYS, QUARANTINE_CANDLES, SERIES_KEYS, TS

log = logging.getLogger(__name__)

SIMULATOR_LABELS = pa.schema([
    pa.field("episode_id", pa.string(), nullable=False),
    pa.field("kind", pa.string(), nullable=False),
    pa.field("exchange", pa.string(), nullable=False),
    pa.field("symbol", pa.string(), nullable=False),
    pa.field("start_time", TS, nullable=False),   # open_time of the first affected candle
    pa.field("end_time", TS, nullable=False),     # open_time of the last affected candle
])

Series = tuple[str, str, str]


@dataclass(frozen=True)
class LandingResult:
    """Counts of one landing; received == inserted + updated + unchanged + quarantined + duplicates_dropped."""

    received: int
    inserted: int
    updated: int
    unchanged: int
    quarantined: int
    duplicates_dropped: int
    bronze_version: int | None
    labels_inserted: int = 0


def _canonical(value: object) -> object:
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    if isinstance(value, float):
        return None if math.isnan(value) else value
    return value.item() if hasattr(value, "item") else value


def payload_hashes(candles: pd.DataFrame) -> pd.Series:
    """sha256 of each record's market fields as canonical JSON (typed values, sorted keys)."""
    typed = coerce_candles(candles)[MARKET_COLUMNS].astype(object)
    canonical = (
        json.dumps(dict(zip(MARKET_COLUMNS, map(_canonical, row))), sort_keys=True)
        for row in typed.itertuples(index=False, name=None)
    )
    return pd.Series([hashlib.sha256(c.encode()).hexdigest() for c in canonical], index=candles.index, dtype=object)


def land_candles(settings: Settings, records: pd.DataFrame, *, source: str, flow_run_id: str | None) -> LandingResult:
    """Validate a batch of raw candles and merge it into ``bronze/candles`` (quarantining failures)."""
    bronze_path = settings.table_path("bronze", "candles")
    received = len(records)
    batch = records.reset_index(drop=True)
    batch["payload_hash"] = payload_hashes(batch)
    duplicated = batch["payload_hash"].duplicated()
    if duplicated.any():
        log.info("dropping %d exact duplicate records (same key and payload)", int(duplicated.sum()))
    batch = batch[~duplicated].assign(
        source=source, ingested_at=pd.Timestamp.now(tz="UTC").floor("us"), flow_run_id=flow_run_id
    )

    checked = validate_candles(settings, batch)
    if len(checked.quarantined):
        lake.append(settings.table_path("bronze", "quarantine_candles"), checked.quarantined, schema=QUARANTINE_CANDLES)

    valid = checked.valid.sort_values(CANDLE_KEYS, ignore_index=True)[BRONZE_CANDLES.names]
    inserted = updated = 0
    version = lake.version(bronze_path)
    if not valid.empty:
        merged = lake.merge(bronze_path, valid, keys=CANDLE_KEYS, schema=BRONZE_CANDLES,
                            partition_by=["exchange"], change_column="payload_hash")
        inserted, updated, version = merged.inserted, merged.updated, merged.version
    result = LandingResult(
        received=received,
        inserted=inserted,
        updated=updated,
        unchanged=len(valid) - inserted - updated,
        quarantined=len(checked.quarantined),
        duplicates_dropped=int(duplicated.sum()),
        bronze_version=version,
    )
    log.info("landed %s candles: %s", source, result)
    return result


def watermarks(settings: Settings) -> dict[Series, pd.Timestamp]:
    """Latest open_time per (exchange, symbol, interval) in bronze; empty without a table."""
    path = settings.table_path("bronze", "candles")
    if not lake.exists(path):
        return {}
    latest = lake.read(path, columns=[*SERIES_KEYS, "open_time"]).groupby(SERIES_KEYS)["open_time"].max()
    return {key: pd.Timestamp(ts) for key, ts in latest.items()}


def _land_labels(settings: Settings, start: pd.Timestamp, end: pd.Timestamp) -> int:
    labels = simulate_labels(start, end, seed=settings.seed)
    merged = lake.merge(settings.table_path("bronze", "simulator_labels"), labels, keys=["episode_id"],
                        schema=SIMULATOR_LABELS, change_column="end_time")
    return merged.inserted


def ingest_simulated(settings: Settings, *, end: datetime, days: int, flow_run_id: str | None = None) -> LandingResult:
    """Land simulated candles up to ``end`` (floored to the hour): per series from its watermark + 1h,
    or from ``end - days`` when that is later or the series is new; labels go to ``bronze/simulator_labels``.
    """
    end_h = pd.Timestamp(end)
    if end_h.tzinfo is None:
        raise ValueError(f"end must be timezone-aware (UTC), got {end!r}")
    end_h = end_h.tz_convert("UTC").floor("h")
    window_start = max(end_h - pd.Timedelta(days=days), ORIGIN)
    marks = watermarks(settings)
    starts = {}
    for exchange in EXCHANGES:
        for asset in ASSETS:
            key = (exchange, canonical_symbol(exchange, asset), INTERVAL)
            starts[key] = max(marks[key] + pd.Timedelta(hours=1), window_start) if key in marks else window_start
    earliest = min(starts.values())
    if earliest >= end_h:
        log.info("bronze is up to date until %s; nothing to simulate", end_h)
        return LandingResult(0, 0, 0, 0, 0, 0, lake.version(settings.table_path("bronze", "candles")))
    candles = simulate_candles(earliest, end_h, seed=settings.seed)
    series_start = pd.Series(
        [starts[key] for key in candles[SERIES_KEYS].itertuples(index=False, name=None)], index=candles.index
    )
    candles = candles[candles["open_time"] >= series_start]
    result = land_candles(settings, candles, source="simulator", flow_run_id=flow_run_id)
    labels = _land_labels(settings, earliest, end_h)
    log.info("simulated %s..%s: %d candles, %d new labels", earliest, end_h, len(candles), labels)
    return replace(result, labels_inserted=labels)
