"""The backtest's rules, costs and summary metrics against a small book worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from sentinance.catalog import FORECASTER
from sentinance.ml import backtest

T0 = pd.Timestamp("2026-01-01", tz="UTC")
PARAMS = backtest.BacktestParams(fees_bps=10, slippage_bps=5)  # 0.0015 per unit of a sleeve traded
PERIODS_PER_YEAR = 365 * 24  # hourly candles


def _rows() -> pd.DataFrame:
    """Two instruments over three hours: simple returns A +10 %, -10 %, +20 %; B -5 %, +5 %, 0 %."""
    simple = {"x:A": [0.10, -0.10, 0.20], "x:B": [-0.05, 0.05, 0.0]}
    forecast = {"x:A": [0.01, 0.02, -0.01], "x:B": [-0.01, 0.01, 0.03]}
    return pd.DataFrame(
        [
            {
                "instrument_id": instrument,
                "event_timestamp": T0 + pd.Timedelta(hours=t),
                "actual": math.log1p(simple[instrument][t]),  # the realised next log return
                "lstm": forecast[instrument][t],
            }
            for t in range(3)
            for instrument in simple
        ]
    )


def _curve(result: backtest.Backtest, strategy: str, rule: str) -> backtest.Curve:
    return next(c for c in result.curves if (c.strategy, c.rule) == (strategy, rule))


def test_long_flat_long_short_and_buy_and_hold_by_hand() -> None:
    result = backtest.run(_rows(), {"lstm": "lstm"}, FORECASTER, PARAMS)
    assert (result.periods, result.instruments) == (3, 2)

    # long/flat: A 1, 1, 0 and B 0, 1, 1; half the book traded each hour (entering A, entering B, leaving A)
    net = [(0.10 - 0) / 2 - 0.0015 * 0.5, (-0.10 + 0.05) / 2 - 0.0015 * 0.5, (0 + 0) / 2 - 0.0015 * 0.5]
    equity = np.cumprod(1 + np.array(net))
    long_flat = _curve(result, "lstm", "long_flat")
    np.testing.assert_allclose(long_flat.net, net)
    np.testing.assert_allclose(long_flat.equity, equity)
    assert long_flat.summary["total_return"] == pytest.approx(equity[-1] - 1)
    assert long_flat.summary["sharpe"] == pytest.approx(np.mean(net) / np.std(net, ddof=1) * np.sqrt(PERIODS_PER_YEAR))
    assert long_flat.summary["max_drawdown"] == pytest.approx(1 - equity[2] / equity[0])  # the peak is hour 0
    assert long_flat.summary["turnover"] == pytest.approx(0.5)
    assert long_flat.summary["hit_rate"] == pytest.approx(2 / 4)  # A +10 %, A -10 %, B +5 %, B 0 % (no gain)

    # long/short: A 1, 1, -1 and B -1, 1, 1; the whole book traded each hour (entering, B flips, A flips)
    net = [(0.10 + 0.05) / 2 - 0.0015, (-0.10 + 0.05) / 2 - 0.0015, (-0.20 + 0) / 2 - 0.0015]
    long_short = _curve(result, "lstm", "long_short")
    np.testing.assert_allclose(long_short.net, net)
    assert long_short.summary["total_return"] == pytest.approx(np.prod(1 + np.array(net)) - 1)
    assert long_short.summary["max_drawdown"] == pytest.approx(1 - np.prod(1 + np.array(net)) / (1 + net[0]))
    assert long_short.summary["turnover"] == pytest.approx(1.0) and long_short.summary["hit_rate"] == pytest.approx(0.5)

    # buy-and-hold pays to enter once
    net = [(0.10 - 0.05) / 2 - 0.0015, (-0.10 + 0.05) / 2, (0.20 + 0) / 2]
    hold = _curve(result, backtest.BUY_AND_HOLD, backtest.BUY_AND_HOLD)
    np.testing.assert_allclose(hold.net, net)
    assert hold.summary["turnover"] == pytest.approx(1 / 3) and hold.summary["hit_rate"] == pytest.approx(3 / 6)
    assert hold.summary["max_drawdown"] == pytest.approx(0.025)  # hour 1 falls 2.5 % below hour 0's peak


def test_an_instrument_without_a_forecast_is_flat_and_a_strategy_out_of_the_market_earns_nothing() -> None:
    rows = _rows()
    gap = (rows["instrument_id"] == "x:B") & (rows["event_timestamp"] == T0 + pd.Timedelta(hours=2))
    result = backtest.run(rows[~gap], {"lstm": "lstm"}, FORECASTER, PARAMS)
    # long/flat B: 0, 1, then flat for want of a forecast: leaving B and A costs the whole book at hour 2
    assert _curve(result, "lstm", "long_flat").net.iloc[-1] == pytest.approx(-0.0015)

    never = backtest.run(rows.assign(lstm=-1.0), {"lstm": "lstm"}, FORECASTER, PARAMS)
    flat = _curve(never, "lstm", "long_flat").summary
    assert flat == {"total_return": 0.0, "sharpe": 0.0, "max_drawdown": 0.0, "turnover": 0.0, "hit_rate": None}
    assert "backtest_lstm_long_flat_hit_rate" not in never.metrics()  # no position, no hit rate


def test_the_summary_is_named_for_mlflow_and_laid_out_for_the_backtests_table() -> None:
    result = backtest.run(_rows(), {"lstm": "lstm", "persistence": "lstm"}, FORECASTER, PARAMS)
    metrics = result.metrics()
    names = ["lstm_long_flat", "lstm_long_short", "persistence_long_flat", "persistence_long_short", "buy_and_hold"]
    for name in names:
        assert {f"backtest_{name}_{m}" for m in backtest.METRICS} <= set(metrics)
    assert list(result.equity().columns) == names
    rows = result.rows()
    assert len(rows) == 5 and set(rows["rule"]) == {"long_flat", "long_short", "buy_and_hold"}
    assert (rows["window_start"] == T0).all() and (rows["window_end"] == T0 + pd.Timedelta(hours=2)).all()
