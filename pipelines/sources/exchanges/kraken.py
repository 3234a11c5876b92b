"""Kraken spot public REST: ``GET /0/public/OHLC`` with backfill from ``GET /0/public/Trades``.

* OHLC: ``{"error": [], "result": {"XXBTZUSD": [[time s, open, high, low, close, vwap, volume,
  count], ...], "last": <time of the last committed entry>}}``, prices as strings. Only the
  latest 720 entries are served whatever ``since`` says, and the **last entry is the current,
  uncommitted interval** (never final).
* Trades: ``{"error": [], "result": {"XXBTZUSD": [[price, volume, time s (float), side, type,
  misc, trade_id], ...], "last": "<ns cursor>"}}``, <= 1000 per request, paged by passing
  ``last`` back as ``since``. The part of ``[start, end)`` older than the first OHLC entry is
  rebuilt from trades, aggregated into candles (no candle for an interval without trades).
* Pairs: XBT is Kraken's BTC; the request uses the altname (``XBTUSD``), the result is keyed by
  the legacy name (``XXBTZUSD``) or the altname (``SOLUSD``).
* Limit: public endpoints ~1 request/s per IP. Errors arrive with HTTP 200 as
  ``{"error": ["EQuery:Unknown asset pair"]}``; ``EAPI:Rate limit exceeded`` and
  ``EService:Unavailable``/``EService:Busy`` are retried like a 429/503.
"""

from __future__ import annotations

import json
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
    trades_to_candles,
    window,
)
from sentinance.settings import INTERVAL_SECONDS

OHLC, TRADES = "/0/public/OHLC", "/0/public/Trades"
OHLC_MINUTES = (1, 5, 15, 30, 60, 240, 1440)
RETRYABLE_ERRORS = ("EAPI:Rate limit", "EService:Unavailable", "EService:Busy")
ASSET_CODES = {"BTC": "XBT", "DOGE": "XDG"}  # Kraken's own codes where they differ


class KrakenClient(ExchangeClient):
    name = "kraken"
    base_url = "https://api.kraken.com"
    rate, capacity = 1.0, 1.0
    max_page = 1000  # trades per request
    intervals: ClassVar[dict[str, int | str]] = {
        k: s // 60 for k, s in INTERVAL_SECONDS.items() if s // 60 in OHLC_MINUTES
    }

    @staticmethod
    def pair(symbol: str) -> str:
        """``BTC/USD`` -> ``XBTUSD`` (the altname accepted by every public endpoint)."""
        base, quote = split_symbol(symbol)
        return ASSET_CODES.get(base, base) + quote

    @classmethod
    def result_keys(cls, symbol: str) -> tuple[str, ...]:
        """Names the result may be keyed by: altname and legacy ``X<base>Z<quote>`` (``XXBTZUSD``)."""
        base, quote = split_symbol(symbol)
        return cls.pair(symbol), f"X{ASSET_CODES.get(base, base)}Z{quote}"

    def error_message(self, body: Any) -> str | None:
        if isinstance(body, dict) and body.get("error"):
            errors = body["error"]
            return "; ".join(map(str, errors)) if isinstance(errors, list) else str(errors)
        return None

    def retry_reason(self, status: int, body: bytes) -> str | None:
        try:
            message = self.error_message(json.loads(body))
        except (UnicodeDecodeError, json.JSONDecodeError):
            return None
        if message and any(code in message for code in RETRYABLE_ERRORS):
            return f"HTTP {status} {message}"
        return None

    def candles(self, symbol: str, start: datetime, end: datetime, interval: str = "1h") -> pd.DataFrame:
        collector = self.collector(symbol, interval, start, end)
        endpoint = f"ohlc-{interval}"
        since = int(collector.start.timestamp()) - 1  # since is exclusive
        params = {"pair": self.pair(symbol), "interval": self.interval_code(interval), "since": since}
        page = self.get(endpoint, OHLC, params, symbol=symbol, cursor=since)
        entries, _ = self._result(page.body, endpoint, symbol)
        rows = sorted(
            (self._ohlc_row(i, row, endpoint, symbol) for i, row in enumerate(entries)), key=lambda r: r["open_time"]
        )
        closed, still_open = rows[:-1], rows[-1:]
        collector.add(candle_frame(closed, self.name, symbol, interval), page.fetched_at, still_open=len(still_open))
        backfill_end = min(collector.end, rows[0]["open_time"]) if rows else collector.end
        if collector.start < backfill_end:
            trades, fetched_at = self._trades(symbol, collector.start, backfill_end)
            collector.add(trades_to_candles(trades, self.name, symbol, interval), fetched_at)
        return collector.result()

    def trades(self, symbol: str, start: datetime, end: datetime) -> pd.DataFrame:
        return self._trades(symbol, *window(start, end, None))[0]

    def _trades(self, symbol: str, start: pd.Timestamp, end: pd.Timestamp) -> tuple[pd.DataFrame, pd.Timestamp]:
        """Trades in ``[start, end)`` following the ``last`` cursor, and the last page's fetch time."""
        cursor = str(start.value)  # nanoseconds, the cursor's own unit
        rows: list[dict[str, Any]] = []
        while True:
            params = {"pair": self.pair(symbol), "since": cursor, "count": self.page_limit}
            page = self.get("trades", TRADES, params, symbol=symbol, cursor=cursor)
            entries, last = self._result(page.body, "trades", symbol)
            batch = [self._trade_row(i, row, symbol) for i, row in enumerate(entries)]
            rows += batch
            if not batch or max(t["time"] for t in batch) >= end or str(last) == cursor:
                break
            cursor = str(last)
        frame = trade_frame(rows)
        return frame[(frame["time"] >= start) & (frame["time"] < end)].reset_index(drop=True), page.fetched_at

    def _result(self, body: Any, endpoint: str, symbol: str) -> tuple[list, Any]:
        result = body.get("result") if isinstance(body, dict) else None
        if not isinstance(result, dict) or "last" not in result:
            raise self.malformed(
                endpoint,
                symbol,
                f"expected {{'error': [], 'result': {{<pair>: [...], 'last': ...}}}}, got {str(body)[:200]}",
            )
        key = next((k for k in self.result_keys(symbol) if k in result), None)
        if key is None or not isinstance(result[key], list):
            raise self.malformed(
                endpoint, symbol, f"result has no list for pair {self.result_keys(symbol)} (keys: {sorted(result)})"
            )
        return result[key], result["last"]

    def _ohlc_row(self, i: int, row: Any, endpoint: str, symbol: str) -> dict[str, Any]:
        if not isinstance(row, list) or len(row) < 8:
            raise self.malformed(endpoint, symbol, f"entry {i} is not an array of 8 fields: {row!r}")
        try:
            open_time = timestamp(row[0], "s")
        except ValueError as exc:
            raise self.malformed(endpoint, symbol, f"entry {i}: {exc}") from None
        return {
            "open_time": open_time,
            "open": number(row[1]),
            "high": number(row[2]),
            "low": number(row[3]),
            "close": number(row[4]),
            "volume": number(row[6]),
            "trade_count": integer(row[7]),
        }

    def _trade_row(self, i: int, row: Any, symbol: str) -> dict[str, Any]:
        if not isinstance(row, list) or len(row) < 3:
            raise self.malformed("trades", symbol, f"trade {i} is not an array of >= 3 fields: {row!r}")
        try:
            time = timestamp(row[2], "s")
        except ValueError as exc:
            raise self.malformed("trades", symbol, f"trade {i}: {exc}") from None
        return {
            "time": time,
            "trade_id": integer(row[6]) if len(row) > 6 else None,
            "price": number(row[0]),
            "amount": number(row[1]),
        }
