"""Seeded, reproducible offline market simulator: the default source of raw trades and candles of any interval.

Every random number is keyed by ``(seed, component, name, block)`` and every path is
generated from a fixed ORIGIN (2024-01-01T00:00Z), so the trades of hour ``h`` depend only on
``(seed, h)``: a window ``[start, end)`` is a slice of one infinite history, and an incremental
run sees exactly the trades and candles a full run would. Hour ``t`` counts from ORIGIN; prices
live on hour boundaries (boundary ``t`` = the instant ``ORIGIN + t h``).

Model (see docs/ingestion.md for the rationale)
-----------------------------------------------
* Efficient log-price per asset: ``p[t+1] = p[t] + r[t]``, ``r[t] = sigma[t] z[t]``, GARCH(1,1)
  variance ``sigma[t+1]^2 = omega + alpha r[t]^2 + beta sigma[t]^2`` (alpha 0.06, beta 0.92),
  ``z`` Student-t (4 dof, unit variance) with one mixing variable per hour shared by every asset.
  The normals behind ``z`` follow one market factor ``f``: ``n = b f + sqrt(1 - b^2) e`` with the
  asset's loading ``b`` and an idiosyncratic ``e`` of its own. BTC, ETH and SOL are calibrated
  (long-run hourly vol 0.55%, 0.70%, 0.90%; start 60k, 3k, 150; correlation 0.80, 0.70, 0.75,
  which is exactly one factor with loadings 0.86, 0.93, 0.81) and drawn jointly as they always
  were; ``f`` is their projection on the factor completed by a stream of its own, so any other
  asset correlates with them and with each other as the loadings say. An asset without
  calibrated parameters gets them from its name (:func:`asset_params`): the same name always
  simulates the same market, whichever other assets are in the universe.
* Exchange price at boundary t = exp(p[t] - lag x r[t-1] + basis[t] + pump overlay[t]): binance
  leads, coinbase (lag 0.10) and kraken (lag 0.20) take part of each hour's move one hour late
  (``lags=`` overrides them per exchange, e.g. ``{"kraken": 0.8}``, SENTINANCE_SIMULATOR_LAGS in
  the ingest flow; the random streams, trade ids and times and the labels do not depend on it);
  basis = constant venue premium (USDT on binance) + AR(1) ``b[t] = phi b[t-1] + e[t]``, phi 0.45,
  stationary std 12 bps: small cross-exchange spreads that mean-revert.
* Trades: hour t of a series has ``2 + Poisson(lambda[t])`` organic trades at uniform times;
  ``lambda`` = the venue's base rate (binance 40, coinbase 28, kraken 20 per hour) x intraday
  seasonality (sine over the hour of day, peak 14:00 UTC) x activity (0.5 + 0.6 |z[t]|) x
  (sigma[t]/long-run vol)^0.5 x pump volume multiplier. Prices follow a Brownian bridge (vol
  sigma[t]) from the boundary-t price (the first trade) to the boundary-(t+1) price (the last
  trade); sizes are lognormal shares of the hour's volume, venue x asset notional / price x
  the same seasonality and activity x lognormal noise; the taker side leans with the tick
  (buy on an uptick with probability 0.75). Each simulated trade stands for a bundle of prints
  (like an aggregated trade), which keeps history cheap.
* Candles of any interval of ``settings.INTERVAL_SECONDS`` aggregate the trades of each bucket exactly:
  open/close = first/last trade price, high/low = max/min trade price, volume = sum of sizes,
  trade_count = number of trades. An interval without trades has no candle (below an hour some
  buckets are empty); a daily candle aggregates its hours. Hourly, open(t) = close(t-1).
* Outages: per exchange, arrivals every ~25 days (exponential gaps), 1-6 hours each, during
  which that exchange has no trades and so no candles (gaps in every series of the exchange).
* Pump-and-dump: per asset, arrivals every ~60 days on one venue: the log-price overlay rises
  convexly to +5..10 long-run hourly vols over 3-6 hours with volume up to x4..10, then collapses
  to zero within 1-2 hours on dump volume; the other venues follow at 40% (arbitrage).
* Wash trading: per (exchange, asset), arrivals every ~30 days, 2-6 hours each: self-matched
  pairs (a buy and a sell of the same size at the price of the preceding organic trade, 0.2-8 s
  apart), 30-80% as many pairs per hour as the venue's base rate, sizes drawn from 2 round numbers
  (1, 2, 5 or 10 x a power of ten near the mean trade size) per episode. They add volume and
  trades but never move open, high, low or close.

:func:`simulate_labels` returns both kinds of episode (start_time/end_time are the open_time of
the first and last affected hourly candle, inclusive); :func:`simulate_trade_labels` lists every
wash trade by (exchange, symbol, trade_id) with its episode, so a detector can be scored per trade
and per episode.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache

import numpy as np
import pandas as pd
from scipy.signal import lfilter

from sentinance.catalog import CANDLE_COLUMNS, SIMULATOR_LABELS, SIMULATOR_TRADE_LABELS, TRADE_COLUMNS
from sentinance.errors import SettingsError
from sentinance.settings import Universe, interval_seconds

ORIGIN = pd.Timestamp("2024-01-01T00:00:00Z")
INTERVAL = "1h"  # the candles it produces unless asked for another interval
HOUR = pd.Timedelta(hours=1)
HOUR_US = 3_600_000_000
MINUTE_US = 60_000_000  # trades and labels take any bound on a whole minute (the finest interval)
BLOCK = 4096  # hours per random block; fixed so that streams never depend on the window
WEEK = 168  # hours per block of trades

# asset: (price at ORIGIN, long-run hourly vol, notional weight); others: asset_params(name)
ASSET_PARAMS: dict[str, tuple[float, float, float]] = {
    "BTC": (60_000.0, 0.0055, 1.0),
    "ETH": (3_000.0, 0.0070, 0.45),
    "SOL": (150.0, 0.0090, 0.2),
}
UNIVERSE = tuple(ASSET_PARAMS)  # the calibrated assets, drawn jointly from one stream
CORRELATION = np.array([[1.0, 0.80, 0.70], [0.80, 1.0, 0.75], [0.70, 0.75, 1.0]])
# CORRELATION is one factor exactly: corr(i, j) = b_i b_j, so b_i = sqrt(c_ij c_ik / c_jk)
LOADINGS = np.sqrt(
    [CORRELATION[i, j] * CORRELATION[i, k] / CORRELATION[j, k] for i, j, k in ((0, 1, 2), (1, 0, 2), (2, 0, 1))]
)
# the market factor's part spanned by the calibrated normals n: f = n . W + sqrt(1 - SPANNED) u
_FACTOR_WEIGHTS = np.linalg.solve(CORRELATION, LOADINGS)
_SPANNED = float(LOADINGS @ _FACTOR_WEIGHTS)
# exchange: (basis premium in bps, hourly notional in USD for weight 1, organic trades per hour, lag)
EXCHANGE_PARAMS: dict[str, tuple[float, float, float, float]] = {
    "binance": (2.0, 60e6, 40.0, 0.0),
    "coinbase": (0.0, 25e6, 28.0, 0.10),
    "kraken": (-1.5, 8e6, 20.0, 0.20),
}
T_DOF = 4.0
GARCH_ALPHA, GARCH_BETA = 0.06, 0.92
BASIS_PHI, BASIS_STD = 0.45, 12e-4
OUTAGE_MEAN_GAP_H, OUTAGE_MAX_H = 24 * 24, 6
PUMP_MEAN_GAP_H, PUMP_FOLLOW = 60 * 24, 0.4
WASH_MEAN_GAP_H = 30 * 24
MAX_TRADES_PER_HOUR = 2_000  # cap of the organic intensity; trade ids leave room for 10_000 per hour

# stream identifiers (component part of the random key)
_RETURNS, _BASIS, _CANDLE, _OUTAGE, _PUMP, _TRADES, _WASH, _MARKET = range(8)


@lru_cache(maxsize=256)
def asset_params(asset: str) -> tuple[float, float, float, float]:
    """(price at ORIGIN, long-run hourly vol, notional weight, market loading) of ``asset``.

    The calibrated assets have theirs; any other asset's come from its name alone (never the
    seed), so a name always simulates the same market: a price between 0.1 and 1,000, hourly
    vol 0.8-1.6% (more than BTC, like most altcoins), 1-15% of BTC's notional, loading 0.5-0.8.
    """
    if asset in ASSET_PARAMS:
        return (*ASSET_PARAMS[asset], float(LOADINGS[UNIVERSE.index(asset)]))
    rng = np.random.default_rng([zlib.crc32(asset.encode()), _MARKET])
    price, vol, weight, loading = rng.uniform([-1.0, 0.008, -2.0, 0.5], [3.0, 0.016, np.log10(0.15), 0.8])
    return float(round(10**price, 4)), float(vol), float(10**weight), float(loading)


@dataclass(frozen=True)
class _Episode:
    asset: str
    number: int
    start: int  # hour of the first affected candle
    venue: str
    amplitude: float  # peak log-price overlay on the venue
    up: int  # hours of run-up
    down: int  # hours of collapse
    volume_peak: float

    @property
    def hours(self) -> int:
        return self.up + self.down


@dataclass(frozen=True)
class _Wash:
    exchange: str
    asset: str
    number: int
    start: int  # hour of the first affected candle
    hours: int
    pairs: float  # mean self-matched pairs per hour
    sizes: tuple[float, ...]

    @property
    def episode_id(self) -> str:
        return f"wash-{self.exchange}-{self.asset}-{self.number:04d}"


@dataclass(frozen=True)
class _Trades:
    """One series' trades over consecutive hours: per-hour counts, then one entry per trade."""

    hours: np.ndarray  # hour index of each non-empty hour
    counts: np.ndarray  # trades per hour (>= 2)
    time_us: np.ndarray  # microseconds since ORIGIN, sorted
    price: np.ndarray
    size: np.ndarray
    buy: np.ndarray  # taker side is buy
    wash: np.ndarray  # episode number of a wash trade, 0 if organic

    @property
    def starts(self) -> np.ndarray:
        return (np.cumsum(self.counts) - self.counts).astype(np.int64)  # empty when there are no hours

    def select(self, keep: np.ndarray) -> _Trades:
        """The hours where ``keep`` (per hour) holds."""
        per_trade = np.repeat(keep, self.counts)
        return _Trades(
            self.hours[keep],
            self.counts[keep],
            self.time_us[per_trade],
            self.price[per_trade],
            self.size[per_trade],
            self.buy[per_trade],
            self.wash[per_trade],
        )


def _key(seed: int, component: int, *names: str) -> list[int]:
    return [seed, component, *(zlib.crc32(n.encode()) for n in names)]


def _blocks(key: list[int], lo: int, hi: int, draw: Callable[[np.random.Generator, int], np.ndarray]) -> np.ndarray:
    """Rows ``[lo, hi)`` of a stream made of fixed-size blocks, each drawn from its own generator."""
    first, last = lo // BLOCK, max(lo, hi - 1) // BLOCK
    parts = [draw(np.random.default_rng([*key, b]), BLOCK) for b in range(first, last + 1)]
    return np.concatenate(parts)[lo - first * BLOCK : hi - first * BLOCK]


def _normals(columns: int) -> Callable[[np.random.Generator, int], np.ndarray]:
    return lambda rng, size: rng.standard_normal((size, columns))


def _arrivals(
    key: list[int],
    horizon: int,
    mean_gap: float,
    min_gap: int,
    params: Callable[[np.random.Generator, int], dict[str, np.ndarray]],
) -> list[tuple[int, dict]]:
    """Poisson-like event hours in ``[0, horizon)`` with per-event parameters, prefix-stable."""
    rng = np.random.default_rng(key)
    events: list[tuple[int, dict]] = []
    hour = 0
    while hour < horizon:
        gaps = min_gap + rng.exponential(mean_gap, 32).astype(int)
        drawn = params(rng, 32)
        for i, gap in enumerate(gaps):
            hour += int(gap)
            if hour >= horizon:
                break
            events.append((hour, {k: v[i] for k, v in drawn.items()}))
    return events


def _offset_us(ts: datetime, name: str, step_us: int, grid: str) -> int:
    """Microseconds from ORIGIN to the bound ``ts``, which must be UTC-aware and on the ``grid``."""
    stamp = pd.Timestamp(ts)
    if stamp.tzinfo is None:
        raise SettingsError(f"{name} must be timezone-aware (UTC), got {ts!r}")
    offset_ns = stamp.tz_convert("UTC").value - ORIGIN.value
    if offset_ns % (step_us * 1000):
        raise SettingsError(f"{name} must be aligned to {grid}, got {ts!r}")
    if offset_ns < 0:
        raise SettingsError(f"{name} must not precede the simulator origin {ORIGIN}, got {ts!r}")
    return offset_ns // 1000


@lru_cache(maxsize=8)
def _market(seed: int, horizon: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Hours 0..horizon-1: the calibrated assets' correlated normals, the Student-t mixing variable
    every asset shares, and the market factor ``f`` (unit variance, corr(n_i, f) = LOADINGS[i])."""
    chol = np.linalg.cholesky(CORRELATION)
    dims = len(UNIVERSE)

    def draw(rng: np.random.Generator, size: int) -> np.ndarray:
        normal = rng.standard_normal((size, dims)) @ chol.T
        return np.hstack([normal, rng.chisquare(T_DOF, (size, 1))])

    drawn = _blocks(_key(seed, _RETURNS), 0, horizon, draw)
    normal, mixing = drawn[:, :dims], drawn[:, dims:]
    rest = _blocks(_key(seed, _MARKET), 0, horizon, _normals(1))[:, 0]
    factor = normal @ _FACTOR_WEIGHTS + np.sqrt(1 - _SPANNED) * rest
    return normal, mixing, factor


@lru_cache(maxsize=64)
def _efficient_path(seed: int, asset: str, horizon: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One asset's log-prices at boundaries 0..horizon, hourly vols and standardised shocks."""
    normal, mixing, factor = _market(seed, horizon)
    price, long_vol, _, loading = asset_params(asset)
    if asset in UNIVERSE:
        normal = normal[:, UNIVERSE.index(asset)]
    else:
        own = _blocks(_key(seed, _RETURNS, asset), 0, horizon, _normals(1))[:, 0]
        normal = loading * factor + np.sqrt(1 - loading**2) * own
    shocks = normal / np.sqrt(mixing[:, 0] / T_DOF) * np.sqrt((T_DOF - 2) / T_DOF)
    long_run = long_vol * long_vol  # as numpy squares: the calibrated paths stay bit for bit
    omega = long_run * (1 - GARCH_ALPHA - GARCH_BETA)
    variance = np.empty(horizon)
    current = long_run
    for t, gain in enumerate((GARCH_ALPHA * shocks**2 + GARCH_BETA).tolist()):
        variance[t] = current
        current = omega + gain * current
    sigma = np.sqrt(variance)
    start = np.log(price)
    log_price = np.r_[start, start + np.cumsum(sigma * shocks)]
    return log_price, sigma, shocks


def _episodes(seed: int, asset: str, horizon: int) -> list[_Episode]:
    vol = asset_params(asset)[1]

    def params(rng: np.random.Generator, size: int) -> dict[str, np.ndarray]:
        return {
            "venue": rng.integers(0, len(EXCHANGE_PARAMS), size),
            "amplitude": rng.uniform(5, 10, size) * vol,
            "up": rng.integers(3, 7, size),
            "down": rng.integers(1, 3, size),
            "volume_peak": rng.uniform(4, 10, size),
        }

    venues = list(EXCHANGE_PARAMS)
    events = _arrivals(_key(seed, _PUMP, asset), horizon, PUMP_MEAN_GAP_H, 72, params)
    return [
        _Episode(
            asset,
            i + 1,
            hour,
            venues[p["venue"]],
            float(p["amplitude"]),
            int(p["up"]),
            int(p["down"]),
            float(p["volume_peak"]),
        )
        for i, (hour, p) in enumerate(events)
    ]


def _wash_episodes(seed: int, exchange: str, asset: str, horizon: int) -> list[_Wash]:
    price, _, weight, _ = asset_params(asset)
    _, notional_usd, rate, _ = EXCHANGE_PARAMS[exchange]
    unit = 10.0 ** np.floor(np.log10(notional_usd * weight / rate / price))  # near the mean trade size

    def params(rng: np.random.Generator, size: int) -> dict[str, np.ndarray]:
        return {
            "hours": rng.integers(2, 7, size),
            "pairs": rng.uniform(0.3, 0.8, size) * rate,
            "sizes": np.array([rng.choice([1.0, 2.0, 5.0, 10.0], 2, replace=False) for _ in range(size)]),
        }

    events = _arrivals(_key(seed, _WASH, exchange, asset), horizon, WASH_MEAN_GAP_H, 72, params)
    return [
        _Wash(
            exchange, asset, i + 1, hour, int(p["hours"]), float(p["pairs"]), tuple(float(k * unit) for k in p["sizes"])
        )
        for i, (hour, p) in enumerate(events)
    ]


def _outage_hours(seed: int, exchange: str, horizon: int) -> np.ndarray:
    def params(rng: np.random.Generator, size: int) -> dict[str, np.ndarray]:
        return {"hours": rng.integers(1, OUTAGE_MAX_H + 1, size)}

    events = _arrivals(_key(seed, _OUTAGE, exchange), horizon, OUTAGE_MEAN_GAP_H, 24, params)
    hours = [np.arange(hour, hour + int(p["hours"])) for hour, p in events]
    return np.concatenate(hours) if hours else np.empty(0, dtype=int)


def _pump_overlay(episodes: list[_Episode], exchange: str, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
    """Log-price overlay at boundaries lo..hi and volume multiplier for hours lo..hi-1."""
    price = np.zeros(hi - lo + 1)
    volume = np.ones(hi - lo)
    for ep in episodes:
        if ep.start > hi or ep.start + ep.hours < lo:
            continue
        follow = 1.0 if ep.venue == exchange else PUMP_FOLLOW
        j = np.arange(ep.hours + 1)
        shape = np.where(j <= ep.up, (j / ep.up) ** 2, 1 - (j - ep.up) / ep.down)
        candle = np.where(j[:-1] < ep.up, 0.3 + 0.7 * (j[:-1] + 1) / ep.up, 1.3)
        boundaries, hours = ep.start + j, ep.start + j[:-1]
        keep_b, keep_h = (boundaries >= lo) & (boundaries <= hi), (hours >= lo) & (hours < hi)
        price[boundaries[keep_b] - lo] += follow * ep.amplitude * shape[keep_b]
        volume[hours[keep_h] - lo] *= 1 + follow * (ep.volume_peak - 1) * candle[keep_h]
    return price, volume


def _check_exchanges(exchanges: Iterable[str]) -> None:
    unknown = sorted(set(exchanges) - set(EXCHANGE_PARAMS))
    if unknown:
        raise SettingsError(
            f"the simulator has no parameters for {unknown}: it simulates exchanges "
            f"{', '.join(EXCHANGE_PARAMS)} (and any asset)"
        )


def _selected(universe: Universe | None, exchanges: Sequence[str] | None, assets: Sequence[str] | None) -> Universe:
    """The series to simulate: ``exchanges`` and ``assets`` of ``universe`` (default: the default universe)."""
    chosen = (universe or Universe()).select(exchanges=exchanges, assets=assets)
    _check_exchanges(chosen.exchanges)
    return chosen


def _window(start: datetime, end: datetime, step_us: int = MINUTE_US, grid: str = "a whole minute") -> tuple[int, int]:
    """``[start, end)`` in microseconds from ORIGIN, both bounds on the grid of ``step_us``."""
    return _offset_us(start, "start", step_us, grid), _offset_us(end, "end", step_us, grid)


def _hours(lo_us: int, hi_us: int) -> tuple[int, int]:
    """The hours ``[lo, hi)`` that hold the instants ``[lo_us, hi_us)``."""
    return lo_us // HOUR_US, -(-hi_us // HOUR_US)


def _lags(overrides: Mapping[str, float] | None) -> dict[str, float]:
    """Every exchange's lag: EXCHANGE_PARAMS' unless ``overrides`` sets it (each in [0, 1))."""
    lags = {exchange: params[3] for exchange, params in EXCHANGE_PARAMS.items()}
    for exchange, lag in (overrides or {}).items():
        _check_exchanges([exchange])
        if not 0 <= lag < 1:
            raise SettingsError(f"the lag of {exchange} must be in [0, 1), got {lag}")
        lags[exchange] = float(lag)
    return lags


def _organic(
    rng: np.random.Generator,
    hours: np.ndarray,
    log_price: np.ndarray,
    sigma: np.ndarray,
    rate: np.ndarray,
    volume: np.ndarray,
) -> _Trades:
    """Organic trades of consecutive ``hours`` (log_price at their boundaries, one more than hours)."""
    counts = 2 + rng.poisson(np.minimum(rate, MAX_TRADES_PER_HOUR))
    n = int(counts.sum())
    local = np.repeat(np.arange(len(hours)), counts)
    starts = np.r_[0, np.cumsum(counts)[:-1]]
    ends = starts + counts - 1
    offset = np.sort(local + rng.random(n)) - local  # sorted uniform times within each hour
    offset_us = np.floor(offset * HOUR_US).astype(np.int64)
    t = offset_us / HOUR_US
    dt = np.diff(t, prepend=0.0)
    dt[starts] = 0.0
    path = np.cumsum(np.sqrt(dt) * rng.standard_normal(n))  # Brownian motion in hours
    first, last = t[starts], t[ends]
    span = np.repeat(last - first, counts)
    frac = np.divide(t - np.repeat(first, counts), span, out=np.zeros(n), where=span > 0)
    bridge = path - np.repeat(path[starts], counts) - frac * np.repeat(path[ends] - path[starts], counts)
    lp_open, lp_close = log_price[:-1], log_price[1:]
    log_trade = (
        np.repeat(lp_open, counts) + frac * np.repeat(lp_close - lp_open, counts) + np.repeat(sigma, counts) * bridge
    )
    price = np.exp(log_trade).round(4)
    price[starts], price[ends] = np.exp(lp_open).round(4), np.exp(lp_close).round(4)
    tick = np.sign(np.diff(log_trade, prepend=log_trade[0]))
    buy = rng.random(n) < 0.5 + 0.25 * tick
    weights = rng.lognormal(0.0, 0.9, n)
    share = weights / np.repeat(np.add.reduceat(weights, starts), counts)
    size = np.maximum((np.repeat(volume, counts) * share).round(6), 1e-6)
    return _Trades(
        hours, counts, np.repeat(hours, counts) * HOUR_US + offset_us, price, size, buy, np.zeros(n, dtype=np.int64)
    )


def _with_wash(trades: _Trades, episodes: list[_Wash], key: list[int]) -> _Trades:
    """Insert self-matched pairs in the hours of wash episodes; prices of organic trades are reused."""
    extra: list[tuple[np.ndarray, ...]] = []
    starts = trades.starts
    for ep in episodes:
        for hour in range(ep.start, ep.start + ep.hours):
            at = np.searchsorted(trades.hours, hour)
            if at == len(trades.hours) or trades.hours[at] != hour:
                continue
            first, count = starts[at], trades.counts[at]
            times = trades.time_us[first : first + count]
            lo, hi = times[0] + 1_000_000, times[-1] - 10_000_000
            rng = np.random.default_rng([*key, ep.number, hour])
            pairs = rng.poisson(ep.pairs)
            if hi <= lo or pairs == 0:
                continue
            leg = np.sort(rng.integers(lo, hi, pairs))
            gap = rng.integers(200_000, 8_000_000, pairs)
            price = trades.price[first + np.searchsorted(times, leg, side="right") - 1]
            size = rng.choice(ep.sizes, pairs)
            buy = rng.random(pairs) < 0.5
            extra.append(
                (
                    np.r_[leg, leg + gap],
                    np.r_[price, price],
                    np.r_[size, size],
                    np.r_[buy, ~buy],
                    np.full(2 * pairs, ep.number),
                )
            )
    if not extra:
        return trades
    time_us, price, size, buy, wash = (
        np.concatenate([getattr(trades, f), *(e[i] for e in extra)])
        for i, f in enumerate(["time_us", "price", "size", "buy", "wash"])
    )
    order = np.argsort(time_us, kind="stable")
    hour_of = time_us[order] // HOUR_US
    hours, counts = np.unique(hour_of, return_counts=True)
    return _Trades(hours, counts, time_us[order], price[order], size[order], buy[order], wash[order])


def _series_trades(seed: int, exchange: str, asset: str, lo: int, hi: int, lag: float) -> _Trades:
    """Trades of one series in hours ``[lo, hi)``, generated by whole weeks, outage hours removed."""
    w0, w1 = lo // WEEK, (hi - 1) // WEEK + 1
    a, b = w0 * WEEK, w1 * WEEK
    log_price, sigma, shocks = _efficient_path(seed, asset, b)
    premium, notional_usd, rate, _ = EXCHANGE_PARAMS[exchange]
    _, long_vol, weight, _ = asset_params(asset)
    innovations = _blocks(_key(seed, _BASIS, exchange, asset), 0, b + 1, _normals(1))[:, 0]
    innovations[1:] *= np.sqrt(1 - BASIS_PHI**2)
    basis = premium * 1e-4 + BASIS_STD * lfilter([1.0], [1.0, -BASIS_PHI], innovations)
    overlay, pump_volume = _pump_overlay(_episodes(seed, asset, b), exchange, a, b)
    efficient = log_price[a : b + 1]
    previous = log_price[max(a - 1, 0) : b]
    late = lag * (efficient - (previous if a else np.r_[efficient[0], previous]))
    venue_log_price = efficient - late + basis[a : b + 1] + overlay
    hours = np.arange(a, b)
    s, z = sigma[a:b], shocks[a:b]
    seasonality = 1 + 0.35 * np.sin(2 * np.pi * (hours % 24 - 8) / 24)
    activity = seasonality * (0.5 + 0.6 * np.abs(z)) * np.sqrt(s / long_vol) * pump_volume
    noise = _blocks(_key(seed, _CANDLE, exchange, asset), a, b, _normals(1))[:, 0]
    volume = notional_usd * weight * activity * np.exp(0.3 * noise - 0.045) / np.exp(venue_log_price[1:])
    washes = [ep for ep in _wash_episodes(seed, exchange, asset, b) if ep.start < b and ep.start + ep.hours > a]
    weeks = []
    for w in range(w0, w1):
        j = slice((w - w0) * WEEK, (w - w0 + 1) * WEEK)
        rng = np.random.default_rng([*_key(seed, _TRADES, exchange, asset), w])
        organic = _organic(rng, hours[j], venue_log_price[j.start : j.stop + 1], s[j], rate * activity[j], volume[j])
        weeks.append(_with_wash(organic, washes, _key(seed, _WASH, exchange, asset)))
    joined = _Trades(*(np.concatenate([getattr(t, f) for t in weeks]) for f in _Trades.__dataclass_fields__))
    online = ~np.isin(joined.hours, _outage_hours(seed, exchange, hi))
    return joined.select((joined.hours >= lo) & (joined.hours < hi) & online)


def _series(
    window: tuple[int, int], seed: int, universe: Universe, lags: Mapping[str, float] | None
) -> Iterator[tuple[str, str, _Trades, np.ndarray]]:
    """Per series: the trades of the whole hours holding ``window`` (microseconds from ORIGIN),
    and which of them fall inside it."""
    lo, hi = _hours(*window)
    lag = _lags(lags)
    if window[1] <= window[0]:
        return
    for exchange in universe.exchanges:
        for asset in universe.assets:
            trades = _series_trades(seed, exchange, asset, lo, hi, lag[exchange])
            yield exchange, asset, trades, (trades.time_us >= window[0]) & (trades.time_us < window[1])


def _trade_frame(
    start: datetime, end: datetime, seed: int, universe: Universe, lags: Mapping[str, float] | None = None
) -> pd.DataFrame:
    """TRADE_COLUMNS plus ``wash``: the episode_id of a wash trade, None for an organic one."""
    frames = []
    for exchange, asset, tr, inside in _series(_window(start, end), seed, universe, lags):
        rank = np.arange(len(tr.time_us)) - np.repeat(tr.starts, tr.counts)  # in the whole hour
        ids = pd.Series(np.repeat(tr.hours, tr.counts)[inside] * 10_000 + rank[inside]).astype(str).str.zfill(10)
        horizon = int(tr.hours.max(initial=0)) + 1
        episodes = {ep.number: ep.episode_id for ep in _wash_episodes(seed, exchange, asset, horizon)}
        frames.append(
            pd.DataFrame(
                {
                    "exchange": exchange,
                    "symbol": universe.symbol(exchange, asset),
                    "trade_id": ids.to_numpy(dtype=object),
                    "trade_time": ORIGIN + pd.to_timedelta(tr.time_us[inside], unit="us"),
                    "price": tr.price[inside],
                    "size": tr.size[inside],
                    "side": np.where(tr.buy[inside], "buy", "sell").astype(object),
                    "wash": pd.Series(tr.wash[inside]).map(episodes).to_numpy(dtype=object),
                }
            )
        )
    if not frames:
        return pd.DataFrame(columns=[*TRADE_COLUMNS, "wash"])
    return pd.concat(frames, ignore_index=True)


def simulate_trades(
    start: datetime,
    end: datetime,
    *,
    seed: int,
    exchanges: Sequence[str] | None = None,
    assets: Sequence[str] | None = None,
    universe: Universe | None = None,
    lags: Mapping[str, float] | None = None,
) -> pd.DataFrame:
    """Raw trades with trade_time in ``[start, end)`` (UTC, bounds on a whole minute), outages excluded.

    trade_id is the hour since ORIGIN (6 digits) and the trade's rank in that hour (4 digits), so
    ids sort like times and never depend on the window. ``lags`` overrides the lag of some
    exchanges (the share of each hour's move they take one hour late; None: EXCHANGE_PARAMS').
    """
    return _trade_frame(start, end, seed, _selected(universe, exchanges, assets), lags)[TRADE_COLUMNS]


def simulate_candles(
    start: datetime,
    end: datetime,
    *,
    seed: int,
    exchanges: Sequence[str] | None = None,
    assets: Sequence[str] | None = None,
    universe: Universe | None = None,
    lags: Mapping[str, float] | None = None,
    interval: str = INTERVAL,
) -> pd.DataFrame:
    """Candles of ``interval`` with open_time in ``[start, end)`` (bounds on the interval's grid):
    exactly the aggregation of :func:`simulate_trades` per interval; no trades, no candle."""
    chosen = _selected(universe, exchanges, assets)
    step_us = interval_seconds(interval) * 1_000_000
    frames = []
    for exchange, asset, tr, inside in _series(_window(start, end, step_us, interval), seed, chosen, lags):
        time_us, price = tr.time_us[inside], tr.price[inside]
        if not time_us.size:  # the whole window is an outage of this exchange: no trades, no candles
            continue
        bucket = time_us // step_us
        starts = np.flatnonzero(np.diff(bucket, prepend=-1))
        counts = np.diff(np.append(starts, len(bucket)))
        frames.append(
            pd.DataFrame(
                {
                    "exchange": exchange,
                    "symbol": chosen.symbol(exchange, asset),
                    "interval": interval,
                    "open_time": ORIGIN + pd.to_timedelta(bucket[starts] * step_us, unit="us"),
                    "open": price[starts],
                    "high": np.maximum.reduceat(price, starts),
                    "low": np.minimum.reduceat(price, starts),
                    "close": price[starts + counts - 1],
                    "volume": np.add.reduceat(tr.size[inside], starts).round(6),
                    "trade_count": counts.astype(np.int64),
                }
            )
        )
    if not frames:
        return pd.DataFrame(columns=CANDLE_COLUMNS)
    return pd.concat(frames, ignore_index=True)


def simulate_labels(
    start: datetime,
    end: datetime,
    *,
    seed: int,
    exchanges: Sequence[str] | None = None,
    assets: Sequence[str] | None = None,
    universe: Universe | None = None,
) -> pd.DataFrame:
    """Pump-and-dump (on their venue) and wash-trading episodes whose candles overlap ``[start, end)``."""
    chosen = _selected(universe, exchanges, assets)
    lo, hi = _hours(*_window(start, end))
    pumps = [
        (f"pump-{ep.asset}-{ep.number:04d}", "pump_and_dump", ep.venue, ep.asset, ep.start, ep.hours)
        for asset in chosen.assets
        for ep in _episodes(seed, asset, hi)
        if ep.venue in chosen.exchanges
    ]
    washes = [
        (ep.episode_id, "wash_trading", exchange, asset, ep.start, ep.hours)
        for exchange in chosen.exchanges
        for asset in chosen.assets
        for ep in _wash_episodes(seed, exchange, asset, hi)
    ]
    rows = [
        {
            "episode_id": episode_id,
            "kind": kind,
            "exchange": exchange,
            "symbol": chosen.symbol(exchange, asset),
            "start_time": ORIGIN + first * HOUR,
            "end_time": ORIGIN + (first + hours - 1) * HOUR,
        }
        for episode_id, kind, exchange, asset, first, hours in [*pumps, *washes]
        if first + hours > lo
    ]
    return pd.DataFrame(rows, columns=SIMULATOR_LABELS.schema.names).sort_values(
        ["start_time", "episode_id"], ignore_index=True
    )


def simulate_trade_labels(
    start: datetime,
    end: datetime,
    *,
    seed: int,
    exchanges: Sequence[str] | None = None,
    assets: Sequence[str] | None = None,
    universe: Universe | None = None,
) -> pd.DataFrame:
    """Every wash trade with trade_time in ``[start, end)``: its key in bronze/trades and its episode_id."""
    trades = _trade_frame(start, end, seed, _selected(universe, exchanges, assets))
    wash = trades[trades["wash"].notna()]
    return wash.assign(episode_id=wash["wash"], kind="wash_trading")[SIMULATOR_TRADE_LABELS.schema.names].reset_index(
        drop=True
    )
