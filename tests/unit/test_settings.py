"""Settings: every SENTINANCE_* variable read in one place, validated with one-line errors, from the
environment or a TOML file; importing the package configures nothing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from sentinance.errors import SettingsError
from sentinance.settings import (
    DEFAULT_ASSETS,
    DEFAULT_EXCHANGES,
    Settings,
    Universe,
    configure,
    get_settings,
    interval_seconds,
)

SENTINANCE_VARIABLES = [k for k in os.environ if k.startswith("SENTINANCE_") and k != "SENTINANCE_HOME"]


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No SENTINANCE_* variable but the state dir, whatever the shell running the tests exported."""
    for key in SENTINANCE_VARIABLES:
        monkeypatch.delenv(key)
    return monkeypatch


def test_defaults_are_three_exchanges_three_assets_hourly(clean_env) -> None:
    settings = get_settings()
    assert settings.universe == Universe()
    assert settings.exchanges == DEFAULT_EXCHANGES and settings.assets == DEFAULT_ASSETS
    assert settings.universe.series()[:2] == [("binance", "BTC/USDT", "1h"), ("binance", "ETH/USDT", "1h")]
    assert len(settings.universe.series()) == 9
    assert settings.home.is_absolute() and settings.sequence_length == 24 and settings.seed == 7


def test_the_universe_comes_from_the_environment(clean_env) -> None:
    clean_env.setenv("SENTINANCE_EXCHANGES", "binance=USDT, okx=usdt ,bybit=USDC")
    clean_env.setenv("SENTINANCE_ASSETS", "btc,ETH,xrp,ETH")
    clean_env.setenv("SENTINANCE_INTERVALS", "5m,1h,1d")
    universe = get_settings().universe
    assert universe.exchanges == {"binance": "USDT", "okx": "USDT", "bybit": "USDC"}
    assert universe.assets == ("BTC", "ETH", "XRP") and universe.intervals == ("5m", "1h", "1d")
    assert universe.symbol("bybit", "xrp") == "XRP/USDC"
    assert len(universe.series()) == 3 * 3 * 3
    assert universe.select(exchanges=["okx"], assets=["BTC"]).series() == [
        ("okx", "BTC/USDT", "5m"),
        ("okx", "BTC/USDT", "1h"),
        ("okx", "BTC/USDT", "1d"),
    ]
    with pytest.raises(SettingsError, match="exchange 'kraken' not in the universe"):
        universe.select(exchanges=["kraken"])


def test_interval_seconds_knows_the_universe_s_intervals_only() -> None:
    assert interval_seconds("1h") == 3600 and interval_seconds("15m") == 900 and interval_seconds("1d") == 86400
    with pytest.raises(SettingsError, match="unknown candle interval '1w': one of 1m, 5m"):
        interval_seconds("1w")


def test_a_toml_file_sets_what_the_environment_does_not(clean_env, tmp_path: Path) -> None:
    config = tmp_path / "sentinance.toml"
    config.write_text(
        'seed = 11\nassets = ["BTC", "SOL"]\nintervals = ["15m"]\n'
        'exchanges = { kraken = "EUR" }\nsimulator_lags = { kraken = 0.3 }\n'
    )
    clean_env.setenv("SENTINANCE_CONFIG", str(config))
    clean_env.setenv("SENTINANCE_SEED", "12")  # the environment wins over the file
    settings = get_settings()
    assert settings.seed == 12 and settings.assets == ("BTC", "SOL") and settings.intervals == ("15m",)
    assert settings.universe.symbol("kraken", "BTC") == "BTC/EUR" and settings.simulator_lags == {"kraken": 0.3}
    clean_env.setenv("SENTINANCE_CONFIG", str(tmp_path / "missing.toml"))
    with pytest.raises(SettingsError, match=r"^SENTINANCE_CONFIG=.*no such file"):
        get_settings()


@pytest.mark.parametrize(
    ("variable", "value", "needle"),
    [
        ("SENTINANCE_SEED", "abc", "SENTINANCE_SEED='abc': Input should be a valid integer"),
        (
            "SENTINANCE_SEQUENCE_LENGTH",
            "1",
            "SENTINANCE_SEQUENCE_LENGTH='1': Input should be greater than or equal to 2",
        ),
        ("SENTINANCE_SPARK_MASTER", "mesos-ish://x", "SENTINANCE_SPARK_MASTER='mesos-ish://x': must be local"),
        (
            "SENTINANCE_DATABASE_URL",
            "mysql://u@h/db",
            "SENTINANCE_DATABASE_URL='mysql://u@h/db': must be a postgresql://",
        ),
        (
            "SENTINANCE_DELTA_BACKEND",
            "delta",
            "SENTINANCE_DELTA_BACKEND='delta': Input should be 'delta-rs' or 'delta-spark'",
        ),
        ("SENTINANCE_FEAST_ONLINE_STORE", "cassandra", "SENTINANCE_FEAST_ONLINE_STORE='cassandra': Input should be"),
        ("SENTINANCE_FEAST_ONLINE_STORE", "redis", "SENTINANCE_FEAST_ONLINE_STORE=redis needs SENTINANCE_FEAST_REDIS"),
        ("SENTINANCE_EXCHANGES", "binance", "SENTINANCE_EXCHANGES='binance': 'binance' is not <exchange>=<quote"),
        ("SENTINANCE_ASSETS", "BTC,E-TH", "SENTINANCE_ASSETS='BTC,E-TH': must be one or more base assets"),
        ("SENTINANCE_INTERVALS", "1h,2h", "SENTINANCE_INTERVALS='1h,2h': must be one or more of 1m, 5m"),
        ("SENTINANCE_SIMULATOR_LAGS", "kraken", "SENTINANCE_SIMULATOR_LAGS='kraken': 'kraken' is not <exchange>=<lag>"),
        ("SENTINANCE_SIMULATOR_LAGS", "kraken=fast", "SENTINANCE_SIMULATOR_LAGS"),
        (
            "SENTINANCE_SIMULATOR_LAGS",
            "bitstamp=0.3",
            "SENTINANCE_SIMULATOR_LAGS: bitstamp=0.3 is not <exchange>=<lag>",
        ),
        ("SENTINANCE_SIMULATOR_LAGS", "kraken=1", "SENTINANCE_SIMULATOR_LAGS: kraken=1.0 is not"),
        ("SENTINANCE_SIMULATOR_LAGS", "kraken=nan", "SENTINANCE_SIMULATOR_LAGS: kraken=nan is not"),
        ("SENTINANCE_LOCK_WAIT", "-1", "SENTINANCE_LOCK_WAIT='-1': Input should be greater than or equal to 0"),
        ("SENTINANCE_LOCK_WAIT", "forever", "SENTINANCE_LOCK_WAIT='forever': Input should be a valid number"),
        ("SENTINANCE_FAULT", "dbt", "SENTINANCE_FAULT='dbt': must be [<target>@]<point>, a target of group, postgres"),
        ("SENTINANCE_FAULT", "redis@dbt-build", "SENTINANCE_FAULT='redis@dbt-build': must be [<target>@]<point>"),
        ("SENTINANCE_DETECTORS_CONFIG", "/no.toml", "SENTINANCE_DETECTORS_CONFIG='/no.toml': must be an existing"),
        ("SENTINANCE_DELTA_SPARK_JARS", "/no/delta.jar", "SENTINANCE_DELTA_SPARK_JARS: must be existing jar files"),
    ],
)
def test_an_invalid_setting_is_one_line_naming_it(clean_env, variable: str, value: str, needle: str) -> None:
    clean_env.setenv(variable, value)
    with pytest.raises(SettingsError) as error:
        get_settings()
    assert str(error.value).startswith(needle) and "\n" not in str(error.value), str(error.value)


def test_a_postgres_fault_needs_the_embedded_postgres(clean_env) -> None:
    clean_env.setenv("SENTINANCE_FAULT", "postgres@warehouse-copy")
    assert get_settings().fault == "postgres@warehouse-copy"
    clean_env.setenv("SENTINANCE_DATABASE_URL", "postgresql://u@db.example:5432/lake")
    with pytest.raises(SettingsError, match=r"^SENTINANCE_FAULT=postgres@warehouse-copy kills the embedded"):
        get_settings()


def test_simulator_lags_parse(clean_env) -> None:
    clean_env.setenv("SENTINANCE_SIMULATOR_LAGS", " coinbase=0.5, kraken = 0.8 ")
    assert get_settings().simulator_lags == {"coinbase": 0.5, "kraken": 0.8}
    clean_env.setenv("SENTINANCE_SIMULATOR_LAGS", "")
    assert get_settings().simulator_lags == {}


def test_settings_round_trip_through_their_environment(clean_env, tmp_path: Path) -> None:
    settings = get_settings(
        home=tmp_path,
        seed=3,
        simulator_lags={"kraken": 0.25},
        assets=("BTC", "DOGE"),
        feast_online_store="redis",
        feast_redis="127.0.0.1:6379",
    )
    for key, value in settings.environment().items():
        clean_env.setenv(key, value)
    assert get_settings() == settings


def test_importing_the_package_configures_nothing(tmp_path: Path) -> None:
    """A fresh interpreter imports every module of the package and the environment and the disk
    are as they were; configure() then writes both."""
    home = tmp_path / "state"
    code = (
        "import os, pkgutil, importlib, json, sentinance\n"
        "before = dict(os.environ)\n"
        "for module in pkgutil.walk_packages(sentinance.__path__, 'sentinance.'):\n"
        "    if not module.name.startswith(('sentinance.dbt_project', 'sentinance.feature_repo')):\n"
        "        importlib.import_module(module.name)\n"
        "for sub in ('pipelines', 'spark_jobs', 'ml', 'expectations'):\n"
        "    package = importlib.import_module('sentinance.' + sub)\n"
        "    for module in pkgutil.walk_packages(package.__path__, package.__name__ + '.'):\n"
        "        importlib.import_module(module.name)\n"
        "changed = {k for k in set(before) | set(os.environ) if before.get(k) != os.environ.get(k)}\n"
        "print(json.dumps(sorted(changed)))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SENTINANCE_", "PREFECT_", "DO_NOT_TRACK"))}
    env["SENTINANCE_HOME"] = str(home)
    probe = tmp_path / "probe.py"  # a script, not -c: pyspark exits an interpreter whose __main__ has no file
    probe.write_text(code)
    done = subprocess.run([sys.executable, str(probe)], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    changed = set(eval(done.stdout.strip().splitlines()[-1]))
    assert not {k for k in changed if k.startswith(("SENTINANCE_", "PREFECT_HOME", "DO_NOT_TRACK", "MLFLOW_"))}, changed
    assert not home.exists()


def test_configure_writes_the_tools_environment_and_the_state_dir(clean_env, tmp_path: Path) -> None:
    clean_env.setenv("SENTINANCE_HOME", os.environ["SENTINANCE_HOME"])  # restored after the test
    for key in ("PREFECT_HOME", "DO_NOT_TRACK", "MLFLOW_DISABLE_TELEMETRY"):
        clean_env.delenv(key, raising=False)
    clean_env.setenv("MLFLOW_DISABLE_TELEMETRY", "user-set")
    settings = configure(get_settings(home=tmp_path / "state"))
    assert settings.home.is_dir() and Path(os.environ["PREFECT_HOME"]) == settings.prefect_dir
    assert os.environ["DO_NOT_TRACK"] == "1" and os.environ["MLFLOW_DISABLE_TELEMETRY"] == "user-set"
    assert os.environ["SENTINANCE_HOME"] == str(settings.home)


def test_settings_objects_can_be_built_directly(tmp_path: Path) -> None:
    assert Settings(home=tmp_path).home == tmp_path.resolve()
