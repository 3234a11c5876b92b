"""Feast over a synthetic ``marts.fct_training_features`` in a real PostgreSQL: apply,
materialize, point-in-time historical features and the online store."""

from __future__ import annotations

import os
import tempfile
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sentinance import services
from sentinance.config import Settings, canonical_symbol, instrument_id
from sentinance.ml import feature_store

SEQUENCE_LENGTH = 8
HOURS = 480
FEATURES = ("log_return", "rsi_14", "sma_ratio", "basis_bps")
END = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0)  # exclusive


def synthetic_mart(hours: int = HOURS, sequence_length: int = SEQUENCE_LENGTH, seed: int = 11) -> pd.DataFrame:
    """Rows shaped like the mart contract for BTC on the three exchanges.

    Each exchange's log price is a shared random walk plus a mean-reverting basis
    (AR(1), phi 0.5), so the next return is partly predictable from ``basis_bps``.
    """
    rng = np.random.default_rng(seed)
    times = pd.date_range(end=END - timedelta(hours=1), periods=hours, freq="h", tz="UTC")
    market = np.log(30_000) + np.cumsum(rng.normal(0, 0.001, hours))
    exchanges = ("binance", "coinbase", "kraken")
    basis = np.zeros((len(exchanges), hours))
    for t in range(1, hours):
        basis[:, t] = 0.5 * basis[:, t - 1] + rng.normal(0, 30, len(exchanges))
    closes = np.exp(market + basis / 1e4)
    mean_close = closes.mean(axis=0)
    frames = []
    for i, exchange in enumerate(exchanges):
        symbol = canonical_symbol(exchange, "BTC")
        close = pd.Series(closes[i])
        change = close.diff()
        gain = change.clip(lower=0).ewm(alpha=1 / 14, adjust=False, min_periods=14).mean()
        loss = (-change.clip(upper=0)).ewm(alpha=1 / 14, adjust=False, min_periods=14).mean()
        frame = pd.DataFrame(
            {
                "instrument_id": instrument_id(exchange, symbol),
                "exchange": exchange,
                "symbol": symbol,
                "asset": "BTC",
                "event_timestamp": times,
                "close": close,
                "log_return": np.log(close).diff(),
                "rsi_14": 100 - 100 / (1 + gain / loss),
                "sma_ratio": close / close.rolling(20).mean() - 1,
                "basis_bps": (close / mean_close - 1) * 1e4,
            }
        )
        warmup = frame.index < 20
        for feature in FEATURES:
            for lag in range(sequence_length):
                frame[f"{feature}_lag_{lag}"] = frame[feature].shift(lag)
        frame["next_log_return"] = frame["log_return"].shift(-1)
        lag_columns = [c for c in frame.columns if "_lag_" in c]
        frame["is_complete"] = ~warmup & frame[lag_columns].notna().all(axis=1)
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def write_mart(settings: Settings, mart: pd.DataFrame) -> None:
    """(Re)create ``marts.fct_training_features`` with ``mart``'s rows."""
    types = {"event_timestamp": "timestamptz", "is_complete": "boolean"}
    columns = ", ".join(
        f"{c} {types.get(c, 'text' if mart[c].dtype == object else 'double precision')}" for c in mart.columns
    )
    with services.connect(settings) as conn, conn.cursor() as cur:
        cur.execute("CREATE SCHEMA IF NOT EXISTS marts")
        cur.execute("DROP TABLE IF EXISTS marts.fct_training_features")
        cur.execute(f"CREATE TABLE marts.fct_training_features ({columns})")
        rows = mart.astype(object).where(mart.notna(), None).itertuples(index=False)
        with cur.copy(f"COPY marts.fct_training_features ({', '.join(mart.columns)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)


@pytest.fixture(scope="module")
def ml_settings():
    """A state dir of the module's own (PostgreSQL, Feast, MLflow, lake) holding the synthetic
    mart, with SENTINANCE_SEQUENCE_LENGTH matching it; the mart is applied and materialized."""
    previous = os.environ.get("SENTINANCE_SEQUENCE_LENGTH")
    os.environ["SENTINANCE_SEQUENCE_LENGTH"] = str(SEQUENCE_LENGTH)
    # not under pytest's tmp dirs: pytest keeps their root 0700, which the embedded
    # PostgreSQL (run as its own system user when we are root) cannot traverse
    settings = Settings(home=Path(tempfile.mkdtemp(prefix="sentinance-ml-")))
    mart = synthetic_mart()
    write_mart(settings, mart)
    feature_store.apply(settings)
    feature_store.materialize(settings, END)
    yield settings, mart
    if previous is None:
        del os.environ["SENTINANCE_SEQUENCE_LENGTH"]
    else:
        os.environ["SENTINANCE_SEQUENCE_LENGTH"] = previous


def test_apply_registers_the_feature_service(ml_settings) -> None:
    settings, _ = ml_settings
    store = feature_store.feature_store(settings)
    service = store.get_feature_service(feature_store.FEATURE_SERVICE)
    names = {f.name for projection in service.feature_view_projections for f in projection.features}
    assert {"close", "basis_bps_lag_0", f"rsi_14_lag_{SEQUENCE_LENGTH - 1}"} <= names
    assert f"rsi_14_lag_{SEQUENCE_LENGTH}" not in names
    assert (settings.feast_dir / "registry.db").exists()


def test_historical_features_are_point_in_time_correct(ml_settings) -> None:
    settings, mart = ml_settings
    rows = mart[mart["instrument_id"] == "kraken:BTC/USD"].set_index("event_timestamp")
    t0, t1 = rows.index[100], rows.index[101]
    entity_df = pd.DataFrame(
        {
            "instrument_id": ["kraken:BTC/USD", "kraken:BTC/USD"],
            "event_timestamp": [t0, t0 + (t1 - t0) / 2],  # on a row, and between two rows
            "label": [1.0, 2.0],
        }
    )
    result = feature_store.historical_features(settings, entity_df)
    assert len(result) == 2 and list(result["label"]) == [1.0, 2.0]
    for _, row in result.iterrows():
        assert row["basis_bps_lag_0"] == pytest.approx(rows.loc[t0, "basis_bps"])
        assert row["close"] == pytest.approx(rows.loc[t0, "close"])
        assert row["basis_bps_lag_0"] != pytest.approx(rows.loc[t1, "basis_bps"])


def test_online_features_hold_the_latest_row(ml_settings) -> None:
    settings, mart = ml_settings
    ids = sorted(mart["instrument_id"].unique())
    online = feature_store.online_features(settings, [*ids, "nowhere:BTC/USD"])
    latest = mart.sort_values("event_timestamp").groupby("instrument_id").tail(1).set_index("instrument_id")
    for _, row in online.iloc[:-1].iterrows():
        expected = latest.loc[row["instrument_id"]]
        assert row["event_timestamp"] == expected["event_timestamp"]
        assert row["close"] == pytest.approx(expected["close"])
        assert row[f"log_return_lag_{SEQUENCE_LENGTH - 1}"] == pytest.approx(expected[f"log_return_lag_{SEQUENCE_LENGTH - 1}"])
    assert pd.isna(online.iloc[-1]["event_timestamp"]) and pd.isna(online.iloc[-1]["close"])


def test_materialize_is_incremental(ml_settings) -> None:
    settings, _ = ml_settings
    result = feature_store.materialize(settings, END + timedelta(hours=1))
    assert result["start"] == END.isoformat()


@pytest.fixture
def online_store_env():
    """Restore SENTINANCE_FEAST_ONLINE_STORE / SENTINANCE_FEAST_REDIS after the test."""
    saved = {k: os.environ.get(k) for k in ("SENTINANCE_FEAST_ONLINE_STORE", "SENTINANCE_FEAST_REDIS")}
    yield os.environ
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def test_postgres_online_store_serves_what_sqlite_serves(ml_settings, online_store_env) -> None:
    settings, mart = ml_settings
    ids = sorted(mart["instrument_id"].unique())
    expected = feature_store.online_features(settings, ids)
    online_store_env["SENTINANCE_FEAST_ONLINE_STORE"] = "postgres"
    store = feature_store.feature_store(settings)
    assert store.config.online_store.type == "postgres" and store.config.online_store.db_schema == "feast_online"
    feature_store.apply(settings)  # its own registry: nothing materialized yet
    assert feature_store.materialize(settings, END)["start"] == (END - timedelta(hours=6)).isoformat()
    served = feature_store.online_features(settings, ids)
    pd.testing.assert_frame_equal(served[expected.columns], expected)
    with services.connect(settings) as conn:
        tables = conn.execute("SELECT count(*) FROM information_schema.tables WHERE table_schema = 'feast_online'").fetchone()[0]
    assert tables == 1


def test_online_store_is_chosen_by_configuration(ml_settings, online_store_env) -> None:
    settings, _ = ml_settings
    online_store_env["SENTINANCE_FEAST_ONLINE_STORE"] = "redis"
    online_store_env.pop("SENTINANCE_FEAST_REDIS", None)
    with pytest.raises(ValueError, match="SENTINANCE_FEAST_REDIS"):
        feature_store.feature_store(settings)
    online_store_env["SENTINANCE_FEAST_REDIS"] = "redis.internal:6379,db=2"
    config = feature_store.feature_store(settings).config
    assert config.online_store.type == "redis" and config.online_store.connection_string == "redis.internal:6379,db=2"
    assert config.registry.path.endswith("registry-redis.db")
    online_store_env["SENTINANCE_FEAST_ONLINE_STORE"] = "cassandra"
    with pytest.raises(ValueError, match="one of"):
        feature_store.feature_store(settings)
    online_store_env.pop("SENTINANCE_FEAST_ONLINE_STORE")
    assert feature_store.feature_store(settings).config.online_store.type == "sqlite"
