"""The `ingest` Prefect flow end to end on the simulator (the exchanges: test_ingest_exchanges.py).

Each test points SENTINANCE_HOME at an empty state dir of its own (a setting, not a mock); the
flows, GX, Delta and Prefect's artifacts run for real.
"""

from __future__ import annotations

import json
import tempfile

import pandas as pd
import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

from sentinance import catalog, lake
from sentinance.catalog import CANDLE_KEYS, TRADE_KEYS
from sentinance.errors import SettingsError
from sentinance.pipelines.flows.ingest import ingest, resolve_series
from sentinance.pipelines.landing.bronze import watermarks
from sentinance.pipelines.sources.simulator import simulate_candles, simulate_trade_labels, simulate_trades
from sentinance.settings import Settings, get_settings

H = pd.Timedelta(hours=1)


@pytest.fixture
def home(monkeypatch: pytest.MonkeyPatch) -> Settings:
    """A fresh state dir for the flow (it reads its settings from the environment)."""
    monkeypatch.setenv("SENTINANCE_HOME", tempfile.mkdtemp(prefix="sentinance-ingest-"))
    return get_settings()


def _artifacts(flow_run_id: str) -> dict[str, object]:
    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
        )
    return {a.key: a.data for a in found}


def _read(settings: Settings, name: str, keys: list[str]) -> pd.DataFrame:
    return lake.read(catalog.table(f"bronze/{name}").path(settings)).sort_values(keys, ignore_index=True)


def _outage_end() -> pd.Timestamp:
    """A day after the first hour kraken's BTC series misses (an outage), so a 3-day window has a gap."""
    start = pd.Timestamp("2025-05-01T00:00Z")
    present = set(
        simulate_candles(start, start + pd.Timedelta(days=60), seed=7, exchanges=["kraken"], assets=["BTC"])[
            "open_time"
        ]
    )
    missing = next(h for h in pd.date_range(start, periods=60 * 24, freq="h") if h not in present)
    return missing + pd.Timedelta(days=1)


def test_simulator_run_lands_trades_candles_labels_and_gaps(home: Settings) -> None:
    end = _outage_end()
    series = {"exchanges": ["binance", "kraken"], "assets": ["BTC", "SOL"]}
    result = ingest(exchanges=series["exchanges"], symbols=series["assets"], end=end, days=3)

    start = end - pd.Timedelta(days=3)
    expected = simulate_candles(start, end, seed=home.seed, **series).sort_values(CANDLE_KEYS, ignore_index=True)
    candles = _read(home, "candles", CANDLE_KEYS)
    pd.testing.assert_frame_equal(candles[expected.columns], expected, check_dtype=False)
    trades = _read(home, "trades", TRADE_KEYS)
    assert len(trades) == len(simulate_trades(start, end, seed=home.seed, **series)) == expected["trade_count"].sum()
    assert result.failures == {} and result.candles.landed == len(expected) and result.trades.landed == len(trades)
    assert trades["source"].eq("simulator").all() and trades["flow_run_id"].eq(result.flow_run_id).all()

    wash = lake.read(catalog.SIMULATOR_TRADE_LABELS.path(home))
    assert len(wash) == len(simulate_trade_labels(start, end, seed=home.seed, **series))
    assert wash.merge(trades, on=TRADE_KEYS).shape[0] == len(wash), "every labelled trade is in bronze"
    assert lake.exists(catalog.SIMULATOR_LABELS.path(home))

    gaps = lake.read(catalog.GAP_REPORT.path(home))
    assert {"kraken"} <= set(gaps["exchange"]) and gaps["missing"].sum() == 4 * 3 * 24 - len(expected)
    assert sum(g["missing"] for g in result.gaps) == gaps["missing"].sum()
    assert result.series["kraken:BTC/USD:1h candles"]["missing_candles"] > 0

    artifacts = _artifacts(result.flow_run_id)
    assert artifacts["ingest-progress"] == 100.0
    report = pd.DataFrame(json.loads(artifacts["ingest-report"]))  # a table artifact is stored as JSON
    assert sorted(set(report["symbol"])) == ["BTC/USD", "BTC/USDT", "SOL/USD", "SOL/USDT"]
    assert (report["landed"] > 0).all() and report["status"].eq("landed").all()
    assert sorted(report["kind"].value_counts().items()) == [("candles", 4), ("trades", 4)]

    versions = {t: lake.version(catalog.table(f"bronze/{t}").path(home)) for t in ("candles", "trades")}
    again = ingest(exchanges=series["exchanges"], symbols=series["assets"], end=end, days=3)
    assert again.candles.received == again.trades.received == 0
    assert {t: lake.version(catalog.table(f"bronze/{t}").path(home)) for t in versions} == versions


def test_simulator_runs_extend_bronze_incrementally(home: Settings) -> None:
    """Candles only: a rerun within the same closed hours lands nothing, a later run only the new hours,
    after which bronze equals one simulation of the whole window; the episode labels land once."""
    end, later = pd.Timestamp("2025-06-01T00:00Z"), pd.Timestamp("2025-06-01T06:00Z")
    first = ingest(end=end, days=10, include_trades=False)
    assert first.candles.inserted == first.candles.received == len(simulate_candles(end - 240 * H, end, seed=home.seed))
    labels = lake.read(catalog.SIMULATOR_LABELS.path(home))
    assert first.labels_inserted == len(labels) >= 1 and labels["episode_id"].is_unique
    versions = {t: lake.version(catalog.table(f"bronze/{t}").path(home)) for t in ("candles", "simulator_labels")}

    rerun = ingest(end=end + pd.Timedelta(minutes=30), days=10, include_trades=False)
    assert (rerun.candles.received, rerun.labels_inserted) == (0, 0)
    assert {t: lake.version(catalog.table(f"bronze/{t}").path(home)) for t in versions} == versions

    extended = ingest(end=later, days=10, include_trades=False)
    new_hours = simulate_candles(end, later, seed=home.seed)
    assert extended.candles.received == extended.candles.inserted == len(new_hours)
    full = simulate_candles(end - 240 * H, later, seed=home.seed).sort_values(CANDLE_KEYS, ignore_index=True)
    candles = _read(home, "candles", CANDLE_KEYS)
    pd.testing.assert_frame_equal(candles[full.columns], full, check_dtype=False)
    assert set(candles["flow_run_id"]) == {first.flow_run_id, extended.flow_run_id}
    assert watermarks(home) == dict(full.groupby(["exchange", "symbol", "interval"])["open_time"].max().items())


def test_the_simulator_lands_every_interval_of_the_universe(home: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each interval is its own series with its own watermark: 5m and 4h candles of the same trades."""
    monkeypatch.setenv("SENTINANCE_INTERVALS", "5m,4h")
    end = pd.Timestamp("2025-06-01T00:00Z")
    result = ingest(end=end, days=1, include_trades=False, exchanges=["binance"], symbols=["BTC"])
    candles = _read(home, "candles", CANDLE_KEYS)
    for interval in ("5m", "4h"):
        expected = simulate_candles(
            end - 24 * H, end, seed=home.seed, exchanges=["binance"], assets=["BTC"], interval=interval
        )
        got = candles[candles["interval"] == interval].reset_index(drop=True)
        pd.testing.assert_frame_equal(got[expected.columns], expected, check_dtype=False)
    assert result.candles.inserted == len(candles)  # a 5m period without a trade has no candle: a gap


def test_bad_parameters_fail_before_any_work(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = get_settings()
    with pytest.raises(SettingsError, match="source must be one of"):
        resolve_series(settings, None, None, "ftp")
    with pytest.raises(SettingsError, match="the simulator quotes"):
        resolve_series(settings, ["binance"], ["BTC/EUR"], "simulator")
    with pytest.raises(SettingsError, match="exchange 'bitstamp' not in the universe"):
        resolve_series(settings, ["bitstamp"], None, "live")
    with pytest.raises(SettingsError, match="interval"):
        ingest(intervals=["5m"])  # not in the universe
    monkeypatch.setenv("SENTINANCE_EXCHANGES", "nope=USD")
    with pytest.raises(SettingsError, match="exchange 'nope' is not a ccxt exchange id"):
        ingest(source="live")
    assert resolve_series(settings, ["coinbase"], ["eth", "BTC/USDT"], "live") == [
        ("coinbase", "ETH/USD"),
        ("coinbase", "BTC/USDT"),
    ]
