"""Settings, read once from the environment (see README, "Settings")."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import sentinance  # noqa: F401  (fixes the environment before anything reads it)

EXCHANGES: tuple[str, ...] = ("binance", "coinbase", "kraken")
ASSETS: tuple[str, ...] = ("BTC", "ETH", "SOL")
QUOTES: dict[str, str] = {"binance": "USDT", "coinbase": "USD", "kraken": "USD"}
INTERVAL = "1h"
INTERVAL_SECONDS: dict[str, int] = {  # candle intervals the connectors and contracts know
    "1m": 60, "5m": 300, "15m": 900, "30m": 1800, "1h": 3600, "4h": 14400, "6h": 21600, "1d": 86400,
}
MODEL_NAME = "sentinance-lstm-forecaster"  # the registered model in MLflow


def canonical_symbol(exchange: str, asset: str) -> str:
    """Canonical instrument name with the exchange's quote kept, e.g. ``BTC/USDT``."""
    return f"{asset}/{QUOTES[exchange]}"


def instrument_id(exchange: str, symbol: str) -> str:
    """Entity key used by the marts and the feature store, e.g. ``binance:BTC/USDT``."""
    return f"{exchange}:{symbol}"


def _simulator_lags() -> dict[str, float]:
    """SENTINANCE_SIMULATOR_LAGS, e.g. ``coinbase=0.5,kraken=0.8``: per-exchange lags overriding the simulator's."""
    text = os.environ.get("SENTINANCE_SIMULATOR_LAGS", "").strip()
    lags: dict[str, float] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        exchange, _, value = (side.strip() for side in item.partition("="))
        try:
            lag = float(value)
        except ValueError:
            lag = float("nan")
        if exchange not in EXCHANGES or not 0 <= lag < 1:
            raise ValueError(f"SENTINANCE_SIMULATOR_LAGS: {item!r} is not <exchange>=<lag> with an exchange of "
                             f"{', '.join(EXCHANGES)} and 0 <= lag < 1")
        lags[exchange] = lag
    return lags


@dataclass(frozen=True)
class Settings:
    """Where state lives and which engines serve; every field has an environment variable."""

    home: Path = field(default_factory=lambda: Path(os.environ["SENTINANCE_HOME"]))
    database_url: str | None = field(default_factory=lambda: os.environ.get("SENTINANCE_DATABASE_URL") or None)
    spark_master: str = field(default_factory=lambda: os.environ.get("SENTINANCE_SPARK_MASTER", "local[*]"))
    delta_backend: str = field(default_factory=lambda: os.environ.get("SENTINANCE_DELTA_BACKEND", "delta-rs"))
    seed: int = field(default_factory=lambda: int(os.environ.get("SENTINANCE_SEED", "7")))
    simulator_lags: dict[str, float] = field(default_factory=_simulator_lags, hash=False)

    @cached_property
    def lake_dir(self) -> Path:
        return self.home / "lake"

    def table_path(self, layer: str, name: str) -> str:
        """Path of a Delta table, e.g. ``table_path("bronze", "candles")``."""
        return str(self.lake_dir / layer / name)

    @property
    def postgres_dir(self) -> Path:
        return self.home / "postgres"

    @property
    def mlflow_dir(self) -> Path:
        return self.home / "mlflow"

    @property
    def feast_dir(self) -> Path:
        return self.home / "feast"

    @property
    def dbt_target_dir(self) -> Path:
        return self.home / "dbt" / "target"

    @property
    def gx_dir(self) -> Path:
        return self.home / "gx"


def sequence_length() -> int:
    """Hours of history per model input; the mart materialises this many lags (SENTINANCE_SEQUENCE_LENGTH)."""
    return int(os.environ.get("SENTINANCE_SEQUENCE_LENGTH", "24"))


def get_settings() -> Settings:
    """Settings from the current environment (cheap; read anew on every call)."""
    return Settings()
