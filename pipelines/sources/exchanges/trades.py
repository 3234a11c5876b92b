"""Public trades of one (exchange, symbol) in a window ``[start, end)``, paged deterministically.

ccxt's own ``paginate`` is not used: without ``until`` it starts from the wall clock, it retries
every error (bans included) three times at once, and its pages cannot be resumed. Each exchange's
public API pages differently:

* **binance** (``aggTrades``) - a ``startTime``/``endTime`` pair must lie within one hour and may
  not be combined with ``fromId``: the first trade is found by hour windows from ``start``, then
  pages of 1000 follow by ``fromId``;
* **kraken** - pages of 1000 from ``since``, then by the ``last`` cursor of each response;
* **coinbaseexchange** - 1000 per page (the maximum) by trade id: when the newest page does not
  reach back to ``start``, the first trade of the window is located by galloping and bisecting
  over trade ids (one-trade probes), then the window is read forward 1000 ids at a time, instead of
  paging back from the newest trade through everything since the window ended;
* **okx** - recent trades, then ``history-trades`` pages older than the oldest id seen;
* **bybit** - only the latest trades exist publicly (no history): what of them lies in the window;
* any other ccxt exchange - ``fetch_trades`` by ``since``, advancing past the last trade's time.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import ccxt
import pandas as pd

from sentinance.catalog import TRADE_COLUMNS
from sentinance.pipelines.sources.exchanges.venues import Venue

log = logging.getLogger(__name__)

HOUR_MS = 3_600_000
PAGE = {"binance": 1000, "kraken": 1000, "coinbaseexchange": 1000, "okx": 500, "bybit": 60}
OKX_HISTORY_PAGE = 100
Trades = list[dict[str, Any]]


def _ms(stamp: pd.Timestamp) -> int:
    return int(stamp.value // 1_000_000)


def fetch_trades(venue: Venue, symbol: str, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
    """Trades with ``start <= trade_time < end`` as raw bronze records (TRADE_COLUMNS), sorted by time."""
    exchange = venue.client()
    what = f"{symbol} trades"

    def page(since: int | None, limit: int | None, params: dict[str, Any] | None = None) -> Trades:
        return venue.call(exchange, what, lambda: exchange.fetch_trades(symbol, since, limit, params or {}))

    lo, hi = _ms(start), _ms(end)
    fetch = STRATEGIES.get(venue.name, _by_since)
    trades = fetch(page, lo, hi, venue, exchange) if lo < hi else []
    return trade_frame(trades, venue.name, symbol, lo, hi)


def trade_frame(trades: Trades, exchange: str, symbol: str, lo: int, hi: int) -> pd.DataFrame:
    """ccxt's unified trades -> bronze's raw trade records in ``[lo, hi)`` ms, de-duplicated by id."""
    rows = [
        {
            "exchange": exchange,
            "symbol": symbol,
            "trade_id": None if t.get("id") is None else str(t["id"]),
            "trade_time": t.get("timestamp"),
            "price": t.get("price"),
            "size": t.get("amount"),
            "side": t.get("side"),
        }
        for t in trades
        if t.get("timestamp") is not None and lo <= t["timestamp"] < hi
    ]
    frame = pd.DataFrame(rows, columns=TRADE_COLUMNS)
    frame["trade_time"] = pd.to_datetime(frame["trade_time"], unit="ms", utc=True).astype("datetime64[us, UTC]")
    frame[["price", "size"]] = frame[["price", "size"]].astype("float64")
    frame = frame.drop_duplicates("trade_id", keep="last") if frame["trade_id"].notna().all() else frame
    return frame.sort_values(["trade_time", "trade_id"], kind="stable", ignore_index=True)


Page = Callable[..., Trades]


def _binance(page: Page, lo: int, hi: int, venue: Venue, exchange: ccxt.Exchange) -> Trades:
    limit = PAGE["binance"]
    trades: Trades = []
    cursor = lo
    while cursor < hi and not trades:  # the first trade: one hour window at a time (never startTime alone)
        until = min(cursor + HOUR_MS, hi) - 1
        trades = page(cursor, limit, {"until": until})
        cursor = until + 1
    batch, windowed = trades, cursor < hi  # a window page that was not full says nothing of later hours
    while batch and batch[-1]["timestamp"] < hi and (windowed or len(batch) == limit):
        batch, windowed = page(None, limit, {"fromId": int(batch[-1]["id"]) + 1}), False
        trades += batch
    return trades


def _kraken(page: Page, lo: int, hi: int, venue: Venue, exchange: ccxt.Exchange) -> Trades:
    trades = page(lo, PAGE["kraken"])
    last = venue.raw_json(exchange)["result"]["last"]
    batch = trades
    while batch and max(t["timestamp"] for t in batch) < hi:
        batch = page(None, PAGE["kraken"], {"since": last})
        following = venue.raw_json(exchange)["result"]["last"]
        trades += batch
        if following == last:
            break
        last = following
    return trades


def _coinbase(page: Page, lo: int, hi: int, venue: Venue, exchange: ccxt.Exchange) -> Trades:
    limit = PAGE["coinbaseexchange"]
    newest = page(None, limit)
    if not newest or min(t["timestamp"] for t in newest) < lo:
        return newest

    def time_of(trade_id: int) -> int | None:
        """Time of the trade with this id (or the nearest older one): a one-trade probe."""
        probe = page(None, 1, {"after": trade_id + 1})
        return probe[0]["timestamp"] if probe else None

    def before(trade_id: int) -> bool:
        time = time_of(trade_id)
        return time is None or time < lo

    oldest = min(int(t["id"]) for t in newest)
    high, step = oldest, limit  # the trade `high` is in the window; gallop back to one before it
    low = max(oldest - step, 1)
    while low > 1 and not before(low):
        high, step = low, step * 2
        low = max(oldest - step, 1)
    while high - low > 1:  # bisect: the first id in the window
        middle = (low + high) // 2
        if before(middle):
            low = middle
        else:
            high = middle
    trades: Trades = []
    first = high
    while first < oldest:  # forward, `limit` ids per page (``after`` returns the ids below it)
        batch = page(None, limit, {"after": min(first + limit, oldest)})
        trades += batch
        if not batch or max(t["timestamp"] for t in batch) >= hi:
            break
        first += limit
    return trades + newest


def _okx(page: Page, lo: int, hi: int, venue: Venue, exchange: ccxt.Exchange) -> Trades:
    trades = page(None, PAGE["okx"])
    batch = trades
    while batch and min(t["timestamp"] for t in batch) >= lo:
        oldest = min(batch, key=lambda t: int(t["id"]))["id"]
        batch = page(None, OKX_HISTORY_PAGE, {"method": "publicGetMarketHistoryTrades", "after": oldest})
        trades += batch
    return trades


def _bybit(page: Page, lo: int, hi: int, venue: Venue, exchange: ccxt.Exchange) -> Trades:
    trades = page(None, PAGE["bybit"])
    if trades and min(t["timestamp"] for t in trades) > lo:
        log.warning(
            "bybit serves only its latest %d public trades: those of %s before %s are not available",
            PAGE["bybit"],
            trades[0]["symbol"],
            pd.Timestamp(min(t["timestamp"] for t in trades), unit="ms", tz="UTC"),
        )
    return trades


def _by_since(page: Page, lo: int, hi: int, venue: Venue, exchange: ccxt.Exchange) -> Trades:
    trades: Trades = []
    cursor = lo
    while cursor < hi:
        batch = page(cursor, None)
        trades += batch
        following = max((t["timestamp"] for t in batch), default=cursor) + 1
        if not batch or following <= cursor:
            break
        cursor = following
    return trades


STRATEGIES: dict[str, Callable[[Page, int, int, Venue, ccxt.Exchange], Trades]] = {
    "binance": _binance,
    "kraken": _kraken,
    "coinbaseexchange": _coinbase,
    "okx": _okx,
    "bybit": _bybit,
}
