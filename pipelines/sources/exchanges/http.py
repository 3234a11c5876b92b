"""Shared plumbing of the exchange connectors: rate limit, retries, capture/replay, candle frames.

Every request of a connector goes through :meth:`ExchangeClient.get`:

* **live** - token bucket (the exchange's documented public limit), then HTTP with explicit
  timeouts, retried with exponential backoff + jitter on 429/5xx/timeouts (``Retry-After``
  honoured);
* **capture** - as live, and the final response body is written verbatim to
  ``<capture_dir>/<exchange>/<symbol-safe>/<endpoint>-<cursor>.json`` with a ``.meta.json``
  sidecar (HTTP status, fetch time, URL);
* **replay** - no network: the captured body and its fetch time are read back and go
  through the same parsing path, so a captured run can be reproduced offline.

Whether a candle is final is judged against the fetch time of the page that carried it,
so a replay sees exactly the candles the capture run saw.
"""

from __future__ import annotations

import json
import logging
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any, Literal

import httpx
import pandas as pd

from sentinance.catalog import CANDLE_COLUMNS
from sentinance.errors import SentinanceError, SettingsError
from sentinance.settings import INTERVAL_SECONDS, get_settings

log = logging.getLogger(__name__)

Mode = Literal["live", "capture", "replay"]
MODES: tuple[str, ...] = ("live", "capture", "replay")
PRICE_COLUMNS = ["open", "high", "low", "close", "volume"]
TRADE_COLUMNS = ["time", "trade_id", "price", "amount"]  # amount in base-asset units
DEFAULT_TIMEOUT = httpx.Timeout(15.0, connect=5.0)


class ExchangeError(SentinanceError):
    """A request for one series failed; names the exchange, the endpoint, the symbol and the problem."""

    def __init__(
        self, exchange: str, endpoint: str, problem: str, *, symbol: str | None = None, status: int | None = None
    ) -> None:
        self.exchange, self.endpoint, self.problem = exchange, endpoint, problem
        self.symbol, self.status = symbol, status
        where = f"{exchange} {endpoint}" + (f" [{symbol}]" if symbol else "")
        super().__init__(f"{where}: {problem}")


class MalformedPayload(ExchangeError):
    """The response is not in the API's documented shape (bad JSON, missing fields or keys)."""


class TokenBucket:
    """Client-side token bucket: ``rate`` tokens per second, bursts up to ``capacity``."""

    def __init__(
        self,
        rate: float,
        capacity: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.rate, self.capacity, self.clock, self.sleep = rate, capacity, clock, sleep
        self.tokens = capacity
        self.updated = clock()

    def acquire(self, cost: float = 1.0) -> float:
        """Take ``cost`` tokens, sleeping until they have accrued; returns the seconds slept."""
        if cost > self.capacity:
            raise ValueError(f"cost {cost} exceeds the bucket capacity {self.capacity}")
        now = self.clock()
        self.tokens = min(self.capacity, self.tokens + max(0.0, now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= cost:
            self.tokens -= cost
            return 0.0
        wait = (cost - self.tokens) / self.rate
        self.sleep(wait)
        self.tokens, self.updated = 0.0, now + wait  # the tokens accrued during the wait are spent
        return wait


@dataclass(frozen=True)
class RetryPolicy:
    """Attempts per request and exponential backoff (seconds) between them."""

    attempts: int = 5
    backoff: float = 0.5
    max_backoff: float = 30.0
    max_retry_after: float = 120.0  # a longer Retry-After (e.g. an IP ban) fails instead of waiting

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError(f"attempts must be >= 1, got {self.attempts}")

    def delay(self, attempt: int, rng: random.Random) -> float:
        """Backoff before retry number ``attempt`` (1-based): half fixed, half uniform jitter."""
        cap = min(self.max_backoff, self.backoff * 2 ** (attempt - 1))
        return cap / 2 + rng.uniform(0, cap / 2)


@dataclass(frozen=True)
class Page:
    """One parsed response body and the time it was fetched."""

    body: Any
    fetched_at: pd.Timestamp


@dataclass(frozen=True)
class _Response:
    status: int
    content: bytes
    fetched_at: float  # epoch seconds


class ExchangeClient:
    """Base of the per-exchange connectors: one instance per exchange, reused across series."""

    name: str
    base_url: str
    rate: float  # limiter refill, tokens per second
    capacity: float  # limiter burst
    max_page: int  # API maximum of rows per request
    intervals: dict[str, int | str]  # "1h" -> the API's interval code
    lacking: tuple[str, ...] = ()  # candle columns the API does not provide (left null)

    def __init__(
        self,
        *,
        http: httpx.Client | None = None,
        transport: httpx.BaseTransport | None = None,
        mode: Mode = "live",
        capture_dir: Path | None = None,
        page_limit: int | None = None,
        limiter: TokenBucket | None = None,
        retry: RetryPolicy = RetryPolicy(),
        timeout: httpx.Timeout = DEFAULT_TIMEOUT,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        if page_limit is not None and not 1 <= page_limit <= self.max_page:
            raise ValueError(f"{self.name}: page_limit must be in [1, {self.max_page}], got {page_limit}")
        self.mode = mode
        self.capture_dir = Path(capture_dir) if capture_dir else get_settings().capture_dir
        self.page_limit = page_limit or self.max_page
        self.limiter = limiter or TokenBucket(self.rate, self.capacity, clock=clock, sleep=sleep)
        self.retry, self.timeout, self.sleep, self.clock = retry, timeout, sleep, clock
        self.rng = rng or random.Random()
        self._http = http
        self._transport = transport

    # -- per-exchange hooks ------------------------------------------------------------------

    def candles(self, symbol: str, start: datetime, end: datetime, interval: str = "1h") -> pd.DataFrame:
        """Final candles of ``symbol`` with open_time in ``[start, end)``, columns CANDLE_COLUMNS."""
        raise NotImplementedError

    def trades(self, symbol: str, start: datetime, end: datetime) -> pd.DataFrame:
        """Public trades of ``symbol`` with time in ``[start, end)``, columns TRADE_COLUMNS."""
        raise NotImplementedError

    def error_message(self, body: Any) -> str | None:
        """The exchange's own error text in a response body, if the body is an error."""
        return None

    def retry_reason(self, status: int, body: bytes) -> str | None:
        """Why a 2xx response must be retried (an exchange signalling overload in the body)."""
        return None

    # -- HTTP ---------------------------------------------------------------------------------

    @property
    def http(self) -> httpx.Client:
        if self._http is None:
            self._http = httpx.Client(
                transport=self._transport,
                timeout=self.timeout,
                headers={"User-Agent": "sentinance/0.1 (+public market data)"},
            )
        return self._http

    def close(self) -> None:
        if self._http is not None:
            self._http.close()

    def get(
        self, endpoint: str, path: str, params: dict[str, Any], *, symbol: str, cursor: Any, cost: float = 1.0
    ) -> Page:
        """GET ``path`` (live, capture or replay) and parse the JSON body, raising ExchangeError."""
        file = self.capture_path(endpoint, symbol, cursor)
        if self.mode == "replay":
            response = self._replayed(file, endpoint, symbol)
        else:
            response = self._fetch(endpoint, path, params, symbol, cost)
            if self.mode == "capture":
                self._capture(file, response, path, params)
        return self._parse(response, endpoint, symbol)

    def capture_path(self, endpoint: str, symbol: str, cursor: Any) -> Path:
        return self.capture_dir / self.name / symbol.replace("/", "-") / f"{endpoint}-{cursor}.json"

    def _fetch(self, endpoint: str, path: str, params: dict[str, Any], symbol: str, cost: float) -> _Response:
        url = f"{self.base_url}{path}"
        for attempt in range(1, self.retry.attempts + 1):
            self.limiter.acquire(cost)
            try:
                response = self.http.get(url, params=params, timeout=self.timeout)
            except httpx.TransportError as exc:  # timeouts, connection resets, DNS
                problem, wait = f"{type(exc).__name__}: {exc}", self.retry.delay(attempt, self.rng)
            else:
                result = _Response(response.status_code, response.content, self.clock())
                reason = self._retryable(response)
                if reason is None:
                    return result
                problem = reason
                retry_after = _retry_after(response, self.clock())
                if retry_after is not None and retry_after > self.retry.max_retry_after:
                    raise ExchangeError(
                        self.name,
                        endpoint,
                        f"{reason}; Retry-After {retry_after:.0f}s exceeds {self.retry.max_retry_after:.0f}s",
                        symbol=symbol,
                        status=result.status,
                    )
                wait = retry_after if retry_after is not None else self.retry.delay(attempt, self.rng)
            if attempt == self.retry.attempts:
                break
            log.warning(
                "%s %s [%s]: %s; retry %d/%d in %.2fs",
                self.name,
                endpoint,
                symbol,
                problem,
                attempt,
                self.retry.attempts - 1,
                wait,
            )
            self.sleep(wait)
        raise ExchangeError(
            self.name, endpoint, f"gave up after {self.retry.attempts} attempts: {problem}", symbol=symbol
        )

    def _retryable(self, response: httpx.Response) -> str | None:
        if response.status_code == 429:
            return "HTTP 429 rate limited"
        if response.status_code >= 500:
            return f"HTTP {response.status_code}"
        if response.status_code < 300:
            return self.retry_reason(response.status_code, response.content)
        return None

    def _capture(self, file: Path, response: _Response, path: str, params: dict[str, Any]) -> None:
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_bytes(response.content)
        meta = {
            "status": response.status,
            "fetched_at": response.fetched_at,
            "url": f"{self.base_url}{path}",
            "params": params,
        }
        file.with_suffix(".meta.json").write_text(json.dumps(meta, indent=1))

    def _replayed(self, file: Path, endpoint: str, symbol: str) -> _Response:
        meta_file = file.with_suffix(".meta.json")
        if not (file.exists() and meta_file.exists()):
            raise ExchangeError(
                self.name, endpoint, f"replay: no capture at {file} (run once with mode='capture')", symbol=symbol
            )
        meta = json.loads(meta_file.read_text())
        return _Response(int(meta["status"]), file.read_bytes(), float(meta["fetched_at"]))

    def _parse(self, response: _Response, endpoint: str, symbol: str) -> Page:
        try:
            body = json.loads(response.content)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            if response.status >= 400:
                raise ExchangeError(
                    self.name,
                    endpoint,
                    f"HTTP {response.status}: {_snippet(response.content)}",
                    symbol=symbol,
                    status=response.status,
                ) from None
            raise MalformedPayload(
                self.name,
                endpoint,
                f"response is not valid JSON ({exc}): {_snippet(response.content)}",
                symbol=symbol,
                status=response.status,
            ) from None
        message = self.error_message(body)
        if response.status >= 400 or message:
            raise ExchangeError(
                self.name,
                endpoint,
                f"HTTP {response.status}: {message or _snippet(response.content)}",
                symbol=symbol,
                status=response.status,
            )
        return Page(body, pd.Timestamp(response.fetched_at, unit="s", tz="UTC"))

    # -- helpers for the connectors -----------------------------------------------------------

    def interval_code(self, interval: str) -> int | str:
        if interval not in self.intervals:
            raise SettingsError(f"{self.name} serves intervals {sorted(self.intervals)}, not {interval!r}")
        return self.intervals[interval]

    def malformed(self, endpoint: str, symbol: str, problem: str) -> MalformedPayload:
        return MalformedPayload(self.name, endpoint, problem, symbol=symbol)

    def collector(self, symbol: str, interval: str, start: datetime, end: datetime) -> CandleCollector:
        return CandleCollector(self.name, symbol, interval, *window(start, end, interval), lacking=self.lacking)


def _retry_after(response: httpx.Response, now: float) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP-date), if present."""
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        try:
            return max(0.0, parsedate_to_datetime(value).timestamp() - now)
        except (TypeError, ValueError):
            return None


def _snippet(content: bytes, limit: int = 200) -> str:
    text = content.decode("utf-8", errors="replace").strip()
    return text if len(text) <= limit else text[:limit] + "..."


# -- values and windows ---------------------------------------------------------------------


def number(value: Any) -> float:
    """A JSON number or numeric string as float; NaN for null, booleans and anything unparseable."""
    if value is None or isinstance(value, bool):
        return math.nan
    try:
        result = float(value)
    except (TypeError, ValueError):
        return math.nan
    return result if math.isfinite(result) else math.nan


def integer(value: Any) -> int | None:
    """A JSON integer (or integral numeric string) as int; None if absent or unparseable."""
    parsed = number(value)
    return int(parsed) if not math.isnan(parsed) and parsed.is_integer() else None


def timestamp(value: Any, unit: str) -> pd.Timestamp:
    """Epoch ``value`` in ``unit`` (s, ms, ns) as a UTC timestamp; ValueError if it is not a number."""
    parsed = number(value)
    if math.isnan(parsed):
        raise ValueError(f"time {value!r} is not a number")
    return pd.Timestamp(int(parsed) if parsed.is_integer() else parsed, unit=unit, tz="UTC")


def window(start: datetime, end: datetime, interval: str | None) -> tuple[pd.Timestamp, pd.Timestamp]:
    """``[start, end)`` as UTC timestamps, checked: timezone-aware, ordered, aligned to ``interval`` if given."""
    if interval is not None and interval not in INTERVAL_SECONDS:
        raise ValueError(f"unknown interval {interval!r}; known: {sorted(INTERVAL_SECONDS)}")
    stamps = []
    for name, value in (("start", start), ("end", end)):
        stamp = pd.Timestamp(value)
        if stamp.tzinfo is None:
            raise ValueError(f"{name} must be timezone-aware (UTC), got {value!r}")
        stamp = stamp.tz_convert("UTC")
        if interval is not None and stamp != stamp.floor(pd.Timedelta(seconds=INTERVAL_SECONDS[interval])):
            raise ValueError(f"{name} must be aligned to the {interval} interval, got {value!r}")
        stamps.append(stamp)
    if stamps[1] < stamps[0]:
        raise ValueError(f"end {end!r} precedes start {start!r}")
    return stamps[0], stamps[1]


def split_symbol(symbol: str) -> tuple[str, str]:
    """``"BTC/USDT"`` -> ``("BTC", "USDT")``; the canonical name keeps the quote."""
    base, sep, quote = symbol.partition("/")
    if not (sep and base and quote) or "/" in quote:
        raise SettingsError(f"symbol must be canonical BASE/QUOTE (see Universe.symbol), got {symbol!r}")
    return base.upper(), quote.upper()


# -- candle frames ----------------------------------------------------------------------------


def candle_frame(rows: list[dict[str, Any]], exchange: str, symbol: str, interval: str) -> pd.DataFrame:
    """Rows with open_time/open/high/low/close/volume/trade_count -> the simulator's raw-candle frame."""
    frame = pd.DataFrame(rows, columns=["open_time", *PRICE_COLUMNS, "trade_count"])
    frame.insert(0, "exchange", exchange)
    frame.insert(1, "symbol", symbol)
    frame.insert(2, "interval", interval)
    frame["open_time"] = pd.to_datetime(frame["open_time"], utc=True)
    frame[PRICE_COLUMNS] = frame[PRICE_COLUMNS].astype("float64")
    frame["trade_count"] = frame["trade_count"].astype("Int64")
    return frame[CANDLE_COLUMNS]


@dataclass
class CandleCollector:
    """Accumulates pages of one series: holds back open candles, de-duplicates, sorts, windows."""

    exchange: str
    symbol: str
    interval: str
    start: pd.Timestamp
    end: pd.Timestamp
    lacking: tuple[str, ...] = ()
    pages: list[pd.DataFrame] = field(default_factory=list)
    held_back: int = 0

    @property
    def step(self) -> pd.Timedelta:
        return pd.Timedelta(seconds=INTERVAL_SECONDS[self.interval])

    def add(self, frame: pd.DataFrame, fetched_at: pd.Timestamp, *, still_open: int = 0) -> None:
        """A page's candles; those not closed when the page was fetched are held back (not final)."""
        closed = frame["open_time"] + self.step <= fetched_at
        self.held_back += still_open + int((~closed).sum())
        self.pages.append(frame[closed])

    def result(self) -> pd.DataFrame:
        frames = [p for p in self.pages if not p.empty]
        if not frames:
            frame = candle_frame([], self.exchange, self.symbol, self.interval)
        else:
            frame = pd.concat(frames, ignore_index=True)
        frame = frame[(frame["open_time"] >= self.start) & (frame["open_time"] < self.end)]
        rows = len(frame)
        frame = frame.drop_duplicates("open_time", keep="last").sort_values("open_time", ignore_index=True)
        checked = [c for c in [*PRICE_COLUMNS, "trade_count"] if c not in self.lacking]
        bad = frame[checked].isna()
        if bad.any(axis=None):
            log.warning(
                "%s %s %s: %d of %d candles have missing or unparseable fields (%s); kept as null for "
                "the quality gate to quarantine",
                self.exchange,
                self.symbol,
                self.interval,
                int(bad.any(axis=1).sum()),
                len(frame),
                ", ".join(bad.columns[bad.any()]),
            )
        log.info(
            "%s %s %s: %d final candles in [%s, %s) from %d pages (%d duplicates dropped, %d open held back)",
            self.exchange,
            self.symbol,
            self.interval,
            len(frame),
            self.start.isoformat(),
            self.end.isoformat(),
            len(self.pages),
            rows - len(frame),
            self.held_back,
        )
        return frame


def trade_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Trades (time, trade_id, price, amount) sorted by time and id, de-duplicated by (non-null) trade id."""
    frame = pd.DataFrame(rows, columns=TRADE_COLUMNS)
    frame["time"] = pd.to_datetime(frame["time"], utc=True)
    frame[["price", "amount"]] = frame[["price", "amount"]].astype("float64")
    frame["trade_id"] = frame["trade_id"].astype("Int64")
    duplicate = frame["trade_id"].notna() & frame.duplicated("trade_id", keep="last")
    return frame[~duplicate].sort_values(["time", "trade_id"], kind="stable", ignore_index=True)


def trades_to_candles(trades: pd.DataFrame, exchange: str, symbol: str, interval: str) -> pd.DataFrame:
    """Aggregate trades into candles (no candle for an interval without trades).

    A candle containing a trade with an unparseable price (volume) gets null prices (volume),
    so the quality gate quarantines it instead of it looking complete.
    """
    if trades.empty:
        return candle_frame([], exchange, symbol, interval)
    trades = trades.sort_values(["time", "trade_id"], kind="stable")
    bucket = trades["time"].dt.floor(pd.Timedelta(seconds=INTERVAL_SECONDS[interval])).rename("open_time")
    groups = trades.groupby(bucket)
    candles = pd.DataFrame(
        {
            "open": groups["price"].first(skipna=False),
            "high": groups["price"].max(),
            "low": groups["price"].min(),
            "close": groups["price"].last(skipna=False),
            "volume": groups["amount"].sum(),
            "trade_count": groups.size(),
        }
    )
    candles.loc[trades["price"].isna().groupby(bucket).any(), ["open", "high", "low", "close"]] = math.nan
    candles.loc[trades["amount"].isna().groupby(bucket).any(), "volume"] = math.nan
    return candle_frame(candles.reset_index().to_dict("records"), exchange, symbol, interval)
