"""The simulator's ground truth into bronze: its manipulation episodes and every wash trade.

Only the simulator source lands these (live data has no labels); the detectors are scored
against them (``docs/detectors.md``).
"""

from __future__ import annotations

import pandas as pd

from sentinance import catalog, lake
from sentinance.pipelines.sources.simulator import simulate_labels, simulate_trade_labels
from sentinance.settings import Settings


def land_simulator_labels(
    settings: Settings,
    start: pd.Timestamp,
    end: pd.Timestamp,
    *,
    exchanges: list[str] | None = None,
    assets: list[str] | None = None,
    trades: bool = True,
) -> int:
    """Merge the simulator's episodes overlapping ``[start, end)`` into ``bronze/simulator_labels`` and, with
    ``trades``, its wash trades into ``bronze/simulator_trade_labels``; returns the new rows."""
    selection = {"seed": settings.seed, "exchanges": exchanges, "assets": assets, "universe": settings.universe}
    episodes = simulate_labels(start, end, **selection)
    inserted = lake.upsert(settings, catalog.SIMULATOR_LABELS, episodes, change_column="end_time").inserted
    if trades:
        wash = simulate_trade_labels(start, end, **selection)
        inserted += lake.upsert(settings, catalog.SIMULATOR_TRADE_LABELS, wash).inserted
    return inserted
