"""Binance spot public REST: ``GET /api/v3/klines`` and ``GET /api/v3/aggTrades``.

* klines: rows ``[open_time ms, open, high, low, close, volume, close_time, quote_volume,
  trades, taker_buy_base, taker_buy_quote, ignore]``, numbers as strings, oldest first,
  <= 1000 per request, paged by ``startTime`` (``endTime`` inclusive); request weight 2.
* aggTrades: ``[{"a": id, "p": price, "q": qty, "f", "l", "T": ms, "m", "M"}]``, <= 1000 per
  request, paged by ``fromId``; request weight 4.
* Limit: 6000 request weight per minute per IP; 429 (then 418 = banned) with ``Retry-After``.
* Errors: ``{"code": -1121, "msg": "Invalid symbol."}``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

import pandas as pd

from sentinance.pipelines.sources.exchanges.http import (
    ExchangeClient,
    candle_frame,
    integer,
    number,
    split_symbol,
    timestamp,
    trade_frame,
    window,
)
from sentinance.settings import INTERVAL_SECONDS

KLINES, AGG_TRADES = "/api/v3/klines", "/api/v3/aggTrades"
KLINES_WEIGHT, AGG_TRADES_WEIGHT = 2, 4


class BinanceClient(ExchangeClient):
    name = "binance"
    base_url = "https://api.binance.com"
    rate, capacity = 6000 / 60, 6000  # request weight
    max_page = 1000
    intervals: ClassVar[dict[str, int | str]] = {
        code: code for code in INTERVAL_SECONDS
    }  # Binance uses the same codes ("1h")

    @staticmethod
    def market(symbol: str) -> str:
        """``BTC/USDT`` -> ``BTCUSDT``."""
        return "".join(split_symbol(symbol))

    def error_message(self, body: Any) -> str | None:
        if isinstance(body, dict) and "code" in body and "msg" in body:
            return f"code {body['code']}: {body['msg']}"
        return None

    def candles(self, symbol: str, start: datetime, end: datetime, interval: str = "1h") -> pd.DataFrame:
        collector = self.collector(symbol, interval, start, end)
        code, step_ms = self.interval_code(interval), INTERVAL_SECONDS[interval] * 1000
        cursor, end_ms = _ms(collector.start), _ms(collector.end)
        endpoint = f"klines-{interval}"
        while cursor < end_ms:
            params = {
                "symbol": self.market(symbol),
                "interval": code,
                "startTime": cursor,
                "endTime": end_ms - 1,
                "limit": self.page_limit,
            }
            page = self.get(endpoint, KLINES, params, symbol=symbol, cursor=cursor, cost=KLINES_WEIGHT)
            rows = self._klines(page.body, endpoint, symbol)
            collector.add(candle_frame(rows, self.name, symbol, interval), page.fetched_at)
            if len(rows) < self.page_limit:
                break
            following = _ms(rows[-1]["open_time"]) + step_ms
            if following <= cursor:
                raise self.malformed(endpoint, symbol, f"page at startTime={cursor} did not advance")
            cursor = following
        return collector.result()

    def _klines(self, body: Any, endpoint: str, symbol: str) -> list[dict[str, Any]]:
        if not isinstance(body, list):
            raise self.malformed(endpoint, symbol, f"expected a JSON array of klines, got {type(body).__name__}")
        rows = []
        for i, row in enumerate(body):
            if not isinstance(row, list) or len(row) < 9:
                raise self.malformed(endpoint, symbol, f"kline {i} is not an array of >= 9 fields: {row!r}")
            try:
                open_time = timestamp(row[0], "ms")
            except ValueError as exc:
                raise self.malformed(endpoint, symbol, f"kline {i}: open {exc}") from None
            rows.append(
                {
                    "open_time": open_time,
                    "open": number(row[1]),
                    "high": number(row[2]),
                    "low": number(row[3]),
                    "close": number(row[4]),
                    "volume": number(row[5]),
                    "trade_count": integer(row[8]),
                }
            )
        return rows

    def trades(self, symbol: str, start: datetime, end: datetime) -> pd.DataFrame:
        start_ts, end_ts = window(start, end, None)
        params: dict[str, Any] = {"symbol": self.market(symbol), "startTime": _ms(start_ts), "limit": self.page_limit}
        cursor: Any = params["startTime"]
        rows: list[dict[str, Any]] = []
        while True:
            page = self.get("aggTrades", AGG_TRADES, params, symbol=symbol, cursor=cursor, cost=AGG_TRADES_WEIGHT)
            batch = self._agg_trades(page.body, symbol)
            rows += batch
            if len(batch) < self.page_limit or batch[-1]["time"] >= end_ts:
                break
            cursor = f"id{batch[-1]['trade_id'] + 1}"
            params = {"symbol": self.market(symbol), "fromId": batch[-1]["trade_id"] + 1, "limit": self.page_limit}
        frame = trade_frame(rows)
        return frame[(frame["time"] >= start_ts) & (frame["time"] < end_ts)].reset_index(drop=True)

    def _agg_trades(self, body: Any, symbol: str) -> list[dict[str, Any]]:
        if not isinstance(body, list):
            raise self.malformed("aggTrades", symbol, f"expected a JSON array of trades, got {type(body).__name__}")
        rows = []
        for i, trade in enumerate(body):
            if not isinstance(trade, dict) or not {"a", "p", "q", "T"} <= trade.keys():
                raise self.malformed("aggTrades", symbol, f"trade {i} lacks a/p/q/T: {trade!r}")
            trade_id = integer(trade["a"])
            try:
                time = timestamp(trade["T"], "ms")
            except ValueError as exc:
                raise self.malformed("aggTrades", symbol, f"trade {i}: {exc}") from None
            if trade_id is None:
                raise self.malformed("aggTrades", symbol, f"trade {i}: id {trade['a']!r} is not an integer")
            rows.append({"time": time, "trade_id": trade_id, "price": number(trade["p"]), "amount": number(trade["q"])})
        return rows


def _ms(stamp: pd.Timestamp) -> int:
    return int(stamp.value // 1_000_000)
