"""A cost-aware backtest of a return forecast on its out-of-sample window.

Every instrument is one equal sleeve (1/N of the book, N = the instruments in the window). At
the close of period t a rule turns the forecast of the next period's return into a position:

* ``long_flat``: 1 if the forecast is positive, else 0;
* ``long_short``: the forecast's sign (+1, 0, -1);
* ``buy_and_hold``: 1 throughout (the benchmark).

The position earns the realised simple return of the next period, ``exp(r) - 1``. Each change of
position costs ``(fees_bps + slippage_bps) / 1e4`` per unit traded (every rule starts flat, so
entering costs too; positions still open at the end are not closed). An instrument without a
forecast for a period (an outage, an incomplete row) is flat in it. Per period,
``net = (1/N) Σ_i w_i (exp(r_i) - 1) - cost · (1/N) Σ_i |w_i - w_i,prev|`` and the equity is the
product of ``1 + net`` from 1. The summary of a curve:

* ``total_return``: final equity - 1;
* ``sharpe``: mean / standard deviation (ddof 1) of the net period returns × sqrt(periods a year),
  0 for a strategy that never holds a position;
* ``max_drawdown``: the largest ``1 - equity / running peak`` (the peak includes the starting 1);
* ``turnover``: the mean over periods of the share of the book traded, ``(1/N) Σ_i |Δw_i|``;
* ``hit_rate``: among instrument-periods with a position, the share whose position earned
  (``w · r > 0``); None if it never held one.

Why plain NumPy and not vectorbt: docs/adr/0010-backtest-in-numpy.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from sentinance.catalog import ModelContract
from sentinance.settings import INTERVAL_SECONDS, SECONDS_PER_YEAR

RULES = ("long_flat", "long_short")
BUY_AND_HOLD = "buy_and_hold"
METRICS = ("total_return", "sharpe", "max_drawdown", "turnover", "hit_rate")


@dataclass(frozen=True)
class BacktestParams:
    fees_bps: float = 10.0  # exchange fee per unit traded (a taker fee of 0.10 %)
    slippage_bps: float = 5.0  # price impact and half the spread, per unit traded

    @property
    def cost(self) -> float:
        return (self.fees_bps + self.slippage_bps) / 1e4


@dataclass(frozen=True)
class Curve:
    """One strategy's path: net period returns and equity, indexed by the period traded."""

    strategy: str  # whose forecast: the model's column name, persistence, buy_and_hold
    rule: str
    net: pd.Series
    equity: pd.Series
    summary: dict[str, float | None]


@dataclass(frozen=True)
class Backtest:
    curves: list[Curve]
    params: BacktestParams
    periods: int
    instruments: int

    def metrics(self, prefix: str = "backtest_") -> dict[str, float]:
        """``<prefix><strategy>_<rule>_<metric>`` of every curve (buy-and-hold: ``<prefix>buy_and_hold_<metric>``),
        the metrics that exist (no hit rate without a position)."""
        found = {}
        for curve in self.curves:
            name = curve.strategy if curve.rule == BUY_AND_HOLD else f"{curve.strategy}_{curve.rule}"
            found.update({f"{prefix}{name}_{k}": v for k, v in curve.summary.items() if v is not None})
        return found

    def equity(self) -> pd.DataFrame:
        """Every curve's equity, one column per ``<strategy>_<rule>`` (buy-and-hold: ``buy_and_hold``)."""
        return pd.DataFrame(
            {c.strategy if c.rule == BUY_AND_HOLD else f"{c.strategy}_{c.rule}": c.equity for c in self.curves}
        )

    def rows(self) -> pd.DataFrame:
        """One row per curve, the columns of :data:`sentinance.catalog.BACKTESTS` that a backtest knows."""
        return pd.DataFrame(
            [
                {
                    "strategy": c.strategy,
                    "rule": c.rule,
                    "window_start": c.equity.index.min(),
                    "window_end": c.equity.index.max(),
                    "periods": self.periods,
                    "instruments": self.instruments,
                    "fees_bps": self.params.fees_bps,
                    "slippage_bps": self.params.slippage_bps,
                    **c.summary,
                }
                for c in self.curves
            ]
        )


def positions(forecast: np.ndarray, rule: str) -> np.ndarray:
    """The rule's position for each forecast (NaN: no forecast, flat)."""
    forecast = np.nan_to_num(np.asarray(forecast, np.float64), nan=0.0)
    if rule == "long_flat":
        return (forecast > 0).astype(np.float64)
    if rule == "long_short":
        return np.sign(forecast)
    if rule == BUY_AND_HOLD:
        return np.ones_like(forecast)
    raise ValueError(f"unknown rule {rule!r}; known: {', '.join((*RULES, BUY_AND_HOLD))}")


def summarize(
    weights: np.ndarray, returns: np.ndarray, cost: float, periods_per_year: float
) -> tuple[np.ndarray, dict[str, float | None]]:
    """Net period returns and the summary of positions ``weights`` (periods × instruments, 0 where flat)
    earning simple ``returns`` (the same shape, 0 where unknown) at ``cost`` per unit traded."""
    n = weights.shape[1]
    traded = np.abs(np.diff(weights, axis=0, prepend=np.zeros((1, n)))).sum(axis=1) / n
    net = (weights * returns).sum(axis=1) / n - cost * traded
    equity = np.cumprod(1 + net)
    peaks = np.maximum.accumulate(np.concatenate([[1.0], equity]))[1:]
    std = float(np.std(net, ddof=1)) if len(net) > 1 else 0.0
    held = weights != 0
    summary: dict[str, float | None] = {
        "total_return": float(equity[-1] - 1),
        "sharpe": float(np.mean(net) / std * math.sqrt(periods_per_year)) if std > 0 else 0.0,
        "max_drawdown": float(np.max(1 - equity / peaks)),
        "turnover": float(np.mean(traded)),
        "hit_rate": float(np.mean((weights * returns)[held] > 0)) if held.any() else None,
    }
    return net, summary


def run(rows: pd.DataFrame, signals: dict[str, str], contract: ModelContract, params: BacktestParams) -> Backtest:
    """Backtest each forecast column of ``signals`` (strategy -> column of ``rows``) under every rule,
    and buy-and-hold, on ``rows``: one per instrument and period with ``actual`` (the realised next
    log return), ``instrument_id`` and ``event_timestamp``."""
    grid = rows.pivot_table(index=contract.timestamp, columns=contract.entity_key, values="actual", aggfunc="last")
    times = pd.date_range(
        grid.index.min(), grid.index.max(), freq=pd.Timedelta(seconds=INTERVAL_SECONDS[contract.interval])
    )
    grid = grid.reindex(times)
    returns = np.nan_to_num(np.expm1(grid.to_numpy(np.float64)), nan=0.0)
    known = grid.notna().to_numpy()
    periods_per_year = SECONDS_PER_YEAR / INTERVAL_SECONDS[contract.interval]

    def curve(strategy: str, rule: str, forecast: pd.DataFrame | None) -> Curve:
        values = np.ones(returns.shape) if forecast is None else forecast.to_numpy(np.float64)
        weights = np.where(known, positions(values, rule), 0.0)
        net, summary = summarize(weights, returns, params.cost, periods_per_year)
        return Curve(strategy, rule, pd.Series(net, times), pd.Series(np.cumprod(1 + net), times), summary)

    curves = [
        curve(
            strategy,
            rule,
            rows.pivot_table(
                index=contract.timestamp, columns=contract.entity_key, values=column, aggfunc="last"
            ).reindex(index=times, columns=grid.columns),
        )
        for strategy, column in signals.items()
        for rule in RULES
    ]
    curves.append(curve(BUY_AND_HOLD, BUY_AND_HOLD, None))
    return Backtest(curves, params, len(times), grid.shape[1])
