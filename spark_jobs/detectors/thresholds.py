"""The manipulation detectors' thresholds: one place, documented defaults, overridable from TOML.

:func:`load_thresholds` reads the defaults below, then the TOML file named by
``SENTINANCE_DETECTORS_CONFIG`` (or the path given), whose tables ``[pump_and_dump]`` and
``[wash_trading]`` override single fields::

    [pump_and_dump]
    price_z = 3.5

    [wash_trading]
    min_signals = 3

What each statistic measures, and the precision and recall the defaults reach on the
simulator's labels: docs/detectors.md.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

from sentinance.errors import SettingsError


@dataclass(frozen=True)
class PumpAndDumpThresholds:
    """A venue-led price run-up on heavy volume that reverses within a horizon."""

    baseline_hours: int = 168  # trailing window of the robust baselines (median, MAD), hours before the candle
    min_baseline_hours: int = 48  # fewer candles in the window: no z-score, no detection
    max_run_up_hours: int = 6  # longest run-up considered (its length k is chosen per hour)
    price_z: float = 2.5  # robust z of the k-hour log return against k hours of normal returns
    volume_z: float = 2.0  # highest robust z of log volume over the run-up's hours
    excess_z: float = 4.0  # robust z of the run-up in excess of the other venues' mean price
    lead_fraction: float = 0.3  # that excess as a share of the run-up (lagging venues explain less)
    min_confirmations: int = 1  # other venues that moved the same way (arbitrage): rules out a bad print
    confirm_fraction: float = 0.25  # ... rising, then falling, by this share of its moves (peak <= 1 h later)
    reversal_hours: int = 4  # horizon after the peak in which the dump must come
    reversal_fraction: float = 0.5  # share of the run-up given back within that horizon


@dataclass(frozen=True)
class WashTradingThresholds:
    """Hours of a series whose trades look self-matched; consecutive flagged hours form one episode."""

    baseline_hours: int = 168  # trailing window of the robust baselines, hours before the hour
    min_baseline_hours: int = 24  # fewer judged hours in the window: no z-score, no detection
    min_trades: int = 10  # hours with fewer trades are not judged
    round_significant_digits: int = 2  # a size with at most this many significant digits is round
    benford_z: float = 4.0  # robust z of the first-digit distribution's distance from Benford's law
    round_z: float = 4.0  # robust z of the share of round sizes
    repeat_z: float = 4.0  # robust z of the share of trades whose exact size recurs in the hour
    volume_z: float = 2.0  # robust z of log volume ...
    impact_z: float = -2.0  # ... while the robust z of log(price range / volume) is at most this
    min_share_scale: float = 0.02  # floor of a share's robust scale (shares that are always 0 have MAD 0)
    min_signals: int = 2  # signals (benford, round, repeat, no_impact) that must fire together


@dataclass(frozen=True)
class DetectorThresholds:
    pump_and_dump: PumpAndDumpThresholds = field(default_factory=PumpAndDumpThresholds)
    wash_trading: WashTradingThresholds = field(default_factory=WashTradingThresholds)


def load_thresholds(path: str | Path | None = None) -> DetectorThresholds:
    """The defaults overridden by the TOML file at ``path`` (``settings.detectors_config``, if set)."""
    thresholds = DetectorThresholds()
    if not path:
        return thresholds
    with open(path, "rb") as file:
        overrides = tomllib.load(file)
    unknown = sorted(set(overrides) - {f.name for f in fields(thresholds)})
    if unknown:
        raise SettingsError(f"{path}: unknown detector section(s) {unknown}; expected pump_and_dump, wash_trading")
    return replace(
        thresholds,
        **{
            section: _override(getattr(thresholds, section), values, f"{path} [{section}]")
            for section, values in overrides.items()
        },
    )


def _override(defaults, values: dict, where: str):
    types = {f.name: type(getattr(defaults, f.name)) for f in fields(defaults)}
    unknown = sorted(set(values) - set(types))
    if unknown:
        raise SettingsError(f"{where}: unknown threshold(s) {unknown}; known: {sorted(types)}")
    wrong = [
        f"{k} = {v!r} (expected {types[k].__name__})"
        for k, v in values.items()
        if isinstance(v, bool) or not isinstance(v, (int, float)) or (types[k] is int and not isinstance(v, int))
    ]
    if wrong:
        raise SettingsError(f"{where}: {', '.join(wrong)}")
    return replace(defaults, **{k: types[k](v) for k, v in values.items()})
