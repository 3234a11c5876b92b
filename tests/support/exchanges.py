"""Recorded exchange responses (tests/fixtures/exchanges/, see SOURCES.md there) and the universe they cover.

``universe/`` is one live run of the ``ingest`` flow as captured (five exchanges, ten assets, 5m and
1h, trades); ``errors/<scenario>/`` each answer one request of that run differently (a ban, a
throttle body, a server error, a malformed body). Layer a scenario in front of the run:
``replay_dirs=[ERRORS / scenario, UNIVERSE]``, or serve them as the "network" of a live run with
:func:`upstream`.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from sentinance.pipelines.sources.exchanges.capture import RecordReplayAdapter

FIXTURES = Path(__file__).parents[1] / "fixtures" / "exchanges"
UNIVERSE = FIXTURES / "universe"
ERRORS = FIXTURES / "errors"
ARCHIVE = FIXTURES / "binance_archive"
EXCHANGES = {"binance": "USDT", "coinbaseexchange": "USD", "kraken": "USD", "bybit": "USDT", "okx": "USDT"}
ASSETS = ["BTC", "ETH", "SOL", "XRP", "ADA", "DOGE", "AVAX", "LINK", "DOT", "LTC"]
INTERVALS = ["5m", "1h"]
START, END = pd.Timestamp("2024-03-07T22:00Z"), pd.Timestamp("2024-03-08T00:17Z")  # the captured run's window
RECORDED_AT = pd.Timestamp("2024-03-08T00:17:30Z")  # the servers' clock (Date) when it was captured


def universe_env() -> dict[str, str]:
    """The settings of the recorded universe (set them with monkeypatch.setenv)."""
    return {
        "SENTINANCE_EXCHANGES": ",".join(f"{e}={q}" for e, q in EXCHANGES.items()),
        "SENTINANCE_ASSETS": ",".join(ASSETS),
        "SENTINANCE_INTERVALS": ",".join(INTERVALS),
    }


def upstream(*scenarios: str) -> RecordReplayAdapter:
    """The recorded responses as the network of a ``live`` run: scenarios first, then the universe run."""
    layers = [ERRORS / s for s in scenarios] + [UNIVERSE]
    return RecordReplayAdapter("replay", [layer / e for layer in layers for e in EXCHANGES])


def files(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` by relative path, with its bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}
