"""Recorded exchange responses served through httpx's transport layer (``httpx.MockTransport``), and a
fake clock, shared by the connector tests and the ingest flow's tests."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pandas as pd

from sentinance.pipelines.sources.exchanges import make_client

RECORDED = Path(__file__).parents[1] / "fixtures" / "recorded"
T0 = datetime(2024, 3, 1, tzinfo=UTC)
H = timedelta(hours=1)
NOW = (T0 + 5.5 * H).timestamp()  # the 05:00 candle is still open


def hours(*offsets: int) -> list[pd.Timestamp]:
    return [pd.Timestamp(T0 + i * H) for i in offsets]


def ms(offset_hours: float) -> int:
    return int((T0 + offset_hours * H).timestamp() * 1000)


class FakeClock:
    """Injected clock and sleep: sleeping advances time and is recorded."""

    def __init__(self, now: float = NOW) -> None:
        self.now, self.sleeps = now, []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@dataclass
class Reply:
    file: str | None = None
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    timeout: bool = False


Route = tuple[str, dict[str, Any], list[Reply]]


class RecordedServer:
    """MockTransport handler: the first route whose path and query subset match serves its next reply."""

    def __init__(self, exchange: str, routes: list[Route]) -> None:
        self.exchange, self.routes, self.requests = exchange, [(p, q, list(r)) for p, q, r in routes], []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        for path, query, replies in self.routes:
            if request.url.path == path and all(request.url.params.get(k) == str(v) for k, v in query.items()):
                reply = replies.pop(0) if len(replies) > 1 else replies[0]
                if reply.timeout:
                    raise httpx.ReadTimeout("timed out", request=request)
                body = (RECORDED / self.exchange / reply.file).read_bytes() if reply.file else b""
                return httpx.Response(
                    reply.status, content=body, headers={"Content-Type": "application/json", **reply.headers}
                )
        raise AssertionError(f"no recorded response for {request.url}")


def client_for(exchange: str, routes: list[Route], clock: FakeClock | None = None, **options: Any):
    clock = clock or FakeClock()
    server = RecordedServer(exchange, routes)
    client = make_client(
        exchange, transport=httpx.MockTransport(server), sleep=clock.sleep, clock=clock, rng=random.Random(7), **options
    )
    return client, server, clock


@dataclass(frozen=True)
class Case:
    symbol: str
    path: str
    window: tuple[datetime, datetime]  # single-page window served by `page`
    page: str
    rows: int
    error: tuple[str, int, str]  # file, HTTP status, the exchange's message
    rate_limited: str
    unavailable: str
    bad_numbers: str
    missing_fields: str
    truncated: str
    empty: list[Route]
    pages: list[Route]  # multi-page run over [T0, T0 + 6h)
    page_limit: int | None
    paged_times: list[pd.Timestamp]


CASES = {
    "binance": Case(
        symbol="BTC/USDT",
        path="/api/v3/klines",
        window=(T0, T0 + 3 * H),
        page="klines-p1.json",
        rows=3,
        error=("error-invalid-symbol.json", 400, "Invalid symbol."),
        rate_limited="error-rate-limit.json",
        unavailable="error-internal.json",
        bad_numbers="klines-bad-numbers.json",
        missing_fields="klines-missing-fields.json",
        truncated="klines-truncated.json",
        empty=[("/api/v3/klines", {}, [Reply("klines-empty.json")])],
        pages=[
            ("/api/v3/klines", {"startTime": ms(0)}, [Reply("klines-p1.json")]),
            ("/api/v3/klines", {"startTime": ms(3)}, [Reply("klines-p2-overlap.json")]),
            ("/api/v3/klines", {"startTime": ms(5)}, [Reply("klines-p3-open.json")]),
        ],
        page_limit=3,
        paged_times=hours(0, 1, 2, 3, 4),
    ),
    "coinbase": Case(
        symbol="BTC/USD",
        path="/products/BTC-USD/candles",
        window=(T0, T0 + 3 * H),
        page="candles-p1.json",
        rows=3,
        error=("error-not-found.json", 404, "NotFound"),
        rate_limited="error-rate-limit.json",
        unavailable="error-internal.json",
        bad_numbers="candles-bad-numbers.json",
        missing_fields="candles-missing-fields.json",
        truncated="candles-truncated.json",
        empty=[("/products/BTC-USD/candles", {}, [Reply("candles-empty.json")])],
        pages=[
            ("/products/BTC-USD/candles", {"start": "2024-03-01T00:00:00Z"}, [Reply("candles-p1.json")]),
            ("/products/BTC-USD/candles", {"start": "2024-03-01T03:00:00Z"}, [Reply("candles-p2.json")]),
        ],
        page_limit=3,
        paged_times=hours(0, 1, 2, 3),  # 04:00 had no trades, 05:00 is open
    ),
    "kraken": Case(
        symbol="BTC/USD",
        path="/0/public/OHLC",
        window=(T0 + 3 * H, T0 + 5 * H),
        page="ohlc.json",
        rows=2,
        error=("error-unknown-pair.json", 200, "EQuery:Unknown asset pair"),
        rate_limited="error-rate-limit.json",
        unavailable="error-unavailable.json",
        bad_numbers="ohlc-bad-numbers.json",
        missing_fields="ohlc-missing-fields.json",
        truncated="ohlc-truncated.json",
        empty=[
            ("/0/public/OHLC", {}, [Reply("ohlc-open-only.json")]),
            ("/0/public/Trades", {}, [Reply("trades-empty.json")]),
        ],
        pages=[
            ("/0/public/OHLC", {}, [Reply("ohlc.json")]),
            ("/0/public/Trades", {"since": "1709251200000000000"}, [Reply("trades-p1.json")]),
            ("/0/public/Trades", {"since": "1709256611904516829"}, [Reply("trades-p2.json")]),
        ],
        page_limit=None,
        paged_times=hours(0, 1, 2, 3, 4),
    ),
}
EXCHANGES = list(CASES)


def one_page(case: Case, *replies: Reply) -> list[Route]:
    return [(case.path, {}, list(replies))]
