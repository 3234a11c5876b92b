"""Seeded, reproducible offline market simulator: the default source of raw hourly candles.

Every random number is keyed by ``(seed, component, name, block)`` and every path is
generated from a fixed ORIGIN (2024-01-01T00:00Z), so the candle of hour ``h`` depends
only on ``(seed, h)``: a window ``[start, end)`` is a slice of one infinite history, and an
incremental run sees exactly the candles a full run would. Hour ``t`` counts from ORIGIN;
prices live on hour boundaries (boundary ``t`` = the instant ``ORIGIN + t h``).

Model
-----
* Efficient log-price per asset: ``p[t+1] = p[t] + r[t]``, ``r[t] = sigma[t] z[t]``, GARCH(1,1)
  variance ``sigma[t+1]^2 = omega + alpha r[t]^2 + beta sigma[t]^2`` (alpha 0.06, beta 0.92;
  long-run hourly vol 0.55% BTC, 0.70% ETH, 0.90% SOL), ``z`` multivariate Student-t
  (4 dof, unit variance, correlation 0.70-0.80 across assets). Start: BTC 60k, ETH 3k, SOL 150.
* Exchange price = efficient price x exp(basis), basis = constant venue premium (USDT on
  binance) + AR(1) ``b[t] = phi b[t-1] + e[t]``, phi 0.45, stationary std 12 bps: small
  cross-exchange spreads that mean-revert (a real, learnable, predictable component).
* Candle of hour t: open = close of hour t-1 on the same exchange, close = price at boundary
  t+1, high/low extend max/min(open, close) by a half-normal intra-hour excursion ~ sigma[t].
* Volume (base units) = venue x asset notional / price x intraday seasonality (sine over the
  hour of day, peak 14:00 UTC) x (0.5 + 0.6 |z[t]|) x (sigma[t]/long-run vol)^0.5 x
  lognormal noise; trade_count = notional / venue's mean trade size x noise.
* Outages: per exchange, arrivals every ~25 days (exponential gaps), 1-6 hours each, during
  which that exchange publishes no candles (gaps in every series of the exchange).
* Pump-and-dump: per asset, arrivals every ~60 days on one venue: the log-price overlay rises
  convexly to +5..10 long-run hourly vols over 3-6 hours with volume up to x4..10, then collapses
  to zero within 1-2 hours on dump volume; the other venues follow at 40% (arbitrage).
  :func:`simulate_labels` returns them; start_time/end_time are the open_time of the first
  and last affected candle (inclusive).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Callable, Sequence

import numpy as np
import pandas as pd
from scipy.signal import lfilter

from sentinance.config import ASSETS, EXCHANGES, INTERVAL, canonical_symbol

ORIGIN = pd.Timestamp("2024-01-01T00:00:00Z")
HOUR = pd.Timedelta(hours=1)
BLOCK = 4096  # hours per random block; fixed so that streams never depend on the window

# asset: (price at ORIGIN, long-run hourly vol, notional weight)
ASSET_PARAMS: dict[str, tuple[float, float, float]] = {
    "BTC": (60_000.0, 0.0055, 1.0),
    "ETH": (3_000.0, 0.0070, 0.45),
    "SOL": (150.0, 0.0090, 0.2),
}
UNIVERSE = tuple(ASSET_PARAMS)
CORRELATION = np.array([[1.0, 0.80, 0.70], [0.80, 1.0, 0.75], [0.70, 0.75, 1.0]])
# exchange: (basis premium in bps, hourly notional in USD for weight 1, mean trade size in USD)
EXCHANGE_PARAMS: dict[str, tuple[float, float, float]] = {
    "binance": (2.0, 60e6, 2_500.0),
    "coinbase": (0.0, 25e6, 4_000.0),
    "kraken": (-1.5, 8e6, 5_000.0),
}
T_DOF = 4.0
GARCH_ALPHA, GARCH_BETA = 0.06, 0.92
BASIS_PHI, BASIS_STD = 0.45, 12e-4
OUTAGE_MEAN_GAP_H, OUTAGE_MAX_H = 24 * 24, 6
PUMP_MEAN_GAP_H, PUMP_FOLLOW = 60 * 24, 0.4

# stream identifiers (component part of the random key)
_RETURNS, _BASIS, _CANDLE, _OUTAGE, _PUMP = range(5)

CANDLE_COLUMNS = ["exchange", "symbol", "interval", "open_time", "open", "high", "low", "close", "volume",
                  "trade_count"]
LABEL_COLUMNS = ["episode_id", "kind", "exchange", "symbol", "start_time", "end_time"]


@dataclass(frozen=True)
class _Episode:
    asset: str
    number: int
    start: int      # hour of the first affected candle
    venue: str
    amplitude: float  # peak log-price overlay on the venue
    up: int         # hours of run-up
    down: int       # hours of collapse
    volume_peak: float

    @property
    def hours(self) -> int:
        return self.up + self.down


def _key(seed: int, component: int, *names: str) -> list[int]:
    return [seed, component, *(zlib.crc32(n.encode()) for n in names)]


def _blocks(key: list[int], lo: int, hi: int, draw: Callable[[np.random.Generator, int], np.ndarray]) -> np.ndarray:
    """Rows ``[lo, hi)`` of a stream made of fixed-size blocks, each drawn from its own generator."""
    first, last = lo // BLOCK, max(lo, hi - 1) // BLOCK
    parts = [draw(np.random.default_rng([*key, b]), BLOCK) for b in range(first, last + 1)]
    return np.concatenate(parts)[lo - first * BLOCK: hi - first * BLOCK]


def _normals(columns: int) -> Callable[[np.random.Generator, int], np.ndarray]:
    return lambda rng, size: rng.standard_normal((size, columns))


def _arrivals(key: list[int], horizon: int, mean_gap: float, min_gap: int,
              params: Callable[[np.random.Generator, int], dict[str, np.ndarray]]) -> list[tuple[int, dict]]:
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


def _hour_index(ts: datetime, name: str) -> int:
    stamp = pd.Timestamp(ts)
    if stamp.tzinfo is None:
        raise ValueError(f"{name} must be timezone-aware (UTC), got {ts!r}")
    stamp = stamp.tz_convert("UTC")
    if stamp != stamp.floor("h"):
        raise ValueError(f"{name} must be aligned to the hour, got {ts!r}")
    if stamp < ORIGIN:
        raise ValueError(f"{name} must not precede the simulator origin {ORIGIN}, got {ts!r}")
    return int((stamp - ORIGIN) / HOUR)


@lru_cache(maxsize=8)
def _efficient_path(seed: int, horizon: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Log-prices at boundaries 0..horizon, hourly vols and standardised shocks for every asset."""
    chol = np.linalg.cholesky(CORRELATION)
    dims = len(UNIVERSE)

    def draw(rng: np.random.Generator, size: int) -> np.ndarray:
        normal = rng.standard_normal((size, dims)) @ chol.T
        mixing = rng.chisquare(T_DOF, (size, 1))
        return normal / np.sqrt(mixing / T_DOF) * np.sqrt((T_DOF - 2) / T_DOF)

    shocks = _blocks(_key(seed, _RETURNS), 0, horizon, draw)
    long_run = np.array([ASSET_PARAMS[a][1] for a in UNIVERSE]) ** 2
    omega = long_run * (1 - GARCH_ALPHA - GARCH_BETA)
    variance = np.empty((horizon, dims))
    current = long_run.copy()
    for t, gain in enumerate(GARCH_ALPHA * shocks**2 + GARCH_BETA):
        variance[t] = current
        current = omega + gain * current
    sigma = np.sqrt(variance)
    start = np.log([ASSET_PARAMS[a][0] for a in UNIVERSE])
    log_price = np.vstack([start, start + np.cumsum(sigma * shocks, axis=0)])
    return log_price, sigma, shocks


def _episodes(seed: int, asset: str, horizon: int) -> list[_Episode]:
    vol = ASSET_PARAMS[asset][1]

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
        _Episode(asset, i + 1, hour, venues[p["venue"]], float(p["amplitude"]), int(p["up"]), int(p["down"]),
                 float(p["volume_peak"]))
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


def _check_universe(exchanges: Sequence[str], assets: Sequence[str]) -> None:
    unknown = sorted(set(exchanges) - set(EXCHANGE_PARAMS)) + sorted(set(assets) - set(ASSET_PARAMS))
    if unknown:
        raise ValueError(f"the simulator has no parameters for {unknown}")


def simulate_candles(
    start: datetime,
    end: datetime,
    *,
    seed: int,
    exchanges: Sequence[str] = EXCHANGES,
    assets: Sequence[str] = ASSETS,
) -> pd.DataFrame:
    """Raw hourly candles with open_time in ``[start, end)`` (UTC, hour-aligned), outages excluded."""
    _check_universe(exchanges, assets)
    lo, hi = _hour_index(start, "start"), _hour_index(end, "end")
    if hi <= lo:
        return pd.DataFrame(columns=CANDLE_COLUMNS)
    log_price, sigma, shocks = _efficient_path(seed, hi)
    hours = np.arange(lo, hi)
    open_time = ORIGIN + pd.to_timedelta(hours, unit="h")
    hour_of_day = hours % 24
    seasonality = 1 + 0.35 * np.sin(2 * np.pi * (hour_of_day - 8) / 24)
    frames = []
    for exchange in exchanges:
        premium, notional_usd, trade_usd = EXCHANGE_PARAMS[exchange]
        online = ~np.isin(hours, _outage_hours(seed, exchange, hi))
        for asset in assets:
            a = UNIVERSE.index(asset)
            weight = ASSET_PARAMS[asset][2]
            innovations = _blocks(_key(seed, _BASIS, exchange, asset), 0, hi + 1, _normals(1))[:, 0]
            innovations[1:] *= np.sqrt(1 - BASIS_PHI**2)
            basis = premium * 1e-4 + BASIS_STD * lfilter([1.0], [1.0, -BASIS_PHI], innovations)
            overlay, volume_mult = _pump_overlay(_episodes(seed, asset, hi), exchange, lo, hi)
            price = np.exp(log_price[lo: hi + 1, a] + basis[lo: hi + 1] + overlay)
            noise = _blocks(_key(seed, _CANDLE, exchange, asset), lo, hi, _normals(4))
            s, z = sigma[lo:hi, a], shocks[lo:hi, a]
            open_, close = price[:-1], price[1:]
            high = np.maximum(open_, close) * np.exp(0.5 * s * np.abs(noise[:, 0]))
            low = np.minimum(open_, close) * np.exp(-0.5 * s * np.abs(noise[:, 1]))
            activity = (0.5 + 0.6 * np.abs(z)) * np.sqrt(s / ASSET_PARAMS[asset][1])
            notional = (notional_usd * weight * seasonality * activity * volume_mult
                        * np.exp(0.3 * noise[:, 2] - 0.045))
            frames.append(pd.DataFrame({
                "exchange": exchange,
                "symbol": canonical_symbol(exchange, asset),
                "interval": INTERVAL,
                "open_time": open_time,
                "open": open_.round(4),
                "high": high.round(4),
                "low": low.round(4),
                "close": close.round(4),
                "volume": (notional / close).round(6),
                "trade_count": np.maximum(1, np.rint(notional / trade_usd * np.exp(0.15 * noise[:, 3]))).astype(int),
            })[online])
    return pd.concat(frames, ignore_index=True)


def simulate_labels(
    start: datetime,
    end: datetime,
    *,
    seed: int,
    exchanges: Sequence[str] = EXCHANGES,
    assets: Sequence[str] = ASSETS,
) -> pd.DataFrame:
    """Pump-and-dump episodes (on their venue) whose candles overlap ``[start, end)``."""
    _check_universe(exchanges, assets)
    lo, hi = _hour_index(start, "start"), _hour_index(end, "end")
    rows = [
        {
            "episode_id": f"pump-{ep.asset}-{ep.number:04d}",
            "kind": "pump_and_dump",
            "exchange": ep.venue,
            "symbol": canonical_symbol(ep.venue, ep.asset),
            "start_time": ORIGIN + ep.start * HOUR,
            "end_time": ORIGIN + (ep.start + ep.hours - 1) * HOUR,
        }
        for asset in assets
        for ep in _episodes(seed, asset, hi)
        if ep.venue in exchanges and ep.start + ep.hours > lo
    ]
    return pd.DataFrame(rows, columns=LABEL_COLUMNS).sort_values(["start_time", "episode_id"], ignore_index=True)
