"""The ``ingest`` Prefect flow: candles and trades of every series, each fetched as its own task and landed
on its own, each table once.

* **Plan** - one candle series per (exchange, symbol, interval) and one trade series per (exchange,
  symbol), each with its own window from its own bronze watermark: candles from the latest
  open_time + one interval, trades after the latest trade time; or from ``end - days`` when later /
  the series is new; or from an explicit ``start`` (a backfill; landing is idempotent). ``replay``
  without ``start`` replays the windows of the latest ``live`` run (``<captures>/<run>/run.json``).
* **Fetch** - one task per series in a ThreadPoolTaskRunner (``MAX_WORKERS`` threads), tagged
  ``exchange:<name>``. ``live`` goes through ccxt (:mod:`sentinance.pipelines.sources.exchanges`):
  every series of an exchange shares its one limiter, and every response is captured under
  ``$SENTINANCE_HOME/captures/<run>/`` so that ``replay`` reproduces the run offline. Transient
  errors are retried by the task (5 s, 30 s); a ban (418, 429, a throttle or lockout body) stops
  that exchange until its ``Retry-After`` - never retried sooner, remembered across runs in the
  state dir (an exchange still banned is skipped) - while the other exchanges go on.
* **Land** - holding the state dir's single-writer lock (:mod:`sentinance.state_lock`): for the
  simulator, its labels of the fetched windows first (so bronze never holds a trade whose label is
  missing); then the candles of every series that fetched, and separately the trades: one GX
  checkpoint and one Delta merge per table (sequential: concurrent delta-rs merges into one table
  conflict). A failed trade series never holds back its candles, nor the reverse. Then the gap
  report of every candle series' whole window, recomputed from bronze whatever this run fetched (so
  a run killed after its merges is completed by the rerun, which fetches nothing).
* **Report** - a progress artifact (``ingest-progress``) and a table artifact (``ingest-report``:
  per series fetched / landed / quarantined / missing, and bans).

If any series failed, the flow raises :class:`IngestIncomplete` **after** landing the others; the
exception carries the full :class:`IngestResult` (so the run is Failed, never silently Completed).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import pandas as pd
from prefect import flow, get_run_logger, task
from prefect.artifacts import create_progress_artifact, create_table_artifact, update_progress_artifact
from prefect.cache_policies import NO_CACHE
from prefect.futures import as_completed
from prefect.runtime import flow_run
from prefect.task_runners import ThreadPoolTaskRunner

from sentinance import faults, metrics
from sentinance.catalog import instrument_id
from sentinance.errors import MissingInputError, SentinanceError, SettingsError
from sentinance.pipelines.flows.hooks import stage_hooks
from sentinance.pipelines.flows.retry import retrying
from sentinance.pipelines.landing import bronze
from sentinance.pipelines.landing.simulator_labels import land_simulator_labels
from sentinance.pipelines.sources import SOURCES, simulator
from sentinance.pipelines.sources.exchanges.candles import fetch_candles
from sentinance.pipelines.sources.exchanges.errors import ExchangeBanned
from sentinance.pipelines.sources.exchanges.limits import Ban, BanBook
from sentinance.pipelines.sources.exchanges.trades import fetch_trades
from sentinance.pipelines.sources.exchanges.venues import Venues, check_exchange, timeframe
from sentinance.settings import INTERVAL_SECONDS, Settings, configure, get_settings
from sentinance.state_lock import state_lock

log = logging.getLogger(__name__)

MAX_WORKERS = 4
Window = tuple[pd.Timestamp, pd.Timestamp]
Kind = Literal["candles", "trades"]
MICROSECOND = pd.Timedelta(microseconds=1)


class IngestIncomplete(SentinanceError):
    """Some series failed; the others were landed. ``result`` is the run's :class:`IngestResult`."""

    def __init__(self, result: IngestResult) -> None:
        self.result = result
        failed = "; ".join(f"{k}: {v}" for k, v in result.failures.items())
        super().__init__(f"{len(result.failures)} of {len(result.series)} series failed (the rest landed): {failed}")


@dataclass(frozen=True)
class SeriesSpec:
    """One series to fetch: the candles of (exchange, symbol, interval), or the trades of (exchange, symbol)."""

    kind: Kind
    exchange: str
    symbol: str
    interval: str | None  # None for trades
    window: Window

    @property
    def key(self) -> str:
        """``binance:BTC/USDT:1h`` (candles, as the landing counts them) or ``binance:BTC/USDT`` (trades)."""
        return instrument_id(self.exchange, self.symbol) + (f":{self.interval}" if self.interval else "")

    @property
    def name(self) -> str:
        return f"{self.key} {self.kind}"

    @property
    def empty(self) -> bool:
        return self.window[0] >= self.window[1]


@dataclass
class IngestResult:
    """What one ``ingest`` run did; ``series`` has one row per series (candles and trades) for the report."""

    source: str
    intervals: list[str]
    end: pd.Timestamp
    flow_run_id: str | None = None
    candles: bronze.LandingResult | None = None
    trades: bronze.LandingResult | None = None
    labels_inserted: int = 0
    gaps: list[dict[str, Any]] = field(default_factory=list)  # bronze/gap_report's rows in this run's windows
    series: dict[str, dict[str, Any]] = field(default_factory=dict)  # SeriesSpec.name -> report row
    failures: dict[str, str] = field(default_factory=dict)  # SeriesSpec.name -> error
    bans: dict[str, dict[str, str]] = field(default_factory=dict)  # exchange -> until (UTC), reason
    capture: str | None = None  # the live run's capture directory


# -- plan -------------------------------------------------------------------------------------


def resolve_series(
    settings: Settings, exchanges: Sequence[str] | None, symbols: Sequence[str] | None, source: str
) -> list[tuple[str, str]]:
    """(exchange, canonical symbol) pairs of the universe; a symbol is a base asset (``BTC``, quoted as the
    exchange quotes) or canonical (``BTC/USDT``)."""
    if source not in SOURCES:
        raise SettingsError(f"source must be one of {', '.join(SOURCES)}, got {source!r}")
    universe = settings.universe.select(exchanges=exchanges)
    pairs = []
    for exchange in universe.exchanges:
        for symbol in symbols or universe.assets:
            canonical = symbol.upper() if "/" in symbol else universe.symbol(exchange, symbol)
            base, sep, quote = canonical.partition("/")
            if not (sep and base and quote) or "/" in quote:
                raise SettingsError(f"symbol must be a base asset or BASE/QUOTE, got {symbol!r}")
            if source == "simulator" and canonical != universe.symbol(exchange, base):
                raise SettingsError(
                    f"the simulator quotes {exchange} in {universe.exchanges[exchange]}, not {canonical!r}"
                )
            pairs.append((exchange, canonical))
    return pairs


def as_utc(value: datetime | str | None, name: str) -> pd.Timestamp | None:
    if value is None:
        return None
    stamp = pd.Timestamp(value)
    if stamp.tzinfo is None:
        raise SettingsError(f"{name} must be timezone-aware (UTC), got {value!r}")
    return stamp.tz_convert("UTC")


def _step(interval: str) -> pd.Timedelta:
    if interval not in INTERVAL_SECONDS:
        raise SettingsError(f"unknown interval {interval!r}; known: {', '.join(INTERVAL_SECONDS)}")
    return pd.Timedelta(seconds=INTERVAL_SECONDS[interval])


def default_end(interval: str = "1h") -> pd.Timestamp:
    """The start of the current interval: only closed candles land."""
    return pd.Timestamp.now(tz="UTC").floor(_step(interval))


def plan(
    settings: Settings,
    pairs: Sequence[tuple[str, str]],
    *,
    intervals: Sequence[str],
    end: pd.Timestamp,
    days: float,
    start: pd.Timestamp | None,
    include_trades: bool,
    source: str,
) -> list[SeriesSpec]:
    """Windows per series (see the module docstring). Candle windows end at ``end`` floored to their
    interval; trade windows at ``end`` (the simulator: its hour). The simulator's history starts at its ORIGIN."""

    def clamp(stamp: pd.Timestamp) -> pd.Timestamp:
        return max(stamp, simulator.ORIGIN) if source == "simulator" else stamp

    specs = []
    for interval in intervals:
        step = _step(interval)
        keys = [(e, s, interval) for e, s in pairs]
        windows = bronze.series_windows(settings, keys, end=end.floor(step), days=days, start=start)
        specs += [SeriesSpec("candles", e, s, i, (clamp(first), last)) for (e, s, i), (first, last) in windows.items()]
    if include_trades:
        marks = bronze.latest(settings, bronze.TRADES) if start is None else pd.Series()
        hour = pd.Timedelta(hours=1)
        trades_end = end.floor(hour) if source == "simulator" else end.floor("s")
        for exchange, symbol in pairs:
            first = start if start is not None else (trades_end - pd.Timedelta(days=days)).round("s")
            mark = marks.get((exchange, symbol))
            if mark is not None:  # every trade up to the mark landed: continue after it
                after = pd.Timestamp(mark).floor(hour) + hour if source == "simulator" else pd.Timestamp(mark)
                first = max(first, after + (MICROSECOND if source != "simulator" else pd.Timedelta(0)))
            specs.append(SeriesSpec("trades", exchange, symbol, None, (clamp(first), trades_end)))
    return specs


def _runs(capture_root: Path) -> list[Path]:
    return sorted(p.parent for p in capture_root.glob("*/run.json"))


def write_manifest(folder: Path, specs: Sequence[SeriesSpec]) -> Path:
    """Record a live run's series windows: replay must ask for exactly the captured pages."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = [
        {"kind": s.kind, "exchange": s.exchange, "symbol": s.symbol, "interval": s.interval}
        | {"window": [t.isoformat() for t in s.window]}
        for s in specs
    ]
    path = folder / "run.json"
    path.write_text(json.dumps({"series": rows}, indent=1))
    return path


def latest_run(capture_root: Path) -> Path:
    """The latest live run's capture directory; MissingInputError if no run was recorded."""
    runs = _runs(capture_root)
    if not runs:
        raise MissingInputError(
            f"replay: no live run recorded under {capture_root}; run once with source='live', "
            "or pass start/end of a captured window"
        )
    return runs[-1]


def replayed_specs(
    run: Path, pairs: Sequence[tuple[str, str]], intervals: Sequence[str], include_trades: bool
) -> list[SeriesSpec]:
    """The selected series of a recorded live run, with their windows."""
    wanted = set(pairs)
    specs = []
    for row in json.loads((run / "run.json").read_text())["series"]:
        window = (pd.Timestamp(row["window"][0]), pd.Timestamp(row["window"][1]))
        spec = SeriesSpec(row["kind"], row["exchange"], row["symbol"], row["interval"], window)
        if (spec.exchange, spec.symbol) in wanted and (
            spec.interval in intervals if spec.kind == "candles" else include_trades
        ):
            specs.append(spec)
    log.info("replaying %d series of %s", len(specs), run)
    return specs


# -- fetch ------------------------------------------------------------------------------------


def fetch(spec: SeriesSpec, source: str, settings: Settings, venues: Venues | None) -> pd.DataFrame:
    """One series' raw records from the simulator or an exchange (live, captured; or replay)."""
    first, last = spec.window
    if source == "simulator":
        one = {
            "seed": settings.seed,
            "lags": settings.simulator_lags,
            "universe": settings.universe,
            "exchanges": [spec.exchange],
            "assets": [spec.symbol.partition("/")[0]],
        }
        if spec.kind == "trades":
            return simulator.simulate_trades(first, last, **one)
        return simulator.simulate_candles(first, last, interval=spec.interval or simulator.INTERVAL, **one)
    if venues is None:
        raise ValueError(f"source {source!r} needs exchange venues")
    venue = venues[spec.exchange]
    if spec.kind == "trades":
        return fetch_trades(venue, spec.symbol, first, last)
    return fetch_candles(venue, spec.symbol, spec.interval or "", first, last)


@task(cache_policy=NO_CACHE, **retrying())
def fetch_series(spec: SeriesSpec, source: str, settings: Settings, venues: Venues | None) -> pd.DataFrame:
    """Fetch one series: raises for that series only; retried only on transient errors (never a ban)."""
    return fetch(spec, source, settings, venues)


@task(cache_policy=NO_CACHE, **retrying())
def land_table(
    settings: Settings, target: bronze.Target, frames: list[pd.DataFrame], source: str, flow_run_id: str | None
) -> bronze.LandingResult:
    """One GX checkpoint and one Delta merge for the batches of every series (idempotent, so retry-safe)."""
    frames = [f for f in frames if len(f)]
    batch = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=target.market)
    return bronze.land(settings, target, batch, source=source, flow_run_id=flow_run_id)


@task(cache_policy=NO_CACHE, **retrying())
def gap_report(settings: Settings, windows: dict[bronze.Series, Window], flow_run_id: str | None) -> pd.DataFrame:
    """Missing candles of each series in its window, from bronze, made bronze/gap_report's (idempotent)."""
    return bronze.report_gaps(settings, windows, flow_run_id=flow_run_id)


@task(cache_policy=NO_CACHE, **retrying())
def land_labels(
    settings: Settings, start: pd.Timestamp, end: pd.Timestamp, exchanges: list[str], assets: list[str], trades: bool
) -> int:
    """The simulator's manipulation labels for the window (episodes, and wash trades with ``trades``)."""
    return land_simulator_labels(settings, start, end, exchanges=exchanges, assets=assets, trades=trades)


@task(cache_policy=NO_CACHE)
def record_metrics(settings: Settings, result: IngestResult, checked: Sequence[bronze.Series]) -> None:
    """The run in the pipeline metrics: each series' newest candle in bronze, rows landed and quarantined
    per table and instrument, and the gaps found in each checked series' window (0 when none)."""
    counts: dict[str, dict[tuple[str, str], int]] = {"landed": {}, "quarantined": {}}
    for table, landing in (("candles", result.candles), ("trades", result.trades)):
        for key, landed in (landing.series if landing else {}).items():
            instrument = ":".join(key.split(":")[:2])  # a candle series' key ends with its interval
            for outcome, values in counts.items():
                values[(table, instrument)] = values.get((table, instrument), 0) + landed.get(outcome, 0)
    gaps = dict.fromkeys(checked, (0, 0))
    for gap in result.gaps:
        key = (gap["exchange"], gap["symbol"], gap["interval"])
        runs, missing = gaps.get(key, (0, 0))
        gaps[key] = (runs + 1, missing + int(gap["missing"]))
    newest = {key: ts.timestamp() for key, ts in bronze.watermarks(settings).items()}
    metrics.record_ingest(settings, newest, counts["landed"], counts["quarantined"], gaps)


# -- report -----------------------------------------------------------------------------------


class Progress:
    """A Prefect progress artifact advanced step by step."""

    def __init__(self, steps: int, description: str) -> None:
        self.steps, self.done = max(steps, 1), 0
        self.id = create_progress_artifact(progress=0.0, key="ingest-progress", description=description)

    def advance(self, description: str) -> None:
        self.done += 1
        update_progress_artifact(self.id, progress=round(100 * self.done / self.steps, 1), description=description)


def _summary(result: IngestResult) -> str:
    candles, trades = result.candles, result.trades
    bans = "; ".join(f"{e} banned until {b['until']}" for e, b in result.bans.items())
    return (
        f"{len(result.series)} series; candles landed {candles.landed if candles else 0}, quarantined "
        f"{candles.quarantined if candles else 0}; trades landed {trades.landed if trades else 0}, quarantined "
        f"{trades.quarantined if trades else 0}; {sum(g['missing'] for g in result.gaps)} missing candles; "
        f"{len(result.failures)} failed" + (f"; {bans}" if bans else "")
    )


def _series_rows(result: IngestResult, specs: Sequence[SeriesSpec], fetched: dict[str, pd.DataFrame]) -> None:
    missing = (
        pd.DataFrame(result.gaps).groupby(["exchange", "symbol", "interval"])["missing"].sum() if result.gaps else {}
    )
    for spec in specs:
        landing = result.candles if spec.kind == "candles" else result.trades
        counts = landing.series.get(spec.key, {}) if landing else {}
        ban = result.bans.get(spec.exchange)
        if spec.name in result.failures:
            status = "failed"
        elif spec.name not in fetched and ban is not None:
            status = f"skipped: banned until {ban['until']}"
        else:
            status = "up to date" if spec.empty else "landed"
        result.series[spec.name] = {
            "kind": spec.kind,
            "exchange": spec.exchange,
            "symbol": spec.symbol,
            "interval": spec.interval or "",
            "start": spec.window[0].isoformat(),
            "end": spec.window[1].isoformat(),
            "status": status,
            "fetched": len(fetched[spec.name]) if spec.name in fetched else 0,
            "landed": counts.get("landed", 0),
            "quarantined": counts.get("quarantined", 0),
            "missing_candles": int(missing.get((spec.exchange, spec.symbol, spec.interval), 0)) if len(missing) else 0,
            "error": result.failures.get(spec.name, ""),
        }


def _ban_row(ban: Ban) -> dict[str, str]:
    return {"until": ban.until_utc, "reason": ban.reason}


def _specs(
    settings: Settings,
    pairs: list[tuple[str, str]],
    options: dict[str, Any],
    *,
    intervals: Sequence[str],
    start: pd.Timestamp | None,
    end: pd.Timestamp,
    days: float,
    source: str,
    include_trades: bool,
) -> list[SeriesSpec]:
    """The run's series windows: planned from bronze, or (replay without start) the latest live run's."""
    root = Path(options.pop("capture_root", settings.capture_dir))
    if source == "replay" and start is None and "replay_dirs" not in options:
        run = latest_run(root)
        options["replay_dirs"] = [run]
        return replayed_specs(run, pairs, intervals, include_trades)
    specs = plan(
        settings,
        pairs,
        intervals=intervals,
        end=end,
        days=days,
        start=start,
        include_trades=include_trades,
        source=source,
    )
    if source == "live":
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        options["capture_dir"] = root / f"{stamp}-{flow_run.get_id() or 'local'}"
        write_manifest(options["capture_dir"], specs)
    elif source == "replay":
        options.setdefault("replay_dirs", _runs(root)[::-1])  # a captured window: any run may hold its pages
    return specs


def _venues(source: str, settings: Settings, options: dict[str, Any]) -> Venues | None:
    if source == "simulator":
        return None
    mode = "live" if source == "live" else "replay"
    book = BanBook(settings.home / "exchanges" / "bans.json") if mode == "live" else None
    return Venues(mode, book=book, **options)


def _fetch_all(
    due: list[SeriesSpec],
    source: str,
    settings: Settings,
    venues: Venues | None,
    result: IngestResult,
    progress: Progress,
) -> dict[str, pd.DataFrame]:
    """Submit one fetch task per series; a failure is recorded in ``result`` and the others go on."""
    logger = get_run_logger()
    fetcher = fetch_series.with_options(retries=fetch_series.retries if source == "live" else 0)
    fetched: dict[str, pd.DataFrame] = {}
    futures = {
        fetcher.with_options(tags={f"exchange:{s.exchange}"}).submit(s, source, settings, venues): s for s in due
    }
    for future in as_completed(list(futures)):
        spec = futures[future]
        try:
            fetched[spec.name] = future.result()
        except Exception as exc:  # one series failing never stops the others
            result.failures[spec.name] = (
                str(exc) if isinstance(exc, SentinanceError) else f"{type(exc).__name__}: {exc}"
            )
            if isinstance(exc, ExchangeBanned):
                logger.error("%s: %s; the other exchanges go on", spec.name, exc)
            else:
                logger.error("series %s failed, the others go on: %s", spec.name, exc)
        progress.advance(f"fetched {len(fetched) + len(result.failures)} of {len(due)} series")
    return fetched


def _covered(
    specs: Sequence[SeriesSpec], result: IngestResult, *, start: pd.Timestamp | None, days: float, source: str
) -> dict[bronze.Series, Window]:
    """The window of each candle series this run answers for - whatever bronze already held of it - where
    its gaps are checked: ``[start or end - days, end)`` (the simulator's history starts at its ORIGIN), or
    the replayed window; a failed series, or one of a banned exchange, is left out (it was not fetched)."""
    replayed = source == "replay" and start is None
    covered = {}
    for spec in specs:
        if spec.kind != "candles" or spec.name in result.failures or spec.exchange in result.bans:
            continue
        first, last = spec.window
        if not replayed:
            first = start if start is not None else last - pd.Timedelta(days=days)
            first = max(first, simulator.ORIGIN) if source == "simulator" else first
        covered[(spec.exchange, spec.symbol, spec.interval or "")] = (first, last)
    return covered


# -- flow -------------------------------------------------------------------------------------


@flow(name="ingest", task_runner=ThreadPoolTaskRunner(max_workers=MAX_WORKERS), log_prints=True, **stage_hooks())
def ingest(
    exchanges: list[str] | None = None,
    symbols: list[str] | None = None,
    intervals: list[str] | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    days: float = 90,
    source: str = "simulator",
    include_trades: bool = True,
    client_options: dict[str, Any] | None = None,
) -> IngestResult:
    """Land candles (and trades) of every series into bronze; see the module docstring.

    ``exchanges``, ``symbols`` and ``intervals`` select from the universe (default: all of it);
    ``symbols`` are base assets (``BTC``, quoted per exchange) or canonical symbols (``BTC/USDT``).
    ``client_options`` go to the exchange venues: ``capture_root`` (default the state dir's captures),
    ``replay_dirs`` (replay these capture directories, layered), ``upstream`` (a ``requests`` adapter
    answering live requests: tests serve recorded responses through it). Raises :class:`IngestIncomplete`
    (carrying the result) after landing the rest if any series failed.
    """
    settings, run_id = configure(get_settings()), flow_run.get_id()
    pairs = resolve_series(settings, exchanges, symbols, source)
    intervals = list(settings.universe.select(intervals=intervals).intervals)
    if source != "simulator":
        for exchange in dict(pairs):
            check_exchange(exchange, trades=include_trades)
            for interval in intervals:
                timeframe(exchange, interval)
    end_ts = as_utc(end, "end") or default_end(min(intervals, key=INTERVAL_SECONDS.__getitem__))
    start_ts = as_utc(start, "start")
    options = dict(client_options or {})
    specs = _specs(
        settings,
        pairs,
        options,
        intervals=intervals,
        start=start_ts,
        end=end_ts,
        days=days,
        source=source,
        include_trades=include_trades,
    )
    result = IngestResult(source=source, intervals=intervals, end=end_ts, flow_run_id=run_id)
    venues = _venues(source, settings, options)
    if venues is not None and venues.mode == "live":
        result.capture = str(options["capture_dir"])
        for exchange in sorted({s.exchange for s in specs}):
            ban = venues[exchange].limiter.ban
            if ban is not None:  # banned by an earlier run: not one request until it ends
                result.bans[exchange] = _ban_row(ban)
                get_run_logger().warning("%s is banned until %s (%s): skipped", exchange, ban.until_utc, ban.reason)
    due = [s for s in specs if not s.empty and s.exchange not in result.bans]
    progress = Progress(len(due) + 3, f"ingest {source}: {len(due)} series to fetch")

    fetched = _fetch_all(due, source, settings, venues, result, progress)
    candles = {n: f for n, f in fetched.items() if n.endswith(" candles")}
    trades = {n: f for n, f in fetched.items() if n.endswith(" trades")}
    with state_lock(settings):
        if source == "simulator" and fetched:  # ahead of the candles and trades they label
            done = [s for s in due if s.name in fetched]
            result.labels_inserted = land_labels(
                settings,
                min(s.window[0] for s in done),
                end_ts.floor("h"),
                sorted({s.exchange for s in done}),
                sorted({s.symbol.partition("/")[0] for s in done}),
                include_trades,
            )
        result.candles = land_table(settings, bronze.CANDLES, list(candles.values()), source, run_id)
        faults.reach(settings, "candles-merged")
        progress.advance("landed candles")
        if include_trades:
            result.trades = land_table(settings, bronze.TRADES, list(trades.values()), source, run_id)
        faults.reach(settings, "trades-merged")
        progress.advance("landed trades")
        covered = _covered(specs, result, start=start_ts, days=days, source=source)
        result.gaps = gap_report(settings, covered, run_id).to_dict("records")
    progress.advance("labels and gap report")
    for venue in venues or []:
        if venue.limiter.ban is not None:
            result.bans[venue.name] = _ban_row(venue.limiter.ban)

    _series_rows(result, specs, fetched)
    record_metrics(settings, result, list(covered))
    create_table_artifact(
        key="ingest-report",
        table=list(result.series.values()),
        description=f"ingest {source} until {end_ts.isoformat()}: per series fetched / landed / quarantined / "
        f"missing" + "".join(f"; {e} banned until {b['until']} ({b['reason']})" for e, b in result.bans.items()),
    )
    get_run_logger().info("ingest %s: %s", source, _summary(result))
    if result.failures:
        raise IngestIncomplete(result)
    return result
