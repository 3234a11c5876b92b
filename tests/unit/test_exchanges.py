"""Exchange access without a flow: the shared limiter and its bans on a fake clock, exchange names and
intervals against ccxt, and capture/replay of recorded responses (tests/fixtures/exchanges/)."""

from __future__ import annotations

import json
from email.utils import formatdate
from pathlib import Path

import pandas as pd
import pytest
from support.exchanges import ERRORS, RECORDED_AT, UNIVERSE, upstream

from sentinance.errors import MissingInputError, SettingsError
from sentinance.pipelines.flows.retry import transient
from sentinance.pipelines.sources.exchanges.candles import fetch_candles
from sentinance.pipelines.sources.exchanges.errors import ExchangeBanned, ExchangeError
from sentinance.pipelines.sources.exchanges.limits import Ban, BanBook, Limiter, retry_after
from sentinance.pipelines.sources.exchanges.trades import fetch_trades
from sentinance.pipelines.sources.exchanges.venues import Venue, check_exchange, timeframe

BINANCE_WEIGHT = {"budget": 6000, "weight_per_cost": 5.0, "header": "X-MBX-USED-WEIGHT-1M"}


class FakeClock:
    """Injected clock and sleep: sleeping advances time and is recorded."""

    def __init__(self, now: float = 1_000.0) -> None:
        self.now, self.sleeps = now, []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def _limiter(clock: FakeClock, **options) -> Limiter:
    return Limiter("binance", clock=clock, sleep=clock.sleep, wall=clock, **options)


def test_binance_weight_never_exceeds_6000_in_any_rolling_minute_from_the_first_request() -> None:
    """A bucket that starts full and refills in the same minute lets ~12,000 weight out in the first 60 s."""
    clock = FakeClock()
    limiter = _limiter(clock, spacing=0.0, **BINANCE_WEIGHT)
    sent = []
    for _ in range(6000):  # klines: ccxt cost 0.4 = weight 2; 12,000 weight asked for at once
        limiter.throttle(0.4)
        sent.append(clock.now)
    times = pd.Series(2.0, index=pd.to_datetime(sent, unit="s"))
    assert times.rolling("60s").sum().max() <= 6000
    assert times[times.index < pd.Timestamp(sent[0], unit="s") + pd.Timedelta(seconds=60)].sum() == 6000
    assert clock.now - sent[0] >= 60, "the second half waited for the first to leave the window"


def test_the_used_weight_header_raises_our_count() -> None:
    """Another process spent the budget: X-MBX-USED-WEIGHT-1M says so, and the next request waits."""
    clock = FakeClock()
    limiter = _limiter(clock, spacing=0.0, **BINANCE_WEIGHT)
    limiter.throttle(0.4)
    limiter.observe(200, {"X-MBX-USED-WEIGHT-1M": "5990"})
    limiter.throttle(4)  # exchangeInfo: weight 20 no longer fits this minute
    assert clock.sleeps and clock.sleeps[-1] == pytest.approx(60.0)


def test_requests_are_spaced_by_ccxt_cost_never_burst() -> None:
    clock = FakeClock()
    limiter = _limiter(clock, spacing=1.0)  # kraken: rateLimit 1000 ms, cost 1.2 per public call
    for _ in range(3):
        limiter.throttle(1.2)
    assert clock.sleeps == pytest.approx([1.2, 1.2]) and limiter.requests == 3


def test_a_ban_fails_every_request_until_it_ends_and_outlives_the_run(tmp_path: Path) -> None:
    clock = FakeClock()
    book = BanBook(tmp_path / "bans.json", clock=clock)
    limiter = _limiter(clock, spacing=0.0, book=book)
    ban = limiter.stop({"Retry-After": "120"}, "DDoSProtection: 418 I'm a teapot")
    assert ban.until == clock.now + 120
    with pytest.raises(ExchangeBanned, match=r"binance klines: banned until .* \(DDoSProtection: 418"):
        limiter.check("klines")
    later = _limiter(clock, spacing=0.0, book=BanBook(tmp_path / "bans.json", clock=clock))  # the next run
    with pytest.raises(ExchangeBanned):
        later.throttle(1)
    assert later.requests == 0
    clock.now += 121
    assert BanBook(tmp_path / "bans.json", clock=clock).active("binance") is None
    _limiter(clock, spacing=0.0, book=book).throttle(1)


def test_retry_after_in_seconds_or_as_a_date() -> None:
    now = 1_700_000_000.0
    assert retry_after({"Retry-After": "7"}, now) == 7
    assert retry_after({"Retry-After": formatdate(now + 90, usegmt=True)}, now) == pytest.approx(90)
    assert retry_after({}, now) is None and retry_after({"Retry-After": "soon"}, now) is None
    assert Ban("kraken", now, "x").until_utc == "2023-11-14T22:13:20+00:00"


def test_exchange_names_and_intervals_are_checked_against_ccxt() -> None:
    check_exchange("coinbaseexchange", trades=True)
    with pytest.raises(SettingsError, match="'nope' is not a ccxt exchange id"):
        check_exchange("nope", trades=False)
    with pytest.raises(SettingsError, match=r"exchange 'coinbaseexchange' serves candles of .*, not '4h'"):
        timeframe("coinbaseexchange", "4h")


def _venue(tmp_path: Path, name: str) -> Venue:
    return Venue(name, "live", capture_dir=tmp_path, upstream=upstream(), pace=False)


@pytest.mark.parametrize("exchange", ["binance", "coinbaseexchange", "kraken", "bybit", "okx"])
def test_candles_are_final_by_the_servers_date_not_the_local_clock(tmp_path: Path, exchange: str) -> None:
    """At the recorded Date (00:17:30) the 00:15 candle is open; the local clock (years later) would land it."""
    venue = _venue(tmp_path, exchange)
    symbol = "BTC/USDT" if exchange in ("binance", "bybit", "okx") else "BTC/USD"
    start, end = pd.Timestamp("2024-03-07T22:00Z"), pd.Timestamp("2024-03-08T00:15Z")
    frame = fetch_candles(venue, symbol, "5m", start, end)
    assert len(frame) == 27 and frame["open_time"].max() == end - pd.Timedelta(minutes=5)
    assert (frame["open_time"] + pd.Timedelta(minutes=5) <= RECORDED_AT).all()
    captured = [json.loads(p.read_text()) for p in (tmp_path / exchange).glob("*.meta.json")]
    assert {m["status"] for m in captured} == {200} and len(captured) == len(venue.requests)


def test_trades_are_unified_with_the_taker_side(tmp_path: Path) -> None:
    venue = _venue(tmp_path, "kraken")
    start, end = pd.Timestamp("2024-03-07T22:00Z"), pd.Timestamp("2024-03-08T00:17Z")
    trades = fetch_trades(venue, "BTC/USD", start, end)
    assert trades["trade_id"].is_unique and trades["side"].isin(["buy", "sell"]).all()
    assert (
        trades["trade_time"].between(start, end, inclusive="left").all()
        and trades["trade_time"].is_monotonic_increasing
    )


def test_replay_of_an_unrecorded_request_says_so_in_one_line(tmp_path: Path) -> None:
    venue = Venue("binance", "replay", replay_dirs=[UNIVERSE])
    with pytest.raises(MissingInputError, match=r"replay: no captured response for GET api.binance.com/api/v3/klines"):
        fetch_candles(venue, "BTC/USDT", "1h", pd.Timestamp("2020-01-01T00:00Z"), pd.Timestamp("2020-01-02T00:00Z"))


def test_a_server_error_is_transient_and_a_ban_is_not(tmp_path: Path) -> None:
    """A 5xx may pass (the task retries it); a throttle never is retried sooner than Retry-After."""
    venue = Venue("coinbaseexchange", "replay", replay_dirs=[ERRORS / "coinbaseexchange-500", UNIVERSE])
    with pytest.raises(ExchangeError, match="coinbaseexchange BTC/USD 1h candles: ExchangeNotAvailable") as failed:
        fetch_candles(venue, "BTC/USD", "1h", pd.Timestamp("2024-03-07T22:00Z"), pd.Timestamp("2024-03-08T00:00Z"))
    assert failed.value.transient and transient(None, None, _Failed(failed.value))
    banned = Venue("okx", "replay", replay_dirs=[ERRORS / "okx-50011", UNIVERSE])
    with pytest.raises(ExchangeBanned) as stopped:
        fetch_candles(banned, "BTC/USDT", "1h", pd.Timestamp("2024-03-07T22:00Z"), pd.Timestamp("2024-03-08T00:00Z"))
    assert not stopped.value.transient and not transient(None, None, _Failed(stopped.value))


class _Failed:
    """A failed task state, as Prefect hands it to a retry condition."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    def result(self, raise_on_failure: bool = True) -> Exception:
        return self.error


def test_kraken_pairs_quoted_in_crypto_use_krakens_own_keys() -> None:
    """ETH/BTC is Kraken's XETHXXBT (request and result key): ccxt's market map, not a rule of our own."""
    venue = Venue("kraken", "replay", replay_dirs=[ERRORS / "kraken-eth-btc", UNIVERSE])
    frame = fetch_candles(venue, "ETH/BTC", "1h", pd.Timestamp("2024-03-07T22:00Z"), pd.Timestamp("2024-03-08T00:00Z"))
    assert len(frame) == 2 and frame["symbol"].eq("ETH/BTC").all() and (frame["close"] < 0.1).all()
    assert any("pair=XETHXXBT" in key for key, _ in venue.requests)
