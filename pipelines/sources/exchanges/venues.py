"""Exchanges through ccxt: which names are valid, how each is configured, and one :class:`Venue` per run.

ccxt maintains what we would otherwise write per exchange: symbol maps (Kraken's ``XETHXXBT``),
timeframe codes, request signing and parsing, error mapping. What it lacks is kept here
(ADR 0006): capture/replay of every raw response (:mod:`.capture`), a limiter shared across
threads that reads used-weight and ``Retry-After`` headers and remembers bans (:mod:`.limits`),
the exchange-native candle fields bronze keeps (:data:`NATIVE`) and strict JSON (ccxt turns a
truncated body into an empty page).

A sync ccxt instance is not thread-safe, so a :class:`Venue` gives each thread its own instance,
all sharing the markets it loaded once and the exchange's one :class:`~.limits.Limiter`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any, Literal, TypeVar

import ccxt
from requests.adapters import HTTPAdapter

from sentinance.errors import SettingsError
from sentinance.pipelines.sources.exchanges.capture import Observer, RecordReplayAdapter
from sentinance.pipelines.sources.exchanges.errors import ExchangeBanned, ExchangeError
from sentinance.pipelines.sources.exchanges.limits import BanBook, Limiter

Mode = Literal["live", "replay"]
T = TypeVar("T")

SPOT_ONLY = {"fetchMarkets": {"types": ["spot"]}}  # one market request instead of 3 (binance) to 11 (bybit)
OPTIONS: dict[str, dict[str, Any]] = {
    "binance": SPOT_ONLY,
    "bybit": SPOT_ONLY,
    # okx picks /market/candles or /market/history-candles from the wall clock: pinned, so replays match
    "okx": {**SPOT_ONLY, "fetchOHLCV": {"type": "HistoryCandles"}},
}
# candle fields ccxt's parse_ohlcv drops, by their position in the exchange's raw row
NATIVE: dict[str, dict[str, int]] = {
    "binance": {"quote_volume": 7, "trade_count": 8},
    "kraken": {"trade_count": 7},
    "okx": {"quote_volume": 7},
    "bybit": {"quote_volume": 6},
}
# Binance counts request weight per minute per IP (ccxt's cost 1 = weight 5) and says how much is used
WEIGHT_BUDGETS: dict[str, tuple[float, float, str]] = {"binance": (6000, 5.0, "X-MBX-USED-WEIGHT-1M")}
THROTTLED = (418, 429)  # statuses that always mean "stop", whatever ccxt maps them to
TIMEOUT_MS = 15_000


def check_exchange(name: str, *, trades: bool) -> None:
    """A ccxt exchange id with public candles (and trades): else one line naming what is wrong."""
    if name not in ccxt.exchanges:
        raise SettingsError(f"exchange {name!r} is not a ccxt exchange id (e.g. binance, coinbaseexchange, kraken)")
    has = getattr(ccxt, name)().has
    needed = ["fetchOHLCV", *(["fetchTrades"] if trades else [])]
    missing = [m for m in needed if not has.get(m)]
    if missing:
        raise SettingsError(f"exchange {name!r}: ccxt offers no {' or '.join(missing)} for it")


def timeframe(name: str, interval: str) -> str:
    """The ccxt timeframe of ``interval`` on ``name`` (they use the same codes), if the exchange has it."""
    offered = getattr(ccxt, name)().timeframes or {}
    if interval not in offered:
        raise SettingsError(f"exchange {name!r} serves candles of {', '.join(offered)}, not {interval!r}")
    return interval


def _native_class(name: str) -> type[ccxt.Exchange]:
    """The ccxt class of ``name``, whose parsed candles keep the native fields of :data:`NATIVE`."""
    base = getattr(ccxt, name)
    positions = list(NATIVE.get(name, {}).values())
    if not positions:
        return base

    def parse_ohlcv(self: ccxt.Exchange, ohlcv: Any, market: Any = None) -> list:
        return [*base.parse_ohlcv(self, ohlcv, market), *(self.safe_number(ohlcv, i) for i in positions)]

    return type(f"{base.__name__}_native", (base,), {"parse_ohlcv": parse_ohlcv})


def _strict_json(exchange: ccxt.Exchange) -> None:
    """Make an invalid JSON body raise ``ccxt.BadResponse``: ccxt returns its text, and fetch_ohlcv ``[]``."""
    lenient = exchange.parse_json

    def parse_json(http_response: str) -> Any:
        if http_response and http_response[:1] in ("{", "["):
            try:
                return exchange.on_json_response(http_response)
            except ValueError as exc:
                raise ccxt.BadResponse(f"{exchange.id} invalid JSON body: {http_response[:80]!r}") from exc
        return lenient(http_response)

    exchange.parse_json = parse_json


def one_line(error: BaseException, limit: int = 300) -> str:
    text = " ".join(str(error).split())
    return f"{type(error).__name__}: {text[:limit]}{'...' if len(text) > limit else ''}"


class Venue:
    """One exchange for one run: ccxt instances per thread, markets loaded once, one limiter.

    ``live`` sends requests (to ``upstream`` if given - tests replay recorded responses there - else
    the network) and captures every response under ``capture_dir/<exchange>``; ``replay`` answers
    from the captures in ``replay_dirs/<exchange>`` only (the first directory holding a request
    wins). Bans are remembered in ``book`` (live runs). ``pace=False`` never waits for the limiter (a
    live run against recorded responses); it still counts requests and keeps bans.
    """

    def __init__(
        self,
        name: str,
        mode: Mode,
        *,
        capture_dir: Path | None = None,
        replay_dirs: list[Path] | None = None,
        upstream: HTTPAdapter | None = None,
        book: BanBook | None = None,
        pace: bool = True,
    ) -> None:
        self.name, self.mode = name, mode
        self.capture_dir = Path(capture_dir) / name if capture_dir else None  # one folder per exchange
        self.replay_dirs = [Path(d) / name for d in replay_dirs or []]
        self.upstream = upstream
        self.cls = _native_class(name)
        budget, per_cost, header = WEIGHT_BUDGETS.get(name, (None, 1.0, None))
        self.limiter = Limiter(
            name,
            spacing=self.cls().rateLimit / 1000,
            budget=budget,
            weight_per_cost=per_cost,
            header=header,
            pace=pace and mode == "live",
            book=book if mode == "live" else None,
        )
        self.observers: list[Observer] = []
        self._markets: ccxt.Exchange | None = None
        self._local = threading.local()
        self._lock = threading.Lock()

    @property
    def native(self) -> list[str]:
        """Names of the extra fields each parsed candle row carries after ts, o, h, l, c, v."""
        return list(NATIVE.get(self.name, {}))

    @property
    def requests(self) -> list[tuple[str, int]]:
        """(key, status) of every response served to this venue's instances."""
        return [r for o in self.observers for r in o.requests]

    def client(self) -> ccxt.Exchange:
        """This thread's ccxt instance, with the run's markets, limiter and capture/replay adapter."""
        exchange = getattr(self._local, "exchange", None)
        if exchange is None:
            exchange = self._new()
            self._local.exchange = exchange
            with self._lock:
                if self._markets is None:
                    self.call(exchange, "markets", exchange.load_markets)
                    self._markets = exchange
                else:
                    exchange.set_markets_from_exchange(self._markets)
        return exchange

    def _new(self) -> ccxt.Exchange:
        exchange = self.cls({"enableRateLimit": True, "timeout": TIMEOUT_MS, "options": OPTIONS.get(self.name, {})})
        exchange.throttle = self.limiter.throttle  # every request of every instance through the one limiter
        observer = Observer(observe=self.limiter.observe)
        with self._lock:
            self.observers.append(observer)
        adapter = RecordReplayAdapter(
            "capture" if self.mode == "live" else "replay",
            self.replay_dirs,
            capture_dir=self.capture_dir,
            upstream=self.upstream,
            report=observer,
        )
        exchange.session.mount("https://", adapter)
        exchange.session.mount("http://", adapter)
        self._local.observer = observer
        _strict_json(exchange)
        return exchange

    def call(self, exchange: ccxt.Exchange, what: str, request: Callable[[], T]) -> T:
        """Run one ccxt request, turning its errors into one-line :class:`ExchangeError` s; a throttle or
        ban answer stops the whole exchange (:meth:`Limiter.stop`)."""
        self.limiter.check(what)
        try:
            return request()
        except ExchangeBanned:
            raise
        except ccxt.BaseError as exc:
            headers = exchange.last_response_headers or {}
            requests = self._local.observer.requests
            status = requests[-1][1] if requests else None
            if isinstance(exc, (ccxt.DDoSProtection, ccxt.RateLimitExceeded)) or status in THROTTLED:
                ban = self.limiter.stop(headers, one_line(exc, 160))
                raise ExchangeBanned(self.name, what, ban.until, ban.reason) from None
            transient = isinstance(exc, ccxt.NetworkError)  # timeouts, 5xx, maintenance; not bad requests
            raise ExchangeError(self.name, what, one_line(exc), transient=transient) from None

    def server_time(self, exchange: ccxt.Exchange) -> float:
        """The ``Date`` of the latest response (epoch s): whether a candle is final is the server's call,
        and a replay, reading the captured header, decides exactly as the live run did."""
        date = (exchange.last_response_headers or {}).get("Date")
        if date:
            try:
                return parsedate_to_datetime(date).timestamp()
            except (TypeError, ValueError):
                pass
        return time.time()

    def raw_json(self, exchange: ccxt.Exchange) -> Any:
        """The latest response body as JSON (cursors ccxt does not return, e.g. Kraken's ``last``)."""
        return exchange.parse_json(exchange.last_http_response)


class Venues:
    """The :class:`Venue` of each exchange of one run, made on first use (thread-safe)."""

    def __init__(self, mode: Mode, **options: Any) -> None:
        self.mode, self.options = mode, options
        self._venues: dict[str, Venue] = {}
        self._lock = threading.Lock()

    def __getitem__(self, name: str) -> Venue:
        with self._lock:
            if name not in self._venues:
                self._venues[name] = Venue(name, self.mode, **self.options)
            return self._venues[name]

    def __iter__(self) -> Iterator[Venue]:
        return iter(list(self._venues.values()))
