"""Binance's public data archives (``SENTINANCE_BINANCE_ARCHIVE_URL``, default data.binance.vision): years of
spot klines and aggregate trades as monthly and daily zip files, for the ``bulk`` backfill.

Layout (binance/binance-public-data)::

    data/spot/monthly/klines/<SYMBOL>/<interval>/<SYMBOL>-<interval>-<YYYY>-<MM>.zip
    data/spot/daily/klines/<SYMBOL>/<interval>/<SYMBOL>-<interval>-<YYYY>-<MM>-<DD>.zip
    data/spot/monthly/aggTrades/<SYMBOL>/<SYMBOL>-aggTrades-<YYYY>-<MM>.zip   (and daily alike)

Each zip holds one header-less CSV and has a ``.CHECKSUM`` beside it (``sha256sum`` output). A
window takes the monthly file of every month it covers whole and the daily files of the rest.
Klines have the columns of ``/api/v3/klines``; aggTrades ``agg_trade_id, price, quantity,
first_trade_id, last_trade_id, transact_time, is_buyer_maker, is_best_match``. Spot timestamps are
milliseconds until 2024 and **microseconds from 2025-01-01**: both are read to the same instants.
"""

from __future__ import annotations

import hashlib
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pandas as pd
import requests

from sentinance.catalog import CANDLE_COLUMNS, OPTIONAL_CANDLE_COLUMNS, TRADE_COLUMNS
from sentinance.errors import SentinanceError, TransientError

KLINES = [
    "open_time",
    "open",
    "high",
    "low",
    "close",
    "volume",
    "close_time",
    "quote_volume",
    "trade_count",
    "taker_buy_volume",
    "taker_buy_quote_volume",
    "ignore",
]
AGG_TRADES = ["trade_id", "price", "size", "first_trade_id", "last_trade_id", "trade_time", "is_buyer_maker", "best"]
EXCHANGE = "binance"  # whose archives these are: the universe's exchange of that name
MICROSECONDS_FROM = 10**14  # an epoch value above this is in µs (ms values stay below it until the year 5138)
CHUNK_ROWS = 500_000  # rows landed at a time: a month of BTC aggTrades is tens of millions
TIMEOUT = (10, 120)  # connect, read (seconds)


class ArchiveCorrupt(SentinanceError):
    """A downloaded archive does not match its ``.CHECKSUM``: nothing of it is landed."""


class ArchiveMissing(SentinanceError):
    """The archive has no such file (not published yet, or no such symbol)."""


@dataclass(frozen=True)
class ArchiveFile:
    """One zip of the archive: klines of a symbol and interval, or its aggTrades, for a month or a day."""

    kind: Literal["klines", "aggTrades"]
    symbol: str  # canonical, BTC/USDT
    interval: str | None  # klines only
    period: Literal["monthly", "daily"]
    first: pd.Timestamp  # the first day it covers (UTC midnight)

    @property
    def market(self) -> str:
        return self.symbol.replace("/", "")

    @property
    def path(self) -> str:
        stamp = self.first.strftime("%Y-%m" if self.period == "monthly" else "%Y-%m-%d")
        series = f"{self.market}/{self.interval}" if self.kind == "klines" else self.market
        name = f"{self.market}-{self.interval if self.kind == 'klines' else 'aggTrades'}-{stamp}.zip"
        return f"data/spot/{self.period}/{self.kind}/{series}/{name}"

    @property
    def end(self) -> pd.Timestamp:
        return self.first + (pd.offsets.MonthBegin(1) if self.period == "monthly" else pd.Timedelta(days=1))


def plan_files(
    symbols: list[str],
    intervals: list[str],
    trades: bool,
    start: pd.Timestamp,
    end: pd.Timestamp,
    today: pd.Timestamp,
) -> list[ArchiveFile]:
    """The files of ``[start, end)`` (whole days, before ``today``): monthly for whole months, else daily."""
    first, last = start.floor("D"), min(end.ceil("D"), today.floor("D"))
    periods: list[tuple[Literal["monthly", "daily"], pd.Timestamp]] = []
    day = first
    while day < last:
        month_end = day + pd.offsets.MonthBegin(1)
        if day.day == 1 and month_end <= last:
            periods.append(("monthly", day))
            day = month_end
        else:
            periods.append(("daily", day))
            day += pd.Timedelta(days=1)
    kinds = [("klines", i) for i in intervals] + ([("aggTrades", None)] if trades else [])
    return [
        ArchiveFile(kind, symbol, interval, period, when)  # type: ignore[arg-type]
        for symbol in symbols
        for kind, interval in kinds
        for period, when in periods
    ]


def download(base_url: str, file: ArchiveFile, folder: Path) -> Path:
    """The zip, verified against its ``.CHECKSUM`` (sha256), in ``folder``; one-line errors otherwise."""
    url = f"{base_url.rstrip('/')}/{file.path}"
    checksum = _get(f"{url}.CHECKSUM", file).decode().split()
    target = folder / file.path
    target.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    with requests.get(url, stream=True, timeout=TIMEOUT) as response:
        _check(response, url, file)
        with target.open("wb") as out:
            for block in response.iter_content(1 << 20):
                digest.update(block)
                out.write(block)
    if not checksum or digest.hexdigest() != checksum[0].lower():
        target.unlink()
        raise ArchiveCorrupt(f"{file.path}: sha256 {digest.hexdigest()} does not match its .CHECKSUM ({url}.CHECKSUM)")
    return target


def _get(url: str, file: ArchiveFile) -> bytes:
    try:
        response = requests.get(url, timeout=TIMEOUT)
    except requests.RequestException as exc:
        raise TransientError(f"{url}: {type(exc).__name__}: {exc}") from None
    _check(response, url, file)
    return response.content


def _check(response: requests.Response, url: str, file: ArchiveFile) -> None:
    if response.status_code == 404:
        raise ArchiveMissing(f"{file.path}: not in the archive ({url} answered 404)")
    if response.status_code >= 500 or response.status_code == 429:
        raise TransientError(f"{url}: HTTP {response.status_code}")
    if response.status_code >= 400:
        raise SentinanceError(f"{url}: HTTP {response.status_code}")


def _instants(values: pd.Series) -> pd.Series:
    """Epoch ms (until 2024) or µs (from 2025) -> UTC timestamps."""
    numbers = values.astype("int64")
    micros = numbers.where(numbers >= MICROSECONDS_FROM, numbers * 1000)
    return pd.to_datetime(micros, unit="us", utc=True)


def read(file: ArchiveFile, path: Path, chunk_rows: int = CHUNK_ROWS) -> Iterator[pd.DataFrame]:
    """The zip's rows as raw bronze records (candles or trades), ``chunk_rows`` at a time."""
    with zipfile.ZipFile(path) as archive:
        (member,) = archive.namelist()
        with archive.open(member) as csv:
            columns = KLINES if file.kind == "klines" else AGG_TRADES
            for chunk in pd.read_csv(csv, header=None, names=columns, chunksize=chunk_rows):
                yield _candles(chunk, file) if file.kind == "klines" else _trades(chunk, file)


def _candles(chunk: pd.DataFrame, file: ArchiveFile) -> pd.DataFrame:
    frame = chunk.assign(exchange=EXCHANGE, symbol=file.symbol, interval=file.interval)
    frame["open_time"] = _instants(frame["open_time"])
    return frame[[*CANDLE_COLUMNS, *OPTIONAL_CANDLE_COLUMNS]]


def _trades(chunk: pd.DataFrame, file: ArchiveFile) -> pd.DataFrame:
    frame = chunk.assign(exchange=EXCHANGE, symbol=file.symbol)
    frame["trade_id"] = frame["trade_id"].astype("int64").astype(str)
    frame["trade_time"] = _instants(frame["trade_time"])
    buyer_maker = frame["is_buyer_maker"].astype(str).str.lower() == "true"
    frame["side"] = buyer_maker.map({True: "sell", False: "buy"})  # the taker sold into a resting buy
    return frame[TRADE_COLUMNS]
