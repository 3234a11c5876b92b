"""The offline market simulator: reproducible, window-independent, realistic enough to learn from.

Trades and candles come from one model: candles are exactly the aggregation of the trades.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest

from sentinance.catalog import CANDLE_COLUMNS, SIMULATOR_TRADE_LABELS, TRADE_COLUMNS
from sentinance.errors import SettingsError
from sentinance.pipelines.sources import simulator
from sentinance.pipelines.sources.simulator import (
    ORIGIN,
    simulate_candles,
    simulate_labels,
    simulate_trade_labels,
    simulate_trades,
)
from sentinance.settings import INTERVAL_SECONDS, Universe

START = pd.Timestamp("2025-03-01T00:00Z")
END = START + pd.Timedelta(days=10)
KEY = ["exchange", "symbol", "open_time"]


def _key_sorted(df: pd.DataFrame) -> pd.DataFrame:
    return df.sort_values(KEY, ignore_index=True)


def test_shape_and_canonical_symbols():
    df = simulate_candles(START, END, seed=7)
    assert list(df.columns) == CANDLE_COLUMNS
    assert df["interval"].eq("1h").all()
    assert str(df["open_time"].dt.tz) == "UTC"
    assert df["open_time"].min() >= START and df["open_time"].max() < END
    assert (df["open_time"] == df["open_time"].dt.floor("h")).all()
    universe = Universe()
    expected = {(e, universe.symbol(e, a)) for e in universe.exchanges for a in universe.assets}
    assert set(df[["exchange", "symbol"]].itertuples(index=False, name=None)) == expected
    assert not df.duplicated(KEY).any()
    assert df["trade_count"].dtype == np.int64 and (df["trade_count"] > 0).all()


def test_deterministic_per_seed():
    a, b = simulate_candles(START, END, seed=7), simulate_candles(START, END, seed=7)
    pd.testing.assert_frame_equal(a, b)
    other = simulate_candles(START, END, seed=8)
    assert not np.allclose(_key_sorted(a)["close"].head(50), _key_sorted(other)["close"].head(50))


def test_window_independent():
    """A candle depends on (seed, hour) only: any window is a slice of a longer one."""
    wide = simulate_candles(START - pd.Timedelta(days=20), END + pd.Timedelta(days=30), seed=7)
    narrow = simulate_candles(START, END, seed=7)
    sliced = wide[(wide["open_time"] >= START) & (wide["open_time"] < END)]
    pd.testing.assert_frame_equal(_key_sorted(narrow), _key_sorted(sliced))
    first, second = (
        simulate_candles(START, START + pd.Timedelta(days=4), seed=7),
        simulate_candles(START + pd.Timedelta(days=4), END, seed=7),
    )
    pd.testing.assert_frame_equal(_key_sorted(pd.concat([first, second])), _key_sorted(narrow))


def test_ohlc_consistent_and_open_is_previous_close():
    df = _key_sorted(simulate_candles(START, END, seed=7))
    assert (df["high"] >= df[["open", "close"]].max(axis=1)).all()
    assert (df["low"] <= df[["open", "close"]].min(axis=1)).all()
    assert (df[["open", "high", "low", "close", "volume"]] > 0).all().all()
    prev = df.groupby(["exchange", "symbol"])[["close", "open_time"]].shift()
    consecutive = df["open_time"] - prev["open_time"] == pd.Timedelta(hours=1)
    np.testing.assert_allclose(df.loc[consecutive, "open"], prev.loc[consecutive, "close"], rtol=1e-8)


def test_price_levels_at_origin():
    df = simulate_candles(ORIGIN, ORIGIN + pd.Timedelta(hours=3), seed=7)
    first = df[df["open_time"] == ORIGIN].assign(asset=lambda d: d["symbol"].str.split("/").str[0])
    for asset, level in {"BTC": 60_000, "ETH": 3_000, "SOL": 150}.items():
        opens = first.loc[first["asset"] == asset, "open"]
        assert ((opens / level - 1).abs() < 0.02).all(), (asset, opens.tolist())


def test_stylised_facts():
    """Hourly vol ~0.5-1%, fat tails, volatility clustering, mean-reverting cross-exchange basis."""
    df = _key_sorted(simulate_candles(START, START + pd.Timedelta(days=180), seed=7))
    returns = np.log(df["close"]).groupby([df["exchange"], df["symbol"]]).diff()
    vol = returns.groupby(df["symbol"]).std()
    assert vol.between(0.004, 0.012).all(), vol
    assert returns.groupby(df["symbol"]).apply(lambda r: r.kurt()).gt(1).all()
    assert returns.abs().groupby(df["symbol"]).apply(lambda r: r.autocorr(1)).gt(0.03).all()
    asset = df["symbol"].str.split("/").str[0]
    wide = df.assign(asset=asset).pivot_table(index=["asset", "open_time"], columns="exchange", values="close")
    basis = np.log(wide.div(wide.mean(axis=1), axis=0)) * 1e4
    assert basis.std().between(5, 25).all(), basis.std()
    assert pd.Series({c: basis[c].autocorr(1) for c in basis}).between(0.2, 0.7).all()
    hour = df["open_time"].dt.hour
    by_hour = df.groupby(hour)["volume"].median() / df.groupby(hour)["volume"].median().mean()
    assert by_hour.max() - by_hour.min() > 0.3  # intraday seasonality


def test_outages_leave_exchange_wide_gaps():
    start, end = START, START + pd.Timedelta(days=90)
    df = simulate_candles(start, end, seed=7)
    hours = pd.date_range(start, end, freq="h", inclusive="left")
    for exchange in Universe().exchanges:
        present = df[df["exchange"] == exchange].groupby("symbol")["open_time"].apply(set)
        missing = {symbol: set(hours) - times for symbol, times in present.items()}
        gaps = next(iter(missing.values()))
        assert all(m == gaps for m in missing.values()), "an outage takes out every series of the exchange"
        assert 1 <= len(gaps) <= 60, (exchange, len(gaps))


def test_labels_match_a_visible_pump_and_dump():
    labels = simulate_labels(START, START + pd.Timedelta(days=240), seed=7)
    assert labels["episode_id"].is_unique and set(labels["kind"]) == {"pump_and_dump", "wash_trading"}
    labels = labels[labels["kind"] == "pump_and_dump"]
    assert len(labels) >= 3
    assert (labels["end_time"] > labels["start_time"]).all()
    assert labels.groupby(labels["symbol"].str[:3]).size().min() >= 1
    for label in labels.itertuples():
        window = simulate_candles(
            label.start_time - pd.Timedelta(hours=48), label.end_time + pd.Timedelta(hours=1), seed=7
        )
        asset = window[window["symbol"].str[:3] == label.symbol[:3]]
        close = asset.pivot_table(index="open_time", columns="exchange", values="close")
        others = close.drop(columns=label.exchange).mean(axis=1)
        premium = np.log(close[label.exchange] / others)  # market moves cancel out
        volume = asset[asset["exchange"] == label.exchange].set_index("open_time")["volume"]
        during = slice(label.start_time, label.end_time)
        if volume[during].size < 3 or label.end_time not in volume.index:  # the venue was down
            continue
        assert premium[during].max() > 0.01, label.episode_id
        assert premium[during].iloc[-1] < 0.005, "the pump collapses"
        assert volume[during].mean() > 2 * volume[: label.start_time - pd.Timedelta(hours=1)].median()


def test_labels_window_consistent():
    wide = simulate_labels(START, START + pd.Timedelta(days=240), seed=7)
    narrow = simulate_labels(START + pd.Timedelta(days=60), START + pd.Timedelta(days=120), seed=7)
    assert set(narrow["episode_id"]) <= set(wide["episode_id"])
    overlaps = wide[
        (wide["end_time"] >= START + pd.Timedelta(days=60)) & (wide["start_time"] < START + pd.Timedelta(days=120))
    ]
    assert set(narrow["episode_id"]) == set(overlaps["episode_id"])


def test_rejects_naive_or_unaligned_bounds():
    with pytest.raises(ValueError, match="timezone-aware"):
        simulate_candles(datetime(2025, 1, 1), datetime(2025, 1, 2), seed=7)
    with pytest.raises(ValueError, match="aligned"):
        simulate_candles(datetime(2025, 1, 1, 0, 30, tzinfo=UTC), END, seed=7)
    assert simulate_candles(END, END, seed=7).empty


# -- trades ------------------------------------------------------------------------------------

TRADE_WINDOW = (START, START + pd.Timedelta(days=3))


@pytest.fixture(scope="module")
def trades() -> pd.DataFrame:
    return simulate_trades(*TRADE_WINDOW, seed=7)


def test_trades_shape_ids_and_values(trades):
    assert list(trades.columns) == TRADE_COLUMNS
    assert str(trades["trade_time"].dt.tz) == "UTC"
    assert trades["trade_time"].min() >= TRADE_WINDOW[0] and trades["trade_time"].max() < TRADE_WINDOW[1]
    assert not trades.duplicated(["exchange", "symbol", "trade_id"]).any()
    assert trades["trade_id"].str.fullmatch(r"\d{10}").all()
    for _, series in trades.groupby(["exchange", "symbol"]):  # ids are ordered like times
        assert series["trade_id"].is_monotonic_increasing and series["trade_time"].is_monotonic_increasing
    assert (trades["price"] > 0).all() and (trades["size"] > 0).all()
    assert set(trades["side"]) == {"buy", "sell"}
    per_hour = trades.groupby(["exchange", "symbol"]).size() / (3 * 24)
    assert per_hour.between(15, 80).all(), per_hour  # a modest intensity keeps history cheap


def test_candles_are_the_aggregation_of_the_trades(trades):
    hour = trades["trade_time"].dt.floor("h").rename("open_time")
    groups = trades.groupby(["exchange", "symbol", hour])
    aggregated = pd.DataFrame(
        {
            "open": groups["price"].first(),
            "high": groups["price"].max(),
            "low": groups["price"].min(),
            "close": groups["price"].last(),
            "volume": groups["size"].sum(),
            "trade_count": groups.size(),
        }
    ).reset_index()
    candles = simulate_candles(*TRADE_WINDOW, seed=7)
    joined = candles.merge(aggregated, on=KEY, how="outer", suffixes=("", "_trades"), indicator=True)
    assert joined["_merge"].eq("both").all(), "a candle for every hour with trades and none without"
    for column in ["open", "high", "low", "close", "trade_count"]:
        assert (joined[column] == joined[f"{column}_trades"]).all(), column
    np.testing.assert_allclose(joined["volume"], joined["volume_trades"], rtol=1e-9)


def test_trades_are_window_independent(trades):
    split = TRADE_WINDOW[0] + pd.Timedelta(hours=37)
    parts = pd.concat(
        [simulate_trades(TRADE_WINDOW[0], split, seed=7), simulate_trades(split, TRADE_WINDOW[1], seed=7)]
    )
    order = ["exchange", "symbol", "trade_id"]
    pd.testing.assert_frame_equal(
        parts.sort_values(order, ignore_index=True), trades.sort_values(order, ignore_index=True)
    )
    wider = simulate_trades(
        TRADE_WINDOW[0] - pd.Timedelta(days=9),
        TRADE_WINDOW[1] + pd.Timedelta(days=2),
        seed=7,
        exchanges=["kraken"],
        assets=["SOL"],
    )
    inside = wider[wider["trade_time"] < TRADE_WINDOW[1]]
    inside = inside[inside["trade_time"] >= TRADE_WINDOW[0]].reset_index(drop=True)
    narrow = trades[trades["exchange"].eq("kraken") & trades["symbol"].eq("SOL/USD")].reset_index(drop=True)
    pd.testing.assert_frame_equal(inside, narrow)


def test_lagging_venues_follow_the_leader():
    """binance leads: the others' hourly returns correlate with binance's previous hour, not the reverse."""
    df = simulate_candles(START, START + pd.Timedelta(days=120), seed=7, assets=["BTC"])
    returns = np.log(df.pivot_table(index="open_time", columns="exchange", values="close")).diff()
    returns = returns.asfreq("h")
    for follower in ["coinbase", "kraken"]:
        follows = returns[follower].corr(returns["binance"].shift())
        leads = returns["binance"].corr(returns[follower].shift())
        assert follows > leads + 0.05, (follower, follows, leads)


LAGS = {"coinbase": 0.5, "kraken": 0.8}


def test_default_lags_are_the_simulators():
    """No override, an empty one and the explicit defaults generate the same history."""
    defaults = {exchange: params[3] for exchange, params in simulator.EXCHANGE_PARAMS.items()}
    plain = simulate_candles(START, END, seed=7)
    for lags in [None, {}, defaults]:
        pd.testing.assert_frame_equal(simulate_candles(START, END, seed=7, lags=lags), plain)
    pd.testing.assert_frame_equal(
        simulate_trades(*TRADE_WINDOW, seed=7, lags=defaults), simulate_trades(*TRADE_WINDOW, seed=7)
    )


def test_a_lag_override_sets_the_lead_lag_and_nothing_else():
    """The follower's hourly return loads on the leader's previous hour with about the configured lag."""
    end = START + pd.Timedelta(days=28)
    df = simulate_candles(START, end, seed=7, assets=["BTC"], lags=LAGS)
    returns = np.log(df.pivot_table(index="open_time", columns="exchange", values="close")).diff().asfreq("h")
    for follower, lag in LAGS.items():
        pair = pd.DataFrame({"y": returns[follower], "x": returns["binance"].shift()}).dropna()
        slope = np.polyfit(pair["x"], pair["y"], 1)[0]
        assert abs(slope - lag) < 0.1, (follower, slope)  # a little below: binance's basis noise attenuates it
    default = simulate_candles(START, end, seed=7, assets=["BTC"])
    pd.testing.assert_frame_equal(df[df["exchange"] == "binance"], default[default["exchange"] == "binance"])
    sliced = df[df["open_time"] >= START + pd.Timedelta(days=9)].reset_index(drop=True)
    pd.testing.assert_frame_equal(
        _key_sorted(simulate_candles(START + pd.Timedelta(days=9), end, seed=7, assets=["BTC"], lags=LAGS)),
        _key_sorted(sliced),
    )
    lagged, plain = simulate_trades(*TRADE_WINDOW, seed=7, lags=LAGS), simulate_trades(*TRADE_WINDOW, seed=7)
    ids = ["exchange", "symbol", "trade_id", "trade_time"]
    pd.testing.assert_frame_equal(lagged[ids], plain[ids])  # same trades, so the wash labels still hold


@pytest.mark.parametrize("lags", [{"bitstamp": 0.3}, {"kraken": 1.0}, {"kraken": -0.1}])
def test_rejects_bad_lags(lags):
    with pytest.raises(ValueError, match=r"bitstamp|lag of kraken"):
        simulate_candles(START, END, seed=7, lags=lags)


# -- wash trading --------------------------------------------------------------------------------

WASH_WINDOW = (START, START + pd.Timedelta(days=60))


@pytest.fixture(scope="module")
def wash() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    episodes = simulate_labels(*WASH_WINDOW, seed=7)
    episodes = episodes[episodes["kind"] == "wash_trading"]
    return episodes, simulate_trade_labels(*WASH_WINDOW, seed=7), simulate_trades(*WASH_WINDOW, seed=7)


def test_wash_episodes_are_labelled_per_episode_and_per_trade(wash):
    episodes, labels, trades = wash
    per_series = episodes.groupby(["exchange", "symbol"]).size()
    assert 9 <= len(episodes) <= 40 and len(per_series) >= 6  # ~1 per exchange-asset per 30 days
    hours = (episodes["end_time"] - episodes["start_time"]) / pd.Timedelta(hours=1) + 1
    assert hours.between(2, 6).all()
    assert list(labels.columns) == SIMULATOR_TRADE_LABELS.schema.names and labels["kind"].eq("wash_trading").all()
    assert set(labels["episode_id"]) <= set(episodes["episode_id"]) and labels["episode_id"].nunique() >= 9
    keys = ["exchange", "symbol", "trade_id"]
    labelled = trades.merge(labels, on=keys)
    assert len(labelled) == len(labels), "every label names a real trade"
    window = labelled.merge(episodes[["episode_id", "start_time", "end_time"]], on="episode_id")
    assert window["trade_time"].between(window["start_time"], window["end_time"] + pd.Timedelta(hours=1)).all()


def test_wash_trades_are_self_matched_round_and_repeated(wash):
    _, labels, trades = wash
    labelled = trades.merge(labels, on=["exchange", "symbol", "trade_id"])
    for _, episode in labelled.groupby("episode_id"):
        assert episode["size"].nunique() <= 2, "an episode repeats at most two sizes"
        mantissa = episode["size"] / 10 ** np.floor(np.log10(episode["size"]))
        assert np.isin(mantissa.round(9), [1, 2, 5]).all(), "round-number sizes"
        assert episode["side"].value_counts().min() == len(episode) // 2, "one buy and one sell per pair"
        legs = episode.merge(episode, on=["price", "size"], suffixes=("", "_other"))
        matched = legs[
            (legs["side"] != legs["side_other"])
            & ((legs["trade_time"] - legs["trade_time_other"]).abs() <= pd.Timedelta(seconds=8))
        ]
        assert set(matched["trade_id"]) == set(episode["trade_id"]), "each leg has its opposite within seconds"
    organic = trades.merge(labels, on=["exchange", "symbol", "trade_id"], how="left", indicator=True)
    organic = organic[organic["_merge"] == "left_only"]
    assert organic["size"].round(6).nunique() > 0.99 * len(organic), "organic sizes are not repeated"


def test_wash_trades_add_volume_without_price_impact(wash):
    _, labels, trades = wash
    keys = ["exchange", "symbol", "trade_id"]
    flagged = trades.merge(labels[keys], on=keys, how="left", indicator=True)["_merge"].eq("both").to_numpy()
    hour = trades["trade_time"].dt.floor("h").rename("open_time")

    def candles(frame: pd.DataFrame, hours: pd.Series) -> pd.DataFrame:
        g = frame.groupby([frame["exchange"], frame["symbol"], hours])
        return pd.DataFrame(
            {
                "open": g["price"].first(),
                "high": g["price"].max(),
                "low": g["price"].min(),
                "close": g["price"].last(),
                "volume": g["size"].sum(),
            }
        )

    with_wash, without = candles(trades, hour), candles(trades[~flagged], hour[~flagged])
    affected = with_wash.index.isin(candles(trades[flagged], hour[flagged]).index)
    prices = ["open", "high", "low", "close"]
    pd.testing.assert_frame_equal(with_wash.loc[affected, prices], without.loc[with_wash.index[affected], prices])
    ratio = with_wash.loc[affected, "volume"] / without.loc[with_wash.index[affected], "volume"]
    assert ratio.median() > 1.3, "wash trading inflates volume"


def test_a_window_inside_an_outage_has_no_candles():
    """An incremental run whose whole window falls in an outage lands nothing (and does not fail)."""
    end = START + pd.Timedelta(days=20)
    df = simulate_candles(START, end, seed=7, exchanges=["kraken"], assets=["BTC"])
    hours = pd.date_range(START, end, freq="h", inclusive="left")
    missing = hours.difference(pd.DatetimeIndex(df["open_time"]))
    assert len(missing), "the window should contain an outage"
    inside = simulate_candles(
        missing[0], missing[0] + pd.Timedelta(hours=1), seed=7, exchanges=["kraken"], assets=["BTC"]
    )
    assert inside.empty and list(inside.columns) == CANDLE_COLUMNS
    assert simulate_trades(
        missing[0], missing[0] + pd.Timedelta(hours=1), seed=7, exchanges=["kraken"], assets=["BTC"]
    ).empty


# -- today's history, pinned -------------------------------------------------------------------


def test_the_default_universe_simulates_the_history_it_always_did():
    """Content hashes of 2 days of the defaults (3 exchanges x BTC/ETH/SOL, 1h, seed 7), recorded
    before the simulator grew N assets and intervals: extending it must not move a single bit."""

    def digest(frame: pd.DataFrame) -> str:
        return hashlib.sha256(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes()).hexdigest()

    window = (START, START + pd.Timedelta(days=2))
    assert digest(simulate_candles(*window, seed=7)) == (
        "909304c8f9747c83a1b8e984cab26396708003ccfd03c04a5a4f1e345cc0d84e"
    )
    assert digest(simulate_trades(*window, seed=7)) == (
        "65e0ec16d6fb2b86d63398c2690e0babbbd28671f79d697ebada77ce9663f4ab"
    )


# -- any interval --------------------------------------------------------------------------------

INTERVAL_WINDOW = (START, START + pd.Timedelta(days=4))


@pytest.mark.parametrize("interval", ["1m", "5m", "15m", "4h", "1d"])
def test_candles_of_any_interval_aggregate_the_trades_of_their_buckets(trades, interval):
    step = pd.Timedelta(seconds=INTERVAL_SECONDS[interval])
    window = trades[trades["trade_time"] < INTERVAL_WINDOW[0] + pd.Timedelta(days=2)]
    bucket = window["trade_time"].dt.floor(step).rename("open_time")
    groups = window.groupby(["exchange", "symbol", bucket])
    aggregated = groups["price"].agg(["first", "max", "min", "last"]).set_axis(["open", "high", "low", "close"], axis=1)
    aggregated = aggregated.assign(volume=groups["size"].sum(), trade_count=groups.size()).reset_index()
    candles = simulate_candles(INTERVAL_WINDOW[0], INTERVAL_WINDOW[0] + pd.Timedelta(days=2), seed=7, interval=interval)
    assert list(candles.columns) == CANDLE_COLUMNS and candles["interval"].eq(interval).all()
    assert (candles["open_time"] == candles["open_time"].dt.floor(step)).all()
    joined = candles.merge(aggregated, on=KEY, how="outer", suffixes=("", "_trades"), indicator=True)
    assert joined["_merge"].eq("both").all(), "a candle for every interval with trades and none without"
    for column in ["open", "high", "low", "close", "trade_count"]:
        assert (joined[column] == joined[f"{column}_trades"]).all(), column
    np.testing.assert_allclose(joined["volume"], joined["volume_trades"], rtol=1e-9)


def test_daily_candles_aggregate_the_hourly_ones():
    hourly = _key_sorted(simulate_candles(*INTERVAL_WINDOW, seed=7))
    daily = simulate_candles(*INTERVAL_WINDOW, seed=7, interval="1d").set_index(KEY).sort_index()
    day = hourly["open_time"].dt.floor("D")
    groups = hourly.groupby(["exchange", "symbol", day])
    expected = pd.DataFrame(
        {
            "open": groups["open"].first(),
            "high": groups["high"].max(),
            "low": groups["low"].min(),
            "close": groups["close"].last(),
            "volume": groups["volume"].sum(),
            "trade_count": groups["trade_count"].sum(),
        }
    )
    expected.index.names = KEY
    pd.testing.assert_frame_equal(daily[expected.columns], expected, rtol=1e-9)


def test_intervals_are_window_independent_and_take_bounds_on_their_grid():
    start, end = START + pd.Timedelta(minutes=35), START + pd.Timedelta(hours=7, minutes=20)
    wide = simulate_candles(START, START + pd.Timedelta(days=1), seed=7, interval="5m")
    narrow = simulate_candles(start, end, seed=7, interval="5m")
    sliced = wide[(wide["open_time"] >= start) & (wide["open_time"] < end)]
    pd.testing.assert_frame_equal(_key_sorted(narrow), _key_sorted(sliced))
    # trades of part of an hour keep the ids they have in the whole hour
    whole = simulate_trades(START, START + pd.Timedelta(hours=8), seed=7)
    part = simulate_trades(start, end, seed=7)
    inside = whole[(whole["trade_time"] >= start) & (whole["trade_time"] < end)].reset_index(drop=True)
    pd.testing.assert_frame_equal(part, inside)
    later = START + pd.Timedelta(hours=8)
    four = simulate_candles(START, START + pd.Timedelta(days=2), seed=7, interval="4h")
    pd.testing.assert_frame_equal(
        _key_sorted(simulate_candles(later, START + pd.Timedelta(days=2), seed=7, interval="4h")),
        _key_sorted(four[four["open_time"] >= later]),
    )


@pytest.mark.parametrize(
    ("start", "interval", "message"),
    [
        (START + pd.Timedelta(hours=2), "4h", "aligned to 4h"),
        (START + pd.Timedelta(minutes=3), "5m", "aligned to 5m"),
        (START, "2h", "unknown candle interval '2h'"),
    ],
)
def test_rejects_bounds_off_the_interval_grid_and_unknown_intervals(start, interval, message):
    with pytest.raises(SettingsError, match=message):
        simulate_candles(start, END, seed=7, interval=interval)
    with pytest.raises(SettingsError, match="aligned to a whole minute"):
        simulate_trades(START + pd.Timedelta(seconds=30), END, seed=7)


# -- N assets ------------------------------------------------------------------------------------

TEN = ("BTC", "ETH", "SOL", "XRP", "ADA", "DOGE", "AVAX", "DOT", "LINK", "LTC")


def test_an_asset_without_parameters_gets_them_from_its_name():
    params = {asset: simulator.asset_params(asset) for asset in TEN[3:]}
    assert len({p[0] for p in params.values()}) == len(params), "different names, different markets"
    for price, vol, weight, loading in params.values():
        assert 0.1 <= price <= 1_000 and 0.008 <= vol <= 0.016 and 0.01 <= weight <= 0.15 and 0.5 <= loading <= 0.8
    simulator.asset_params.cache_clear()
    assert {asset: simulator.asset_params(asset) for asset in TEN[3:]} == params
    np.testing.assert_allclose(
        np.outer(simulator.LOADINGS, simulator.LOADINGS)[np.triu_indices(3, 1)], [0.8, 0.7, 0.75]
    )


def test_a_series_does_not_depend_on_the_other_assets_of_the_universe():
    universe = Universe(assets=TEN)
    many = simulate_candles(START, START + pd.Timedelta(days=3), seed=7, universe=universe)
    assert set(many["symbol"].str.split("/").str[0]) == set(TEN)
    for asset in ("BTC", "XRP"):
        alone = simulate_candles(START, START + pd.Timedelta(days=3), seed=7, universe=universe, assets=[asset])
        pd.testing.assert_frame_equal(_key_sorted(many[many["symbol"].str.startswith(f"{asset}/")]), _key_sorted(alone))
    calibrated = simulate_candles(START, START + pd.Timedelta(days=3), seed=7)  # today's default universe
    pd.testing.assert_frame_equal(_key_sorted(many[many["symbol"].str[:3].isin(TEN[:3])]), _key_sorted(calibrated))
    other = simulate_candles(START, START + pd.Timedelta(days=3), seed=8, universe=universe, assets=["XRP"])
    both = alone.merge(other, on=KEY)
    assert not np.allclose(both["close_x"], both["close_y"]), "the seed draws the path, the name only its parameters"


def test_one_market_factor_correlates_every_asset():
    """corr(i, j) ~ b_i b_j for every pair, the calibrated ones included, and each asset's own vol."""
    universe = Universe(exchanges={"binance": "USDT"}, assets=TEN)
    df = simulate_candles(START, START + pd.Timedelta(days=240), seed=7, universe=universe)
    returns = np.log(df.pivot_table(index="open_time", columns="symbol", values="close")).diff().asfreq("h")
    returns.columns = returns.columns.str.split("/").str[0]
    loading = pd.Series({a: simulator.asset_params(a)[3] for a in TEN})
    expected = np.outer(loading[returns.columns], loading[returns.columns])
    observed = returns.corr().to_numpy()
    off = ~np.eye(len(TEN), dtype=bool)
    assert np.abs(observed - expected)[off].max() < 0.12, pd.DataFrame(observed - expected, returns.columns)
    vol = pd.Series({a: simulator.asset_params(a)[1] for a in TEN})
    ratio = returns.std() / vol[returns.columns]
    assert ratio.between(0.75, 1.4).all(), ratio  # fat tails and pumps: a sample std wanders
    assert returns.kurt().gt(1).all() and returns.abs().apply(lambda r: r.autocorr(1)).gt(0.03).all()


def test_an_exchange_without_parameters_is_refused_in_one_line():
    with pytest.raises(SettingsError, match=r"no parameters for \['okx'\].*binance, coinbase, kraken"):
        simulate_candles(START, END, seed=7, universe=Universe(exchanges={"okx": "USDT"}))
