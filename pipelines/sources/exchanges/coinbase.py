"""Coinbase Exchange public REST: ``GET /products/{id}/candles`` and ``GET /products/{id}/trades``.

* candles: rows ``[time s, low, high, open, close, volume]`` (JSON numbers), **newest first**,
  <= 300 per request (a wider ``start``/``end`` range is rejected), ``granularity`` in seconds
  (60, 300, 900, 3600, 21600, 86400), no candle for an interval without trades, and a page may
  include candles preceding ``start``. Paged by consecutive ``[start, end)`` windows.
* trades: ``[{"time", "trade_id", "price", "size", "side"}]`` newest first, <= 1000 per request,
  paged towards older trades with ``after=<oldest trade_id of the page>``.
* Limit: public endpoints 10 requests/s per IP, bursts up to 15; 429 when exceeded.
* Errors: ``{"message": "NotFound"}``. No trade count is published (``trade_count`` is null).
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
    trade_frame,
    window,
)
from sentinance.settings import INTERVAL_SECONDS

GRANULARITIES = (60, 300, 900, 3600, 21600, 86400)


class CoinbaseClient(ExchangeClient):
    name = "coinbase"
    base_url = "https://api.exchange.coinbase.com"
    rate, capacity = 10.0, 15.0
    max_page = 300
    intervals: ClassVar[dict[str, int | str]] = {k: s for k, s in INTERVAL_SECONDS.items() if s in GRANULARITIES}
    lacking = ("trade_count",)

    @staticmethod
    def product(symbol: str) -> str:
        """``BTC/USD`` -> ``BTC-USD``."""
        return "-".join(split_symbol(symbol))

    def error_message(self, body: Any) -> str | None:
        if isinstance(body, dict) and "message" in body:
            return str(body["message"])
        return None

    def candles(self, symbol: str, start: datetime, end: datetime, interval: str = "1h") -> pd.DataFrame:
        collector = self.collector(symbol, interval, start, end)
        granularity = self.interval_code(interval)
        path, endpoint = f"/products/{self.product(symbol)}/candles", f"candles-{interval}"
        page_start = collector.start
        while page_start < collector.end:
            page_end = min(collector.end, page_start + self.page_limit * collector.step)
            params = {"granularity": granularity, "start": _iso(page_start), "end": _iso(page_end)}
            page = self.get(endpoint, path, params, symbol=symbol, cursor=int(page_start.timestamp()))
            rows = self._candles(page.body, endpoint, symbol)
            collector.add(candle_frame(rows, self.name, symbol, interval), page.fetched_at)
            if page_end > page.fetched_at:  # the rest of the range is in the future
                break
            page_start = page_end
        return collector.result()

    def _candles(self, body: Any, endpoint: str, symbol: str) -> list[dict[str, Any]]:
        if not isinstance(body, list):
            raise self.malformed(endpoint, symbol, f"expected a JSON array of candles, got {type(body).__name__}")
        rows = []
        for i, row in enumerate(body):
            if not isinstance(row, list) or len(row) < 6:
                raise self.malformed(endpoint, symbol, f"candle {i} is not an array of 6 fields: {row!r}")
            seconds = integer(row[0])
            if seconds is None:
                raise self.malformed(endpoint, symbol, f"candle {i}: time {row[0]!r} is not an integer")
            rows.append(
                {
                    "open_time": pd.Timestamp(seconds, unit="s", tz="UTC"),
                    "low": number(row[1]),
                    "high": number(row[2]),
                    "open": number(row[3]),
                    "close": number(row[4]),
                    "volume": number(row[5]),
                    "trade_count": None,
                }
            )
        return rows

    def trades(self, symbol: str, start: datetime, end: datetime) -> pd.DataFrame:
        start_ts, end_ts = window(start, end, None)
        path = f"/products/{self.product(symbol)}/trades"
        params: dict[str, Any] = {"limit": self.page_limit}
        cursor: Any = "latest"
        rows: list[dict[str, Any]] = []
        while True:
            page = self.get("trades", path, params, symbol=symbol, cursor=cursor)
            batch = self._trades(page.body, symbol)
            rows += batch
            if len(batch) < self.page_limit or min(t["time"] for t in batch) < start_ts:
                break
            cursor = min(t["trade_id"] for t in batch)
            params = {"limit": self.page_limit, "after": cursor}
        frame = trade_frame(rows)
        return frame[(frame["time"] >= start_ts) & (frame["time"] < end_ts)].reset_index(drop=True)

    def _trades(self, body: Any, symbol: str) -> list[dict[str, Any]]:
        if not isinstance(body, list):
            raise self.malformed("trades", symbol, f"expected a JSON array of trades, got {type(body).__name__}")
        rows = []
        for i, trade in enumerate(body):
            if not isinstance(trade, dict) or not {"time", "trade_id", "price", "size"} <= trade.keys():
                raise self.malformed("trades", symbol, f"trade {i} lacks time/trade_id/price/size: {trade!r}")
            trade_id = integer(trade["trade_id"])
            time = pd.to_datetime(trade["time"], utc=True, errors="coerce")
            if trade_id is None or pd.isna(time):
                raise self.malformed("trades", symbol, f"trade {i} has no usable id/time: {trade!r}")
            rows.append(
                {"time": time, "trade_id": trade_id, "price": number(trade["price"]), "amount": number(trade["size"])}
            )
        return rows


def _iso(stamp: pd.Timestamp) -> str:
    return stamp.strftime("%Y-%m-%dT%H:%M:%SZ")
