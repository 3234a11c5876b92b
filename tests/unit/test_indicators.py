"""The indicator definitions against TA-Lib (or numpy/pandas where TA-Lib has none), edge cases,
and the per-series feature set resuming from its state."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import talib
from numpy.lib.stride_tricks import sliding_window_view

from sentinance.spark_jobs.features import indicators as ind
from sentinance.spark_jobs.features.series import LOOKBACK, STATE_COLUMNS, SeriesState, series_features

RTOL = 1e-9
HOURS_PER_YEAR = 24 * 365


def ohlcv(n: int, seed: int = 42, price: float = 60_000.0) -> dict[str, np.ndarray]:
    """A geometric random walk with a high/low range and gamma volumes."""
    rng = np.random.default_rng(seed)
    close = price * np.exp(np.cumsum(rng.normal(0, 0.006, n)))
    return {
        "high": close * (1 + np.abs(rng.normal(0, 0.003, n))),
        "low": close * (1 - np.abs(rng.normal(0, 0.003, n))),
        "close": close,
        "volume": rng.gamma(2.0, 10.0, n),
    }


@pytest.fixture(scope="module")
def bars() -> dict[str, np.ndarray]:
    return ohlcv(2_000)


def close_enough(actual: np.ndarray, expected: np.ndarray, atol: float = 0.0) -> None:
    """Equal within RTOL (plus ``atol``), NaN exactly where the reference is NaN."""
    np.testing.assert_allclose(actual, expected, rtol=RTOL, atol=atol, equal_nan=True)


def talib_equivalence(b: dict[str, np.ndarray]) -> None:
    """Every TA-Lib indicator of the feature set on ``b`` (several periods where they are free)."""
    h, low, c, v = b["high"], b["low"], b["close"], b["volume"]
    price_scale = 1e-12 * np.nanmax(np.abs(c)) if np.isfinite(c).any() else 0.0
    for period in (2, 14, 20, 50):
        close_enough(ind.sma(c, period), talib.SMA(c, period))
        close_enough(ind.ema(c, period), talib.EMA(c, period))
        close_enough(ind.wilder_rsi(c, period)[0], talib.RSI(c, period))
        close_enough(ind.atr(h, low, c, period), talib.ATR(h, low, c, period))
    # MACD is a difference of two EMAs: near its zero crossings only an absolute bound (in
    # units of the price) is meaningful, for TA-Lib's own rounding too
    for ours, theirs in zip(ind.macd(c, 12, 26, 9)[:3], talib.MACD(c, 12, 26, 9), strict=True):
        close_enough(ours, theirs, atol=price_scale)
    bands, (upper, middle, lower) = ind.bollinger(c, 20, 2.0), talib.BBANDS(c, 20, 2.0, 2.0, 0)
    for ours, theirs in zip(bands[:3], (upper, middle, lower), strict=True):
        close_enough(ours, theirs)
    with np.errstate(invalid="ignore", divide="ignore"):
        close_enough(bands.pct_b, np.where(upper > lower, (c - lower) / (upper - lower), np.nan), atol=1e-9)
        close_enough(bands.bandwidth, (upper - lower) / middle, atol=1e-12)
    close_enough(ind.obv(c, v), talib.OBV(c, v))


def test_talib_equivalence_on_random_walks() -> None:
    for seed in range(5):
        talib_equivalence(ohlcv(2_000, seed))


def test_talib_equivalence_on_flat_prices() -> None:
    b = {k: np.full(100, 100.0) for k in ("high", "low", "close")} | {"volume": np.full(100, 5.0)}
    talib_equivalence(b)
    assert (ind.wilder_rsi(b["close"], 14)[0][14:] == 0).all()  # no move: 0, as TA-Lib
    bands = ind.bollinger(b["close"], 20, 2.0)
    assert np.isnan(bands.pct_b).all() and (bands.bandwidth[19:] == 0).all()  # bands coincide: %B undefined
    assert (ind.atr(b["high"], b["low"], b["close"], 14)[14:] == 0).all()


def test_zero_volume() -> None:
    b = ohlcv(200) | {"volume": np.zeros(200)}
    talib_equivalence(b)
    assert (ind.obv(b["close"], b["volume"]) == 0).all()
    # nothing traded: VWAP and the volume z-score are undefined, not 0
    assert np.isnan(ind.rolling_vwap(b["high"], b["low"], b["close"], b["volume"], 24)).all()
    assert np.isnan(ind.zscore(b["volume"], 24)).all()
    partly = ohlcv(200)["volume"]
    partly[50:80] = 0.0
    vwap = ind.rolling_vwap(b["high"], b["low"], b["close"], partly, 24)
    assert np.isnan(vwap[73:80]).all() and not np.isnan(vwap[np.r_[23:73, 80:200]]).any()


@pytest.mark.parametrize("n", [0, 1, 14])
def test_too_short_series_is_all_warmup(n: int) -> None:
    b = ohlcv(n)
    talib_equivalence(b)
    h, low, c, v = b["high"], b["low"], b["close"], b["volume"]
    for values in (
        *ind.wilder_rsi(c, 14),
        ind.sma(c, 20),
        ind.ema(c, 20),
        *ind.macd(c, 12, 26, 9),
        *ind.bollinger(c, 20, 2.0),
        ind.atr(h, low, c, 14),
        ind.rolling_vwap(h, low, c, v, 24),
        ind.realized_volatility(c, 24, HOURS_PER_YEAR),
        ind.zscore(v, 24),
        ind.log_return(c, 24),
    ):
        assert len(values) == n and np.isnan(values).all()
    np.testing.assert_array_equal(ind.obv(c, v)[:1], v[:1])  # OBV has no warm-up


def test_nan_input(bars: dict[str, np.ndarray]) -> None:
    b = {k: v[:300].copy() for k, v in bars.items()}
    b["close"][:3] = np.nan  # leading NaNs: the series starts later, as in TA-Lib
    b["high"][:5] = np.nan
    talib_equivalence(b)
    b["close"][100] = np.nan  # a later NaN: NaN in every window holding it, and in recursions from there on
    c = b["close"]
    np.testing.assert_allclose(ind.ema(c, 20)[:100], talib.EMA(c, 20)[:100], rtol=RTOL, equal_nan=True)
    # (ATR's row 100 uses only the previous close)
    for recursion, first_nan in (
        (ind.ema(c, 20), 100),
        (ind.wilder_rsi(c, 14)[0], 100),
        (ind.macd(c, 12, 26, 9).signal, 100),
        (ind.obv(c, b["volume"]), 100),
        (ind.atr(b["high"], b["low"], c, 14), 101),
    ):
        assert np.isnan(recursion[first_nan:]).all() and not np.isnan(recursion[60:first_nan]).any()
    sma = ind.sma(c, 20)
    assert np.isnan(sma[100:120]).all() and not np.isnan(sma[120:]).any()


def test_returns_match_pandas(bars: dict[str, np.ndarray]) -> None:
    close = pd.Series(bars["close"])
    for h in (1, 4, 24):
        close_enough(ind.simple_return(close, h), close.pct_change(h).to_numpy())
        # (the log of the ratio: a difference of logs loses digits on small moves)
        close_enough(ind.log_return(close, h), np.log(close / close.shift(h)).to_numpy())


def test_realized_volatility_matches_numpy(bars: dict[str, np.ndarray]) -> None:
    c = bars["close"]
    returns = np.diff(np.log(c))
    for window in (24, 168):
        expected = np.full(len(c), np.nan)
        expected[window:] = sliding_window_view(returns, window).std(axis=1, ddof=1) * np.sqrt(HOURS_PER_YEAR)
        close_enough(ind.realized_volatility(c, window, HOURS_PER_YEAR), expected)


def test_rolling_vwap_and_volume_zscore_match_numpy(bars: dict[str, np.ndarray]) -> None:
    h, low, c, v = bars["high"], bars["low"], bars["close"], bars["volume"]

    def windows(x: np.ndarray) -> np.ndarray:
        return sliding_window_view(x, 24)

    vwap, z = np.full(len(c), np.nan), np.full(len(c), np.nan)
    vwap[23:] = (windows((h + low + c) / 3) * windows(v)).sum(axis=1) / windows(v).sum(axis=1)
    z[23:] = (v[23:] - windows(v).mean(axis=1)) / windows(v).std(axis=1, ddof=1)
    close_enough(ind.rolling_vwap(h, low, c, v, 24), vwap)
    close_enough(ind.zscore(v, 24), z)


def candle_frame(n: int, missing: tuple[int, ...] = ()) -> pd.DataFrame:
    """Hourly candles (``n`` hours, some ``missing``) as the Spark job hands them over."""
    frame = pd.DataFrame(ohlcv(n, seed=3)).assign(open_time=pd.date_range("2024-01-01", periods=n, freq="h", tz="UTC"))
    return frame.drop(index=list(missing)).reset_index(drop=True)


def test_series_features_of_a_gap_run_over_the_available_candles() -> None:
    candles = candle_frame(400, missing=(200, 201, 202))
    features = series_features(candles, "1h")
    assert features["gap_bars"].isna().tolist() == [True] + [False] * 396
    assert features["gap_bars"].iloc[200] == 3 and features["gap_bars"].drop([0, 200]).eq(0).all()
    # indicators are over the candles, as TA-Lib over the series without the missing rows
    close_enough(features["rsi_14"].to_numpy(), talib.RSI(candles["close"].to_numpy(), 14))
    close_enough(features["log_return"].to_numpy(), ind.log_return(candles["close"].to_numpy()))
    np.testing.assert_array_equal(features["is_warmup"], np.arange(397) < LOOKBACK)


def test_series_features_of_a_single_candle() -> None:
    features = series_features(candle_frame(1), "1h")
    assert len(features) == 1 and bool(features["is_warmup"].iloc[0]) and pd.isna(features["gap_bars"].iloc[0])
    assert features.drop(columns=["is_warmup", "gap_bars", "obv"]).isna().all(axis=None)


@pytest.mark.parametrize("cut", [20, LOOKBACK, LOOKBACK + 1, 500])
def test_series_features_resume_from_state_as_one_pass(cut: int) -> None:
    """What the job does on an increment: the state of the last old row, the LOOKBACK rows before the new ones."""
    candles = candle_frame(700, missing=(300,))
    whole = series_features(candles, "1h")
    state = SeriesState.from_values(whole.iloc[cut - 1].to_dict() | {"close": candles["close"].iloc[cut - 1]})
    first = max(cut - LOOKBACK, 0)
    if state is None:  # a recursion still warming up: the job re-reads the whole series (cut <= LOOKBACK)
        assert cut <= LOOKBACK and first == 0
    resumed = series_features(candles.iloc[first:], "1h", state, cut - first)
    pd.testing.assert_frame_equal(resumed, whole.iloc[cut:].reset_index(drop=True), check_exact=False, rtol=1e-12)
    recursions = [c for c in STATE_COLUMNS if c != "close"]
    pd.testing.assert_frame_equal(
        resumed[recursions], whole.loc[cut:, recursions].reset_index(drop=True), check_exact=True
    )
