"""Settings: every ``SENTINANCE_*`` variable, read and validated here and nowhere else.

Values come from, in order of precedence: keyword arguments, the environment
(``SENTINANCE_<FIELD>``), the TOML file named by ``SENTINANCE_CONFIG`` (top-level keys are the
field names), then the defaults below. An invalid value raises :class:`SettingsError` with one
line naming the variable and what it accepts.

Importing this module changes nothing. :func:`configure` is the one place that writes the
process environment the embedded tools read (telemetry off, Prefect's home in the state dir,
servers on loopback) and creates the state dir; the CLI, the flows, the notebooks and the
tests call it once before they start any tool.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from sentinance.errors import SettingsError

ENV_PREFIX = "SENTINANCE_"
CONFIG_ENV = f"{ENV_PREFIX}CONFIG"

# candle interval codes the sources, contracts and features know, in seconds
INTERVAL_SECONDS: dict[str, int] = {
    "1m": 60,
    "5m": 300,
    "15m": 900,
    "30m": 1800,
    "1h": 3600,
    "4h": 14400,
    "6h": 21600,
    "1d": 86400,
}
SECONDS_PER_DAY = 86400
SECONDS_PER_YEAR = 365 * SECONDS_PER_DAY  # crypto trades 24/7: a year has SECONDS_PER_YEAR / interval candles
DEFAULT_EXCHANGES = {"binance": "USDT", "coinbase": "USD", "kraken": "USD"}
DEFAULT_ASSETS = ("BTC", "ETH", "SOL")
DEFAULT_INTERVALS = ("1h",)
# where SENTINANCE_FAULT can stop a run (the fault suite, tests/faults/; docs/reliability.md), in flow order
FAULT_POINTS = (
    "prefect-start",  # the lakehouse flow run has begun and holds the state lock; nothing written yet
    "candles-merged",  # bronze candles merged, trades not yet
    "trades-merged",  # bronze trades merged, gap report and labels not yet
    "silver-write",  # silver's cross-exchange table written, candle features not yet
    "warehouse-copy",  # a warehouse load has COPYed its rows, its transaction not committed
    "dbt-build",  # dbt has built the first incremental model, the rest not yet
    "feast-materialize",  # Feast marked the view as materializing and opens the online store
    "registry-alias",  # a model version is registered in MLflow, its aliases not yet set
    "predictions-load",  # predictions merged into Delta, not yet loaded into PostgreSQL
)
FAULT_TARGETS = ("group", "postgres")  # what a fault kills: the run's process group, or the embedded PostgreSQL
SPARK_MASTER = re.compile(r"^(local(\[(\*|[1-9]\d*)(,\s*[1-9]\d*)?\])?|spark://.+|k8s://.+|yarn|mesos://.+)$")

Series = tuple[str, str, str]  # (exchange, symbol, interval)


def interval_seconds(interval: str) -> int:
    """The length of a candle interval code of :data:`INTERVAL_SECONDS`; SettingsError for any other."""
    if interval not in INTERVAL_SECONDS:
        raise SettingsError(f"unknown candle interval {interval!r}: one of {', '.join(INTERVAL_SECONDS)}")
    return INTERVAL_SECONDS[interval]


def _items(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _pairs(value: Any, what: str) -> Any:
    """``"a=x,b=y"`` (an environment value) as ``{"a": "x", "b": "y"}``; other values unchanged."""
    if not isinstance(value, str):
        return value
    pairs = {}
    for item in _items(value):
        key, sep, val = (side.strip() for side in item.partition("="))
        if not (sep and key and val):
            raise ValueError(f"{item!r} is not {what}")
        pairs[key] = val
    return pairs


class Universe(BaseModel):
    """What the lakehouse covers: exchanges with the quote currency each prices in, base assets,
    candle intervals. A series is one (exchange, ``<asset>/<quote>``, interval)."""

    model_config = ConfigDict(frozen=True)

    exchanges: dict[str, str] = Field(default_factory=lambda: dict(DEFAULT_EXCHANGES))
    assets: tuple[str, ...] = DEFAULT_ASSETS
    intervals: tuple[str, ...] = DEFAULT_INTERVALS

    def symbol(self, exchange: str, asset: str) -> str:
        """The canonical symbol of ``asset`` on ``exchange``, quote kept: ``BTC/USDT``."""
        if exchange not in self.exchanges:
            raise SettingsError(f"exchange {exchange!r} is not in the universe ({', '.join(self.exchanges)})")
        return f"{asset.upper()}/{self.exchanges[exchange]}"

    def select(
        self,
        exchanges: Iterable[str] | None = None,
        assets: Iterable[str] | None = None,
        intervals: Iterable[str] | None = None,
    ) -> Universe:
        """The part of the universe with only these exchanges, assets or intervals (each must belong to it)."""

        def pick(wanted: Iterable[str] | None, have: Iterable[str], what: str) -> list[str]:
            if wanted is None:
                return list(have)
            wanted, have = list(wanted), list(have)
            unknown = [w for w in wanted if w not in have]
            if unknown:
                raise SettingsError(f"{what} {', '.join(map(repr, unknown))} not in the universe ({', '.join(have)})")
            return wanted

        chosen = pick(exchanges, self.exchanges, "exchange")
        return Universe(
            exchanges={e: self.exchanges[e] for e in chosen},
            assets=tuple(pick(assets, self.assets, "asset")),
            intervals=tuple(pick(intervals, self.intervals, "interval")),
        )

    def series(self) -> list[Series]:
        """Every (exchange, symbol, interval) of the universe, exchange by exchange."""
        return [(e, self.symbol(e, a), i) for e in self.exchanges for a in self.assets for i in self.intervals]


class Settings(BaseSettings):
    """Where state lives, which engines serve, and what the lakehouse covers; README, "Settings"."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, frozen=True, extra="ignore", validate_default=True)

    home: Path = Path(".sentinance")
    database_url: str | None = None
    spark_master: str = "local[*]"
    delta_backend: Literal["delta-rs", "delta-spark"] = "delta-rs"
    delta_spark_jars: Annotated[tuple[Path, ...], NoDecode] = ()
    seed: int = 7
    simulator_lags: Annotated[dict[str, float], NoDecode] = Field(default_factory=dict)
    sequence_length: int = Field(24, ge=2, le=512)
    feast_online_store: Literal["sqlite", "postgres", "redis"] = "sqlite"
    feast_redis: str | None = None
    detectors_config: Path | None = None
    lake_retention_hours: int = Field(168, ge=0)  # VACUUM keeps what any version this recent reads
    lock_wait: float = Field(3600, ge=0, allow_inf_nan=False)
    fault: str | None = None
    exchanges: Annotated[dict[str, str], NoDecode] = Field(default_factory=lambda: dict(DEFAULT_EXCHANGES))
    assets: Annotated[tuple[str, ...], NoDecode] = DEFAULT_ASSETS
    intervals: Annotated[tuple[str, ...], NoDecode] = DEFAULT_INTERVALS
    binance_archive_url: str = "https://data.binance.vision"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        config = os.environ.get(CONFIG_ENV)
        if not config:
            return init_settings, env_settings
        if not Path(config).is_file():
            raise SettingsError(f"{CONFIG_ENV}={config!r}: no such file (a TOML file of settings)")
        return init_settings, env_settings, TomlConfigSettingsSource(settings_cls, toml_file=Path(config))

    @field_validator("home", mode="after")
    @classmethod
    def _absolute(cls, home: Path) -> Path:
        return home.expanduser().resolve()

    @field_validator("database_url")
    @classmethod
    def _postgres_url(cls, url: str | None) -> str | None:
        if url and not re.match(r"^postgres(ql)?://", url):
            raise ValueError("must be a postgresql:// URL, e.g. postgresql://user:password@host:5432/db")
        return url or None

    @field_validator("binance_archive_url")
    @classmethod
    def _archive_url(cls, url: str) -> str:
        if not re.match(r"^https?://[^/\s]+", url):
            raise ValueError(
                "must be an http(s):// URL of Binance's public data archive, e.g. https://data.binance.vision"
            )
        return url.rstrip("/")

    @field_validator("spark_master")
    @classmethod
    def _spark_master(cls, master: str) -> str:
        if not SPARK_MASTER.match(master):
            raise ValueError("must be local, local[N], local[*], spark://host:port, k8s://..., yarn or mesos://...")
        return master

    @field_validator("detectors_config")
    @classmethod
    def _detectors_file(cls, path: Path | None) -> Path | None:
        if path is not None and not path.is_file():
            raise ValueError("must be an existing TOML file of detector thresholds (docs/detectors.md)")
        return path

    @field_validator("delta_spark_jars", mode="after")
    @classmethod
    def _jar_files(cls, jars: tuple[Path, ...]) -> tuple[Path, ...]:
        missing = [str(jar) for jar in jars if not jar.is_file()]
        if missing:
            raise ValueError(f"must be existing jar files, comma-separated; not found: {', '.join(missing)}")
        return jars

    @field_validator("fault")
    @classmethod
    def _fault(cls, fault: str | None) -> str | None:
        target, _, point = (fault or "").rpartition("@")
        if fault and (point not in FAULT_POINTS or target not in ("", *FAULT_TARGETS)):
            raise ValueError(
                f"must be [<target>@]<point>, a target of {', '.join(FAULT_TARGETS)} (default group) "
                f"and a point of {', '.join(FAULT_POINTS)}"
            )
        return fault or None

    @field_validator("delta_spark_jars", "assets", "intervals", mode="before")
    @classmethod
    def _list(cls, value: Any) -> Any:
        return _items(value) if isinstance(value, str) else value

    @field_validator("assets", mode="after")
    @classmethod
    def _assets(cls, assets: tuple[str, ...]) -> tuple[str, ...]:
        bad = [a for a in assets if not re.fullmatch(r"[A-Za-z0-9]+", a)]
        if bad or not assets:
            raise ValueError("must be one or more base assets (letters and digits), e.g. BTC,ETH,SOL")
        return tuple(dict.fromkeys(a.upper() for a in assets))

    @field_validator("intervals", mode="after")
    @classmethod
    def _intervals(cls, intervals: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [i for i in intervals if i not in INTERVAL_SECONDS]
        if unknown or not intervals:
            raise ValueError(f"must be one or more of {', '.join(INTERVAL_SECONDS)}")
        return tuple(dict.fromkeys(intervals))

    @field_validator("exchanges", mode="before")
    @classmethod
    def _exchanges(cls, value: Any) -> Any:
        return _pairs(value, "<exchange>=<quote currency>, e.g. binance=USDT,coinbase=USD")

    @field_validator("exchanges", mode="after")
    @classmethod
    def _quotes(cls, exchanges: dict[str, str]) -> dict[str, str]:
        bad = [
            e for e, q in exchanges.items() if not re.fullmatch(r"[a-z0-9]+", e) or not re.fullmatch(r"[A-Za-z0-9]+", q)
        ]
        if bad or not exchanges:
            raise ValueError("must be one or more <exchange>=<quote currency>, e.g. binance=USDT,coinbase=USD")
        return {e: q.upper() for e, q in exchanges.items()}

    @field_validator("simulator_lags", mode="before")
    @classmethod
    def _lags(cls, value: Any) -> Any:
        return _pairs(value, "<exchange>=<lag>, e.g. coinbase=0.5,kraken=0.8")

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        for exchange, lag in self.simulator_lags.items():
            if exchange not in self.exchanges or not 0 <= lag < 1:
                raise ValueError(
                    f"{ENV_PREFIX}SIMULATOR_LAGS: {exchange}={lag} is not <exchange>=<lag> with an "
                    f"exchange of {', '.join(self.exchanges)} and 0 <= lag < 1"
                )
        if self.fault and self.fault.startswith("postgres@") and self.database_url:
            raise ValueError(f"{ENV_PREFIX}FAULT={self.fault} kills the embedded PostgreSQL: unset DATABASE_URL")
        if self.feast_online_store == "redis" and not self.feast_redis:
            raise ValueError(f"{ENV_PREFIX}FEAST_ONLINE_STORE=redis needs {ENV_PREFIX}FEAST_REDIS=host:port[,db=0,...]")
        return self

    def environment(self) -> dict[str, str]:
        """These settings as the ``SENTINANCE_*`` variables that reproduce them (for subprocesses and tools)."""
        values = {}
        for name, value in self.model_dump().items():
            if value is None:
                continue
            if isinstance(value, dict):
                text = ",".join(f"{key}={item}" for key, item in value.items())
            elif isinstance(value, (tuple, list)):
                text = ",".join(map(str, value))
            else:
                text = str(value)
            values[f"{ENV_PREFIX}{name.upper()}"] = text
        return values

    # -- what the lakehouse covers ------------------------------------------------------------

    @property
    def universe(self) -> Universe:
        return Universe(exchanges=self.exchanges, assets=self.assets, intervals=self.intervals)

    # -- where state lives --------------------------------------------------------------------

    @property
    def lake_dir(self) -> Path:
        return self.home / "lake"

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
    def dbt_dir(self) -> Path:
        """dbt's target/ and logs/, whoever runs dbt."""
        return self.home / "dbt"

    @property
    def dbt_target_dir(self) -> Path:
        return self.dbt_dir / "target"

    @property
    def dbt_log_dir(self) -> Path:
        return self.dbt_dir / "logs"

    @property
    def gx_dir(self) -> Path:
        return self.home / "gx"

    @property
    def prefect_dir(self) -> Path:
        return self.home / "prefect"

    @property
    def capture_dir(self) -> Path:
        return self.home / "captures"

    @property
    def metrics_dir(self) -> Path:
        """The flow runs' Prometheus textfiles (node_exporter's textfile convention), one per writer."""
        return self.home / "metrics"

    @property
    def services_dir(self) -> Path:
        """`sentinance services up`: its pid and state file (``services.json``) and its log."""
        return self.home / "services"

    @property
    def lock_file(self) -> Path:
        """The single writer's lock (:mod:`sentinance.state_lock`); it names its holder."""
        return self.home / "state.lock"


def _one_line(error: ValidationError) -> str:
    problems = []
    for item in error.errors(include_url=False):
        message = item["msg"].removeprefix("Value error, ")
        if not item["loc"]:  # a check across settings: its message names them
            problems.append(message)
            continue
        given = item.get("input")
        shown = "" if isinstance(given, (dict, list, tuple)) else f"={given!r}"
        problems.append(f"{ENV_PREFIX}{str(item['loc'][0]).upper()}{shown}: {message}")
    return "; ".join(problems)


def get_settings(**overrides: Any) -> Settings:
    """Settings from the environment (and ``SENTINANCE_CONFIG``), read anew on every call."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise SettingsError(_one_line(exc)) from None


def tool_environment(settings: Settings) -> dict[str, str]:
    """The environment the embedded tools read at import or start (see :func:`configure`)."""
    return {
        # telemetry off: dbt, Great Expectations, Feast, Prefect, MLflow, and the generic flag
        "DO_NOT_TRACK": "1",
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "False",
        "GX_ANALYTICS_ENABLED": "False",
        "FEAST_USAGE": "False",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        # Prefect keeps its database (the flow runs its UI shows) in the state dir, served on loopback
        "PREFECT_HOME": str(settings.prefect_dir),
        "PREFECT_SERVER_API_HOST": "127.0.0.1",
        # the ephemeral API's first start runs migrations; a busy 2-core machine needs more than 20 s
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
        # Spark's driver binds to loopback only
        "SPARK_LOCAL_IP": "127.0.0.1",
        "PYARROW_IGNORE_TIMEZONE": "1",
    }


@contextmanager
def temporary_environment(values: Mapping[str, str]) -> Iterator[None]:
    """Set ``values`` in the process environment for the block, then restore what was there."""
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def configure(settings: Settings | None = None) -> Settings:
    """Prepare this process for ``settings``: the tools' environment (values the user already set
    win) and the state dir. Call once, before Prefect, Spark, dbt, Feast or MLflow are imported."""
    settings = settings or get_settings()
    try:
        settings.home.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SettingsError(
            f"{ENV_PREFIX}HOME={str(settings.home)!r}: cannot create the state dir ({exc.strerror}); "
            "must be a directory this user can write, or a path where one can be made"
        ) from None
    os.environ[f"{ENV_PREFIX}HOME"] = str(settings.home)  # subprocesses (Spark workers, flow runs) follow
    for key, value in tool_environment(settings).items():
        os.environ.setdefault(key, value)
    Path(os.environ["PREFECT_HOME"]).mkdir(parents=True, exist_ok=True)
    if "PREFECT_API_URL" not in os.environ:  # a server `sentinance serve` keeps up on this state: report to it
        from sentinance.services import running_prefect_server

        if url := running_prefect_server(settings):
            os.environ["PREFECT_API_URL"] = url
    return settings
