"""Final candles of one (exchange, symbol, interval) in a window ``[start, end)``, paged deterministically.

Pages follow ``since`` (and ``until`` where the exchange takes an end: binance, coinbaseexchange,
okx, bybit - each page a fixed window of at most the exchange's page size, so a run asks for the
same pages whatever the clock says). A candle is **final** when its interval has closed by the
``Date`` of the response that carried it: the server's clock, captured with the response, so a
replay holds back exactly the candles the live run held back. Kraken serves only the latest 720
candles of an interval: the part of a window older than that is rebuilt from its trades.
"""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd

from sentinance.catalog import CANDLE_COLUMNS, OPTIONAL_CANDLE_COLUMNS
from sentinance.pipelines.sources.exchanges.trades import fetch_trades
from sentinance.pipelines.sources.exchanges.venues import Venue, timeframe
from sentinance.settings import INTERVAL_SECONDS

log = logging.getLogger(__name__)

PAGE = {"binance": 1000, "coinbaseexchange": 300, "okx": 100, "bybit": 1000}  # candles per request
TAKES_UNTIL = set(PAGE)  # ccxt maps ``until`` to the exchange's end parameter for these
PRICES = ["open", "high", "low", "close", "volume"]
COLUMNS = [*CANDLE_COLUMNS, *OPTIONAL_CANDLE_COLUMNS]


def _ms(stamp: pd.Timestamp) -> int:
    return int(stamp.value // 1_000_000)


def fetch_candles(venue: Venue, symbol: str, interval: str, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
    """Final candles with ``start <= open_time < end`` as raw bronze records, sorted by open_time."""
    exchange = venue.client()
    code, step = timeframe(venue.name, interval), INTERVAL_SECONDS[interval] * 1000
    lo, hi = _ms(start), _ms(end)
    fields = ["open_time", *PRICES, *venue.native]
    rows: list[list[Any]] = []
    held_back = 0

    def page(since: int, limit: int | None, params: dict[str, Any]) -> tuple[list[list[Any]], int]:
        got = venue.call(
            exchange, f"{symbol} {interval} candles", lambda: exchange.fetch_ohlcv(symbol, code, since, limit, params)
        )
        return got, int(venue.server_time(exchange) * 1000)

    def keep(got: list[list[Any]], server_ms: int) -> None:
        nonlocal held_back
        final = [r for r in got if r[0] + step <= server_ms]
        held_back += len(got) - len(final)
        rows.extend(r for r in final if lo <= r[0] < hi)

    cursor = lo
    while cursor < hi:
        limit = PAGE.get(venue.name)
        until = min(hi, cursor + limit * step) - 1 if venue.name in TAKES_UNTIL and limit else None
        got, server_ms = page(cursor, limit, {"until": until} if until is not None else {})
        keep(got, server_ms)
        if venue.name == "kraken":  # one response holds all it serves (its latest 720), the rest from trades
            first = min((r[0] for r in got), default=hi)
            rows[:0] = _older_from_trades(venue, symbol, interval, lo, min(hi, first))
            break
        if until is not None:  # fixed windows: the next one, unless this one reached the server's present
            if until >= server_ms:
                break
            cursor = until + 1
            continue
        following = max((r[0] for r in got), default=cursor) + step  # the exchange sized the page
        if not got or following <= cursor or any(r[0] + step > server_ms for r in got):
            break
        cursor = following
    frame = _frame(rows, fields, venue.name, symbol, interval)
    log.info(
        "%s %s %s: %d final candles in [%s, %s) (%d not final yet)",
        venue.name,
        symbol,
        interval,
        len(frame),
        start.isoformat(),
        end.isoformat(),
        held_back,
    )
    return frame


def _older_from_trades(venue: Venue, symbol: str, interval: str, lo: int, first: int) -> list[list[Any]]:
    """Candles of ``[lo, first)`` aggregated from trades (Kraken: older than its 720-candle window)."""
    if lo >= first:
        return []
    trades = fetch_trades(
        venue, symbol, pd.Timestamp(lo, unit="ms", tz="UTC"), pd.Timestamp(first, unit="ms", tz="UTC")
    )
    candles = trades_to_candles(trades, interval)
    log.info(
        "%s %s %s: %d candles before the served window rebuilt from trades", venue.name, symbol, interval, len(candles)
    )
    return candles


def trades_to_candles(trades: pd.DataFrame, interval: str) -> list[list[Any]]:
    """Rows ``[open_time ms, open, high, low, close, volume, trade_count]`` of the intervals with trades."""
    if trades.empty:
        return []
    ordered = trades.sort_values(["trade_time", "trade_id"], kind="stable")
    bucket = ordered["trade_time"].dt.floor(pd.Timedelta(seconds=INTERVAL_SECONDS[interval]))
    groups = ordered.groupby(bucket)
    candles = pd.DataFrame(
        {
            "open": groups["price"].first(),
            "high": groups["price"].max(),
            "low": groups["price"].min(),
            "close": groups["price"].last(),
            "volume": groups["size"].sum(),
            "trade_count": groups.size(),
        }
    )
    times = (candles.index.astype("int64") // 1000).tolist()  # µs -> ms
    return [[t, *values] for t, values in zip(times, candles.itertuples(index=False, name=None), strict=True)]


def _frame(rows: list[list[Any]], fields: list[str], exchange: str, symbol: str, interval: str) -> pd.DataFrame:
    """Parsed rows -> raw bronze candles (COLUMNS), last copy of a duplicated open_time kept.

    Rows rebuilt from trades carry ``trade_count`` where Kraken's own rows do: the same layout.
    """
    frame = pd.DataFrame(rows, columns=fields)
    frame = frame.reindex(columns=[c for c in COLUMNS if c not in ("exchange", "symbol", "interval")])
    frame.insert(0, "exchange", exchange)
    frame.insert(1, "symbol", symbol)
    frame.insert(2, "interval", interval)
    frame["open_time"] = pd.to_datetime(frame["open_time"], unit="ms", utc=True).astype("datetime64[us, UTC]")
    frame[[*PRICES, "quote_volume"]] = frame[[*PRICES, "quote_volume"]].astype("float64")
    frame["trade_count"] = pd.array(frame["trade_count"], dtype="Int64")
    frame = frame.drop_duplicates("open_time", keep="last")
    return frame.sort_values("open_time", ignore_index=True)[COLUMNS]
