"""The ``ingest`` Prefect flow: fetch every (exchange, symbol) as its own task, land each bronze table once.

* **Plan** - one :class:`SeriesSpec` per (exchange, symbol): the window ``[start, end)`` from the
  series' bronze watermark (+ one interval), or ``end - days`` when later / the series is new, or
  an explicit ``start`` (a backfill; landing is idempotent). ``replay`` without ``start`` replays
  the windows of the latest ``live`` run, recorded in ``<captures>/runs/``.
* **Fetch** - ``fetch_series`` tasks run in a ThreadPoolTaskRunner (``MAX_WORKERS`` threads),
  tagged ``exchange:<name>`` for Prefect tag concurrency limits on a server; in ``live`` mode the
  series of one exchange share one connector (one rate limiter) behind a lock. ``live`` captures
  every response body (``$SENTINANCE_HOME/captures``) so that ``replay`` reproduces the run
  offline; transient exchange errors are retried (task retries on top of the client's own).
  A failing series is logged and recorded; the others go on.
* **Land** - holding the state dir's single-writer lock (:mod:`sentinance.state_lock`): for the
  simulator, its labels of the fetched windows first (so bronze never holds a trade whose label is
  missing), then the fetched batches of all series with one GX checkpoint and one Delta merge per
  table (``bronze.land_candles`` / ``land_trades``, sequential: concurrent delta-rs merges into one
  table would conflict), then the gap report of every series' whole window, recomputed from bronze
  (so a run killed after its merges is completed by the rerun, which fetches nothing).
* **Report** - a progress artifact (``ingest-progress``) advances per series and landing; a table
  artifact (``ingest-report``) lists fetched / landed / quarantined / missing per series.

If any series failed, the flow raises :class:`IngestIncomplete` **after** landing the others; the
exception carries the full :class:`IngestResult` (so the run is Failed, never silently Completed).
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
from prefect import flow, get_run_logger, task
from prefect.artifacts import create_progress_artifact, create_table_artifact, update_progress_artifact
from prefect.cache_policies import NO_CACHE
from prefect.futures import as_completed
from prefect.runtime import flow_run
from prefect.task_runners import ThreadPoolTaskRunner

from sentinance import faults
from sentinance.catalog import CANDLE_COLUMNS, TRADE_COLUMNS, instrument_id
from sentinance.errors import MissingInputError, SentinanceError, SettingsError
from sentinance.pipelines.flows.retry import retrying
from sentinance.pipelines.landing import bronze
from sentinance.pipelines.landing.simulator_labels import land_simulator_labels
from sentinance.pipelines.sources import SOURCES, simulator
from sentinance.pipelines.sources.exchanges import fetch_candles, make_client
from sentinance.pipelines.sources.exchanges.http import ExchangeClient, ExchangeError, MalformedPayload, split_symbol
from sentinance.settings import INTERVAL_SECONDS, Settings, configure, get_settings
from sentinance.state_lock import state_lock

log = logging.getLogger(__name__)

MAX_WORKERS = 4
Window = tuple[pd.Timestamp, pd.Timestamp]


class IngestIncomplete(SentinanceError):
    """Some series failed; the others were landed. ``result`` is the run's :class:`IngestResult`."""

    def __init__(self, result: IngestResult) -> None:
        self.result = result
        failed = "; ".join(f"{k}: {v}" for k, v in result.failures.items())
        super().__init__(f"{len(result.failures)} of {len(result.series)} series failed (the rest landed): {failed}")


@dataclass(frozen=True)
class SeriesSpec:
    """What to fetch for one (exchange, symbol)."""

    exchange: str
    symbol: str
    interval: str
    candles: Window
    trades: Window | None  # None: trades not requested

    @property
    def key(self) -> str:
        return instrument_id(self.exchange, self.symbol)

    @property
    def empty(self) -> bool:
        return self.candles[0] >= self.candles[1] and (self.trades is None or self.trades[0] >= self.trades[1])


@dataclass(frozen=True)
class SeriesBatch:
    spec: SeriesSpec
    candles: pd.DataFrame
    trades: pd.DataFrame | None


@dataclass
class IngestResult:
    """What one ``ingest`` run did; ``series`` has one row per (exchange, symbol) for the report."""

    source: str
    interval: str
    end: pd.Timestamp
    flow_run_id: str | None = None
    candles: bronze.LandingResult | None = None
    trades: bronze.LandingResult | None = None
    labels_inserted: int = 0
    gaps: list[dict[str, Any]] = field(default_factory=list)  # bronze/gap_report's rows in this run's windows
    series: dict[str, dict[str, Any]] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)  # instrument_id -> error


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
            base, _ = split_symbol(canonical)  # validates BASE/QUOTE
            if source == "simulator" and canonical != universe.symbol(exchange, base):
                raise SettingsError(
                    f"the simulator quotes {exchange} in {universe.exchanges[exchange]}, not {canonical!r}"
                )
            pairs.append((exchange, canonical))
    return pairs


def _utc(value: datetime | str | None, name: str) -> pd.Timestamp | None:
    if value is None:
        return None
    stamp = pd.Timestamp(value)
    if stamp.tzinfo is None:
        raise SettingsError(f"{name} must be timezone-aware (UTC), got {value!r}")
    return stamp.tz_convert("UTC")


def default_end(interval: str = "1h") -> pd.Timestamp:
    """The start of the current interval: only closed candles land."""
    return pd.Timestamp.now(tz="UTC").floor(pd.Timedelta(seconds=_seconds(interval)))


def _seconds(interval: str) -> int:
    if interval not in INTERVAL_SECONDS:
        raise SettingsError(f"unknown interval {interval!r}; known: {', '.join(INTERVAL_SECONDS)}")
    return INTERVAL_SECONDS[interval]


def plan(
    settings: Settings,
    pairs: Sequence[tuple[str, str]],
    *,
    interval: str,
    end: pd.Timestamp,
    days: float,
    start: pd.Timestamp | None,
    include_trades: bool,
    source: str,
) -> list[SeriesSpec]:
    """Windows per series (see the module docstring); the simulator's history starts at its ORIGIN."""

    def clamp(stamp: pd.Timestamp) -> pd.Timestamp:
        return max(stamp, simulator.ORIGIN) if source == "simulator" else stamp

    keys = [(e, s, interval) for e, s in pairs]
    candle_windows = bronze.series_windows(settings, keys, end=end, days=days, start=start)
    trade_marks = bronze.latest(settings, bronze.TRADES) if include_trades and start is None else pd.Series()
    step = pd.Timedelta(seconds=_seconds(interval))
    specs = []
    for (exchange, symbol, _), (first, last) in candle_windows.items():
        trades = None
        if include_trades:
            trade_start = start if start is not None else end - pd.Timedelta(days=days)
            mark = trade_marks.get((exchange, symbol))
            if mark is not None:  # the trades of the watermark's interval are complete
                trade_start = max(trade_start, pd.Timestamp(mark).floor(step) + step)
            trades = (clamp(trade_start), last)
        specs.append(SeriesSpec(exchange, symbol, interval, (clamp(first), last), trades))
    return specs


def _manifest_dir(capture_dir: Path) -> Path:
    return capture_dir / "runs"


def write_manifest(capture_dir: Path, specs: Sequence[SeriesSpec], run_id: str | None, page_limit: int | None) -> Path:
    """Record a live run's windows and page size: replay must ask for exactly the captured pages."""
    folder = _manifest_dir(capture_dir)
    folder.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    path = folder / f"{stamp}-{run_id or 'local'}.json"
    rows = [
        {
            "exchange": s.exchange,
            "symbol": s.symbol,
            "interval": s.interval,
            "candles": [t.isoformat() for t in s.candles],
            "trades": [t.isoformat() for t in s.trades] if s.trades else None,
        }
        for s in specs
    ]
    path.write_text(json.dumps({"page_limit": page_limit, "series": rows}, indent=1))
    return path


def read_manifest(
    capture_dir: Path, pairs: Sequence[tuple[str, str]], interval: str
) -> tuple[list[SeriesSpec], int | None]:
    """The selected series of the latest live run and its page size; MissingInputError if no run was recorded."""
    runs = sorted(_manifest_dir(capture_dir).glob("*.json"))
    if not runs:
        raise MissingInputError(
            f"replay: no live run recorded under {_manifest_dir(capture_dir)}; run once with "
            "source='live', or pass start/end of a captured window"
        )
    manifest = json.loads(runs[-1].read_text())
    wanted = set(pairs)
    specs = []
    for row in manifest["series"]:
        if (row["exchange"], row["symbol"]) in wanted and row["interval"] == interval:
            candles = (pd.Timestamp(row["candles"][0]), pd.Timestamp(row["candles"][1]))
            trades = (pd.Timestamp(row["trades"][0]), pd.Timestamp(row["trades"][1])) if row["trades"] else None
            specs.append(SeriesSpec(row["exchange"], row["symbol"], interval, candles, trades))
    log.info("replaying %d series of %s", len(specs), runs[-1].name)
    return specs, manifest.get("page_limit")


# -- fetch ------------------------------------------------------------------------------------


class Connectors:
    """One connector per exchange for a run, each used by one thread at a time (its rate limiter is shared)."""

    def __init__(self, mode: str, options: dict[str, Any]) -> None:
        self.mode, self.options = mode, options
        self._clients: dict[str, ExchangeClient] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    @contextmanager
    def use(self, exchange: str) -> Iterator[ExchangeClient]:
        with self._guard:
            if exchange not in self._clients:
                self._clients[exchange] = make_client(exchange, mode=self.mode, **self.options)
                self._locks[exchange] = threading.Lock()
        with self._locks[exchange]:
            yield self._clients[exchange]

    def close(self) -> None:
        for client in self._clients.values():
            client.close()


def connector_trades(frame: pd.DataFrame, exchange: str, symbol: str) -> pd.DataFrame:
    """A connector's trades (time, trade_id, price, amount) as raw bronze trades (side is not parsed yet)."""
    ids = frame["trade_id"].astype("Int64").astype(object)
    return pd.DataFrame(
        {
            "exchange": exchange,
            "symbol": symbol,
            "trade_id": [None if pd.isna(i) else str(i) for i in ids],
            "trade_time": frame["time"],
            "price": frame["price"],
            "size": frame["amount"],
            "side": None,
        },
        columns=TRADE_COLUMNS,
    )


def fetch(spec: SeriesSpec, source: str, settings: Settings, connectors: Connectors | None) -> SeriesBatch:
    """Candles (and trades) of one series from the simulator or a connector (live = capture, or replay)."""
    candles_due = spec.candles[0] < spec.candles[1]
    trades_due = spec.trades is not None and spec.trades[0] < spec.trades[1]
    candles, trades = pd.DataFrame(columns=CANDLE_COLUMNS), pd.DataFrame(columns=TRADE_COLUMNS)
    if source == "simulator":
        one = {
            "seed": settings.seed,
            "lags": settings.simulator_lags,
            "universe": settings.universe,
            "exchanges": [spec.exchange],
            "assets": [split_symbol(spec.symbol)[0]],
        }
        if candles_due:
            candles = simulator.simulate_candles(*spec.candles, **one)
        if trades_due:
            trades = simulator.simulate_trades(*spec.trades, **one)
    else:
        if connectors is None:
            raise ValueError(f"source {source!r} needs exchange connectors")
        with connectors.use(spec.exchange) as client:
            if candles_due:
                candles = fetch_candles(
                    spec.exchange, spec.symbol, *spec.candles, interval=spec.interval, client=client
                )
            if trades_due:
                trades = connector_trades(client.trades(spec.symbol, *spec.trades), spec.exchange, spec.symbol)
    return SeriesBatch(spec, candles, trades if spec.trades is not None else None)


def _transient(task: Any, task_run: Any, state: Any) -> bool:
    """Retry a series only on errors that may pass: transport failures, 429 and 5xx (not bad payloads)."""
    error = state.result(raise_on_failure=False)
    if isinstance(error, MalformedPayload) or not isinstance(error, ExchangeError):
        return False
    return error.status is None or error.status == 429 or error.status >= 500


@task(cache_policy=NO_CACHE, retries=2, retry_delay_seconds=[5, 30], retry_condition_fn=_transient)
def fetch_series(spec: SeriesSpec, source: str, settings: Settings, connectors: Connectors | None) -> SeriesBatch:
    """Fetch one (exchange, symbol): raises for that series only."""
    return fetch(spec, source, settings, connectors)


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
    return (
        f"{len(result.series)} series; candles landed {candles.landed if candles else 0}, quarantined "
        f"{candles.quarantined if candles else 0}; trades landed {trades.landed if trades else 0}, quarantined "
        f"{trades.quarantined if trades else 0}; {sum(g['missing'] for g in result.gaps)} missing candles; "
        f"{len(result.failures)} failed"
    )


def _series_rows(result: IngestResult, specs: Sequence[SeriesSpec], batches: dict[str, SeriesBatch]) -> None:
    missing = pd.DataFrame(result.gaps).groupby(["exchange", "symbol"])["missing"].sum() if result.gaps else {}
    for spec in specs:
        batch = batches.get(spec.key)
        row: dict[str, Any] = {
            "exchange": spec.exchange,
            "symbol": spec.symbol,
            "interval": spec.interval,
            "start": spec.candles[0].isoformat(),
            "end": spec.candles[1].isoformat(),
            "status": "failed" if spec.key in result.failures else "up to date" if spec.empty else "landed",
        }
        for name, landing, frame in (
            ("candles", result.candles, batch.candles if batch else None),
            ("trades", result.trades, batch.trades if batch else None),
        ):
            counts = landing.series.get(spec.key, {}) if landing else {}
            row |= {
                f"{name}_fetched": 0 if frame is None else len(frame),
                f"{name}_landed": counts.get("landed", 0),
                f"{name}_quarantined": counts.get("quarantined", 0),
            }
        row["missing_candles"] = int(missing.get((spec.exchange, spec.symbol), 0)) if len(missing) else 0
        row["error"] = result.failures.get(spec.key, "")
        result.series[spec.key] = row


def _specs(
    settings: Settings,
    pairs: list[tuple[str, str]],
    options: dict[str, Any],
    *,
    interval: str,
    start: pd.Timestamp | None,
    end: pd.Timestamp,
    days: float,
    source: str,
    include_trades: bool,
) -> list[SeriesSpec]:
    """The run's series windows: planned from bronze, or (replay without start) the latest live run's."""
    capture_dir = Path(options.setdefault("capture_dir", settings.capture_dir))
    if source == "replay" and start is None:
        specs, page_limit = read_manifest(capture_dir, pairs, interval)
        options.setdefault("page_limit", page_limit)
        return specs
    specs = plan(
        settings,
        pairs,
        interval=interval,
        end=end,
        days=days,
        start=start,
        include_trades=include_trades,
        source=source,
    )
    if source == "live":
        write_manifest(capture_dir, specs, flow_run.get_id(), options.get("page_limit"))
    return specs


def _fetch_all(
    due: list[SeriesSpec],
    source: str,
    settings: Settings,
    options: dict[str, Any],
    result: IngestResult,
    progress: Progress,
) -> list[SeriesBatch]:
    """Submit one fetch task per series; a failure is recorded in ``result`` and the others go on."""
    logger = get_run_logger()
    connectors = None if source == "simulator" else Connectors("capture" if source == "live" else "replay", options)
    fetcher = fetch_series.with_options(retries=fetch_series.retries if source == "live" else 0)
    batches = []
    try:
        futures = {
            fetcher.with_options(tags={f"exchange:{s.exchange}"}).submit(s, source, settings, connectors): s
            for s in due
        }
        for future in as_completed(list(futures)):
            spec = futures[future]
            try:
                batches.append(future.result())
            except Exception as exc:  # one series failing never stops the others
                result.failures[spec.key] = f"{type(exc).__name__}: {exc}"
                logger.error("series %s failed, the others go on: %s", spec.key, exc)
            progress.advance(f"fetched {len(batches) + len(result.failures)} of {len(due)} series")
    finally:
        if connectors is not None:
            connectors.close()
    return batches


def _covered(
    specs: Sequence[SeriesSpec],
    failures: dict[str, str],
    *,
    start: pd.Timestamp | None,
    end: pd.Timestamp,
    days: float,
    source: str,
) -> dict[bronze.Series, Window]:
    """The window of each series this run answers for - whatever bronze already held of it - where its
    gaps are checked: ``[start or end - days, end)`` (the simulator's history starts at its ORIGIN), or the
    replayed window; a failed series is left out (what it lacks was not asked for)."""
    first = start if start is not None else end - pd.Timedelta(days=days)
    if source == "simulator":
        first = max(first, simulator.ORIGIN)
    replayed = source == "replay" and start is None
    return {
        (s.exchange, s.symbol, s.interval): s.candles if replayed else (first, s.candles[1])
        for s in specs
        if s.key not in failures
    }


# -- flow -------------------------------------------------------------------------------------


@flow(name="ingest", task_runner=ThreadPoolTaskRunner(max_workers=MAX_WORKERS), log_prints=True)
def ingest(
    exchanges: list[str] | None = None,
    symbols: list[str] | None = None,
    interval: str | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    days: float = 90,
    source: str = "simulator",
    include_trades: bool = True,
    client_options: dict[str, Any] | None = None,
) -> IngestResult:
    """Land candles (and trades) of every (exchange, symbol) into bronze; see the module docstring.

    ``exchanges`` and ``symbols`` select from the universe (default: all of it); ``symbols`` are base
    assets (``BTC``, quoted per exchange) or canonical symbols (``BTC/USDT``). ``interval`` defaults
    to the universe's first.
    ``client_options`` go to the exchange connectors (e.g. ``capture_dir``, ``page_limit``; tests pass
    a recorded-response ``transport``). Raises :class:`IngestIncomplete` (carrying the result) after
    landing the rest if any series failed.
    """
    settings, run_id = configure(get_settings()), flow_run.get_id()
    pairs = resolve_series(settings, exchanges, symbols, source)
    interval = interval or settings.universe.intervals[0]
    if source == "simulator" and interval != simulator.INTERVAL:
        raise SettingsError(f"the simulator produces {simulator.INTERVAL} candles, not {interval!r}")
    end_ts = (_utc(end, "end") or default_end(interval)).floor(pd.Timedelta(seconds=_seconds(interval)))
    start_ts = _utc(start, "start")
    options = dict(client_options or {})
    specs = _specs(
        settings,
        pairs,
        options,
        interval=interval,
        start=start_ts,
        end=end_ts,
        days=days,
        source=source,
        include_trades=include_trades,
    )
    due = [s for s in specs if not s.empty]
    result = IngestResult(source=source, interval=interval, end=end_ts, flow_run_id=run_id)
    progress = Progress(len(due) + 3, f"ingest {source}: {len(due)} series to fetch")

    fetched = _fetch_all(due, source, settings, options, result, progress)
    with state_lock(settings):
        if source == "simulator" and fetched:  # ahead of the trades they label
            first = min(w[0] for b in fetched for w in (b.spec.candles, b.spec.trades) if w is not None)
            result.labels_inserted = land_labels(
                settings,
                first,
                end_ts,
                sorted({b.spec.exchange for b in fetched}),
                sorted({split_symbol(b.spec.symbol)[0] for b in fetched}),
                include_trades,
            )
        result.candles = land_table(settings, bronze.CANDLES, [b.candles for b in fetched], source, run_id)
        faults.reach(settings, "candles-merged")
        progress.advance("landed candles")
        if include_trades:
            result.trades = land_table(
                settings, bronze.TRADES, [b.trades for b in fetched if b.trades is not None], source, run_id
            )
        faults.reach(settings, "trades-merged")
        progress.advance("landed trades")
        covered = _covered(specs, result.failures, start=start_ts, end=end_ts, days=days, source=source)
        result.gaps = gap_report(settings, covered, run_id).to_dict("records")
    progress.advance("labels and gap report")

    _series_rows(result, specs, {b.spec.key: b for b in fetched})
    create_table_artifact(
        key="ingest-report",
        table=list(result.series.values()),
        description=f"ingest {source} until {end_ts.isoformat()}: per series fetched / landed / quarantined / missing",
    )
    get_run_logger().info("ingest %s: %s", source, _summary(result))
    if result.failures:
        raise IngestIncomplete(result)
    return result
