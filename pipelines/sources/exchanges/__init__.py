"""Exchange connectors by name, and the candle fetch that replaces the simulator for real data.

``fetch_candles`` returns exactly the simulator's raw-candle columns (exchange, symbol,
interval, open_time UTC, open, high, low, close, volume, trade_count), ready for the bronze
landing (which validates and quarantines). For incremental runs pass
``start = watermark + interval``; only final candles with open_time in ``[start, end)`` return.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pandas as pd

from sentinance.catalog import instrument_id
from sentinance.errors import SettingsError
from sentinance.pipelines.sources.exchanges.binance import BinanceClient
from sentinance.pipelines.sources.exchanges.coinbase import CoinbaseClient
from sentinance.pipelines.sources.exchanges.http import ExchangeClient, ExchangeError, candle_frame
from sentinance.pipelines.sources.exchanges.kraken import KrakenClient

log = logging.getLogger(__name__)

CLIENTS: dict[str, type[ExchangeClient]] = {c.name: c for c in (BinanceClient, CoinbaseClient, KrakenClient)}


def make_client(exchange: str, **options: Any) -> ExchangeClient:
    """A connector for ``exchange``; options go to :class:`ExchangeClient` (mode, http, transport, sleep, ...)."""
    if exchange not in CLIENTS:
        raise SettingsError(f"no connector for exchange {exchange!r}; known: {sorted(CLIENTS)}")
    return CLIENTS[exchange](**options)


def fetch_candles(
    exchange: str,
    symbol: str,
    start: datetime,
    end: datetime,
    *,
    interval: str = "1h",
    client: ExchangeClient | None = None,
    **options: Any,
) -> pd.DataFrame:
    """Final candles of one series with open_time in ``[start, end)``; raises ExchangeError naming the series.

    ``symbol`` is canonical with its quote (``BTC/USDT`` on binance, ``BTC/USD`` on coinbase and
    kraken). Pass ``client`` to reuse one connector (and its rate limiter) across series, or
    ``options`` to build one, e.g. ``mode="capture"`` / ``mode="replay"``.
    """
    owned = client is None
    client = client or make_client(exchange, **options)
    if client.name != exchange:
        raise ValueError(f"client is for {client.name}, not {exchange}")
    try:
        return client.candles(symbol, start, end, interval)
    except ExchangeError as exc:
        log.error("candles of %s failed: %s", instrument_id(exchange, symbol), exc)
        raise
    finally:
        if owned:
            client.close()


@dataclass
class FetchResult:
    """Candles of every series that succeeded, and the error of every series that failed."""

    candles: pd.DataFrame
    failures: dict[str, str] = field(default_factory=dict)  # instrument_id -> error


def fetch_series(
    windows: Mapping[tuple[str, str], tuple[datetime, datetime]], *, interval: str = "1h", **options: Any
) -> FetchResult:
    """Fetch many series, ``{(exchange, symbol): (start, end)}``, one connector per exchange.

    A series whose request fails is recorded in ``failures`` (and logged) without stopping the others.
    """
    clients: dict[str, ExchangeClient] = {}
    frames, failures = [], {}
    try:
        for (exchange, symbol), (start, end) in windows.items():
            if exchange not in clients:
                clients[exchange] = make_client(exchange, **options)
            client = clients[exchange]
            try:
                frames.append(fetch_candles(exchange, symbol, start, end, interval=interval, client=client))
            except ExchangeError as exc:
                failures[instrument_id(exchange, symbol)] = str(exc)
    finally:
        for client in clients.values():
            client.close()
    frames = [f for f in frames if not f.empty]
    candles = pd.concat(frames, ignore_index=True) if frames else candle_frame([], "", "", interval)
    return FetchResult(candles, failures)
