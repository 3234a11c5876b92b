"""Landing into bronze: dedupe, lineage, GX checkpoint, idempotent Delta merge, quarantine, gap report.

Bronze keeps one row per candle key (exchange, symbol, interval, open_time) in ``bronze/candles``
and one row per trade key (exchange, symbol, trade_id) in ``bronze/trades``. A landing:

1. hashes each record's market fields (``payload_hash``, sha256 of canonical JSON) and drops
   exact duplicates (same key and payload, e.g. overlapping pages), counting them;
2. adds lineage (source, ingested_at, flow_run_id) and runs the contract's GX checkpoint;
3. merges the failing rows into ``bronze/quarantine_<table>`` with the expectations they failed
   and the raw record, once per record (a record received again is not added again);
4. then merges the valid rows on the key, rewriting a row only when its payload hash changed (a
   replay writes nothing, a corrected record is updated in place, late and out-of-order rows
   simply merge - they are counted as ``late`` when at or before the series' watermark).
   Quarantine first, bronze second: a landing killed between the two is fetched again (bronze's
   watermark did not move), so neither table loses or duplicates a row.

``received == inserted + updated + unchanged + quarantined + duplicates_dropped`` always holds.

The gap report (:func:`report_gaps`) is derived from bronze's state, not from what a landing
wrote: every landing recomputes the missing candles of the windows its run covers, so a run
killed after its merges leaves a report the rerun completes.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa

from sentinance import catalog, checkpoints, lake
from sentinance.catalog import OPTIONAL_CANDLE_COLUMNS, SERIES_KEYS, Table
from sentinance.expectations import candles as candle_contract
from sentinance.expectations import trades as trade_contract
from sentinance.expectations.checkpoint import Contract, validate
from sentinance.settings import INTERVAL_SECONDS, Series, Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Target:
    """A bronze table, the log its failing rows go to, and the contract its landings pass."""

    table: Table
    quarantine: Table
    contract: Contract
    time: str  # event time, for watermarks and late rows
    series: list[str]  # columns of one series
    # how far an existing row's event time may lie before a new record of the same key: the merge opens
    # only the files from there on (0 when the time is part of the key)
    slack: pd.Timedelta = pd.Timedelta(0)
    optional: tuple[str, ...] = ()  # market fields only some sources send: hashed only when present

    @property
    def name(self) -> str:
        return self.table.name

    @property
    def keys(self) -> list[str]:
        return list(self.table.keys)

    @property
    def schema(self) -> pa.Schema:
        return self.table.schema

    @property
    def market(self) -> list[str]:
        """The fields hashed into ``payload_hash``: the record as the source sent it."""
        return list(self.contract.columns)


CANDLES = Target(
    catalog.CANDLES,
    catalog.QUARANTINE_CANDLES,
    candle_contract.CANDLES,
    "open_time",
    SERIES_KEYS,
    optional=tuple(OPTIONAL_CANDLE_COLUMNS),
)
TRADES = Target(
    catalog.TRADES,
    catalog.QUARANTINE_TRADES,
    trade_contract.TRADES,
    "trade_time",
    ["exchange", "symbol"],
    # a trade keeps its time; a day covers an exchange that corrects a print's timestamp
    slack=pd.Timedelta(days=1),
)


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
    late: int = 0  # valid rows at or before their series' watermark (backfilled, replayed or corrected)
    series: dict[str, dict[str, int]] = field(default_factory=dict)  # series key -> landed / quarantined

    @property
    def landed(self) -> int:
        return self.inserted + self.updated + self.unchanged


def _json_values(values: pd.Series) -> pd.Series:
    """Each value as the JSON ``json.dumps`` writes for it (timestamps as isoformat strings, NaN/NA as null)."""
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        text = pd.Series(
            np.datetime_as_string(values.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy("M8[us]"), unit="us"),
            index=values.index,
        )
        text = '"' + text.str.removesuffix(".000000") + '+00:00"'
    elif pd.api.types.is_float_dtype(values.dtype) or pd.api.types.is_integer_dtype(values.dtype):
        text = values.astype(str)  # repr of floats and ints, like json.dumps
    else:  # strings (text() made them str or None): encode each distinct value once
        codes, uniques = pd.factorize(values)
        encoded = np.array([json.dumps(v) for v in uniques] + ["null"], dtype=object)
        return pd.Series(encoded[codes], index=values.index)  # code -1 (missing) picks "null"
    return text.where(values.notna(), "null")


def payload_hashes(records: pd.DataFrame, target: Target = CANDLES) -> pd.Series:
    """sha256 of each record's market fields as canonical JSON: ``json.dumps`` of the typed values, sorted keys.

    An optional field (``Target.optional``) is left out where it is null, so the hash of a record from a
    source that does not publish it is what it was before the field existed.
    """
    typed = target.contract.coerce(records)
    fields = []
    for i, c in enumerate(sorted(target.market)):
        piece = ("{" if i == 0 else ", ") + json.dumps(c) + ": " + _json_values(typed[c])
        if c in target.optional:
            piece = piece.where(typed[c].notna(), "")
        fields.append(piece.to_numpy())
    hashes = [hashlib.sha256(("".join(row) + "}").encode()).hexdigest() for row in zip(*fields, strict=True)]
    return pd.Series(hashes, index=records.index, dtype=object)


def _per_series(frame: pd.DataFrame, target: Target) -> pd.Series:
    """Rows per series, keyed ``exchange:symbol`` (trades) or ``exchange:symbol:interval`` (candles)."""
    if frame.empty:
        return pd.Series(dtype="int64")
    columns = [frame[c] for c in target.series]
    ids = [
        ":".join(values) if all(isinstance(v, str) for v in values) else "unidentified"
        for values in zip(*columns, strict=True)
    ]
    return pd.Series(1, index=ids).groupby(level=0).sum()


def _late(valid: pd.DataFrame, marks: pd.Series, target: Target) -> int:
    if valid.empty or marks.empty:
        return 0
    mark = valid.join(marks.rename("_mark"), on=target.series)["_mark"]
    return int((valid[target.time] <= mark).sum())


def latest(settings: Settings, target: Target) -> pd.Series:
    """Latest event time per series in a bronze table (empty without a table).

    Kept beside the table for the version it describes (``checkpoints/latest-<table>.json``), so a
    run reads it instead of the table's whole history; any other version is read anew.
    """
    path = target.table.path(settings)
    version = lake.version(path)
    if version is None:
        return pd.Series(dtype="datetime64[us, UTC]")
    cached = checkpoints.recorded(settings, f"latest-{target.name}")
    if cached is not None and cached["version"] == version:
        marks = pd.DataFrame(cached["marks"], columns=[*target.series, target.time])
    else:
        marks = lake.read(path, columns=[*target.series, target.time]).groupby(target.series, as_index=False).max()
        _remember_latest(settings, target, version, marks)
    marks[target.time] = pd.to_datetime(marks[target.time], utc=True)
    return marks.set_index(target.series)[target.time]


def _remember_latest(settings: Settings, target: Target, version: int | None, marks: pd.DataFrame) -> None:
    rows = marks.assign(**{target.time: marks[target.time].astype(str)}).to_numpy().tolist()
    checkpoints.record(settings, f"latest-{target.name}", {"version": version, "marks": rows})


def _advance_latest(settings: Settings, target: Target, before: pd.Series, valid: pd.DataFrame, version: int) -> None:
    """After a merge: the marks of ``before`` raised by the rows just landed, for the new version."""
    landed = valid.groupby(target.series)[target.time].max()
    marks = pd.concat([before, landed]).groupby(level=list(range(len(target.series)))).max()
    _remember_latest(settings, target, version, marks.rename(target.time).reset_index())


def land(
    settings: Settings, target: Target, records: pd.DataFrame, *, source: str, flow_run_id: str | None
) -> LandingResult:
    """Validate a batch of raw records and merge it into ``bronze/<target>`` (quarantining failures)."""
    received = len(records)
    batch = records.reset_index(drop=True)
    batch["payload_hash"] = payload_hashes(batch, target)
    duplicated = batch["payload_hash"].duplicated()  # the hash covers the key
    if duplicated.any():
        log.info("%s: dropping %d exact duplicate records (same key and payload)", target.name, int(duplicated.sum()))
    batch = batch[~duplicated].assign(
        source=source, ingested_at=pd.Timestamp.now(tz="UTC").floor("us"), flow_run_id=flow_run_id
    )

    checked = validate(settings, target.contract, batch)
    valid = checked.valid.sort_values(target.keys, ignore_index=True)[target.schema.names]
    marks = latest(settings, target)
    late = _late(valid, marks, target)
    if len(checked.quarantined):
        lake.upsert(settings, target.quarantine, checked.quarantined, keep_existing=True)
    inserted = updated = 0
    version = lake.version(target.table.path(settings))
    if not valid.empty:
        merged = lake.upsert(
            settings,
            target.table,
            valid,
            change_column="payload_hash",
            window=(target.time, valid[target.time].min() - target.slack),
        )
        if merged.version != version and version is not None and merged.version == version + 1:
            _advance_latest(settings, target, marks, valid, merged.version)  # else: read anew when asked
        inserted, updated, version = merged.inserted, merged.updated, merged.version
    landed, quarantined = _per_series(valid, target), _per_series(checked.quarantined, target)
    result = LandingResult(
        received=received,
        inserted=inserted,
        updated=updated,
        unchanged=len(valid) - inserted - updated,
        quarantined=len(checked.quarantined),
        duplicates_dropped=int(duplicated.sum()),
        bronze_version=version,
        late=late,
        series={
            key: {"landed": int(landed.get(key, 0)), "quarantined": int(quarantined.get(key, 0))}
            for key in sorted(set(landed.index) | set(quarantined.index))
        },
    )
    log.info("landed %s %s: %s", source, target.name, result)
    return result


def land_candles(settings: Settings, records: pd.DataFrame, *, source: str, flow_run_id: str | None) -> LandingResult:
    """Validate a batch of raw candles and merge it into ``bronze/candles`` (quarantining failures)."""
    return land(settings, CANDLES, records, source=source, flow_run_id=flow_run_id)


def land_trades(settings: Settings, records: pd.DataFrame, *, source: str, flow_run_id: str | None) -> LandingResult:
    """Validate a batch of raw trades and merge it into ``bronze/trades`` (quarantining failures)."""
    return land(settings, TRADES, records, source=source, flow_run_id=flow_run_id)


def watermarks(settings: Settings) -> dict[Series, pd.Timestamp]:
    """Latest open_time per (exchange, symbol, interval) in bronze; empty without a table."""
    return {key: pd.Timestamp(ts) for key, ts in latest(settings, CANDLES).items()}


def series_windows(
    settings: Settings, series: Iterable[Series], *, end: pd.Timestamp, days: float, start: pd.Timestamp | None = None
) -> dict[Series, tuple[pd.Timestamp, pd.Timestamp]]:
    """``[start, end)`` per series: from ``start`` if given, else from its watermark + one interval, or from
    ``end - days`` when that is later or the series is new (so a run only fetches what bronze lacks)."""
    marks = watermarks(settings) if start is None else {}
    windows = {}
    for key in series:
        step = pd.Timedelta(seconds=INTERVAL_SECONDS[key[2]])
        first = start if start is not None else end - pd.Timedelta(days=days)
        if key in marks:
            first = max(first, marks[key] + step)
        windows[key] = (first, end)
    return windows


Windows = dict[Series, tuple[pd.Timestamp, pd.Timestamp]]


def _extended(settings: Settings, windows: Windows) -> Windows:
    """Each window, started earlier where a gap already reported for the series runs into it: that gap is
    checked whole again (same key), not cut in two at the window's start."""
    path = catalog.GAP_REPORT.path(settings)
    if not lake.exists(path):
        return windows
    reported = lake.read(path, columns=[*SERIES_KEYS, "gap_start", "gap_end"])
    extended = {}
    for key, (first, end) in windows.items():
        mine = reported[(reported[SERIES_KEYS] == list(key)).all(axis=1)]
        across = mine.loc[(mine["gap_start"] < first) & (mine["gap_end"] >= first), "gap_start"]
        extended[key] = (min(first, across.min()) if len(across) else first, end)
    return extended


def _landed_times(settings: Settings, since: pd.Timestamp) -> dict[Series, pd.DatetimeIndex]:
    """The open_times of every series in ``bronze/candles`` from ``since`` on (only the files that may hold
    them are read)."""
    path = catalog.CANDLES.path(settings)
    if not lake.exists(path):
        return {}
    present = lake.read(path, columns=[*SERIES_KEYS, "open_time"], filters=[("open_time", ">=", since.to_pydatetime())])
    return {key: pd.DatetimeIndex(values) for key, values in present.groupby(SERIES_KEYS)["open_time"]}


def find_gaps(settings: Settings, windows: Windows, *, flow_run_id: str | None) -> tuple[pd.DataFrame, Windows]:
    """Missing candles per series, one row per run of consecutive missing open_times, and the windows
    checked: each ``[start, end)``, from an earlier start where a reported gap runs into it."""
    checked = _extended(settings, {k: w for k, w in windows.items() if w[0] < w[1]})
    times = _landed_times(settings, min(w[0] for w in checked.values())) if checked else {}
    checked_at = pd.Timestamp.now(tz="UTC").floor("us")
    rows = []
    for key, (start, end) in sorted(checked.items()):
        step = pd.Timedelta(seconds=INTERVAL_SECONDS[key[2]])
        landed = times.get(key, pd.DatetimeIndex([], tz="UTC"))
        missing = pd.date_range(start, end, freq=step, inclusive="left").difference(landed).to_series()
        for _, gap in missing.groupby((missing.diff() != step).cumsum().to_numpy()):
            rows.append(
                {
                    "exchange": key[0],
                    "symbol": key[1],
                    "interval": key[2],
                    "gap_start": gap.iloc[0],
                    "gap_end": gap.iloc[-1],
                    "missing": len(gap),
                    "window_start": start,
                    "window_end": end,
                    "checked_at": checked_at,
                    "flow_run_id": flow_run_id,
                }
            )
    return pd.DataFrame(rows, columns=catalog.GAP_REPORT.schema.names), checked


def _within(windows: Windows) -> str:
    """A predicate on ``bronze/gap_report`` (as ``t.``) selecting the gaps that start in ``windows``."""

    def stamp(value: pd.Timestamp) -> str:
        return f"'{pd.Timestamp(value).tz_convert('UTC').isoformat()}'"

    return " OR ".join(
        f"(t.exchange = '{exchange}' AND t.symbol = '{symbol}' AND t.interval = '{interval}' "
        f"AND t.gap_start >= {stamp(start)} AND t.gap_start < {stamp(end)})"
        for (exchange, symbol, interval), (start, end) in sorted(windows.items())
    )


def report_gaps(settings: Settings, windows: Windows, *, flow_run_id: str | None) -> pd.DataFrame:
    """:func:`find_gaps`, made the content of ``bronze/gap_report`` within the windows checked: a new gap is
    added, one that grew or shrank is updated, one filled since is removed and one unchanged is left as it
    was (checking again writes nothing). Returns the gaps found."""
    gaps, checked = find_gaps(settings, windows, flow_run_id=flow_run_id)
    if checked:
        changed = ["gap_end", "missing"]
        lake.upsert(settings, catalog.GAP_REPORT, gaps, change_column=changed, delete_where=_within(checked))
    if len(gaps):
        log.warning(
            "gap report: %d missing candles in %d gaps across %d series",
            int(gaps["missing"].sum()),
            len(gaps),
            gaps.groupby(SERIES_KEYS).ngroups,
        )
    return gaps
