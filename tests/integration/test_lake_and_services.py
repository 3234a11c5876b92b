"""Core: settings, embedded PostgreSQL, Delta merge semantics."""

from __future__ import annotations

import pandas as pd
import pytest

from sentinance import catalog, lake, services
from sentinance.settings import Settings


def test_parse_database_url_tcp_and_socket() -> None:
    tcp = services.parse_database_url("postgresql://u:p%40ss@db.internal:6543/lakehouse")
    assert (tcp.host, tcp.port, tcp.user, tcp.password, tcp.dbname) == ("db.internal", 6543, "u", "p@ss", "lakehouse")
    sock = services.parse_database_url("postgresql://postgres:@/sentinance?host=/var/run/pg")
    assert (sock.host, sock.port, sock.dbname) == ("/var/run/pg", 5432, "sentinance")
    with pytest.raises(ValueError, match="postgresql://"):
        services.parse_database_url("mysql://x@y/z")


def test_embedded_postgres_is_reused_and_socket_only(settings: Settings) -> None:
    assert services.database_url(settings) == services.database_url(settings)
    with services.connect(settings) as conn:
        assert conn.execute("SELECT current_database()").fetchone()[0] == "sentinance"
        assert conn.execute("SHOW listen_addresses").fetchone()[0] == ""


def test_merge_is_idempotent_and_updates_changed_rows(fresh_settings: Settings) -> None:
    path = str(fresh_settings.lake_dir / "bronze" / "probe")
    rows = pd.DataFrame({"k": [1, 2], "v": [1.0, 2.0], "h": ["a", "b"]})
    assert lake.merge(path, rows, ["k"], change_column="h").inserted == 2
    again = lake.merge(path, rows, ["k"], change_column="h")
    assert (again.inserted, again.updated, again.version) == (0, 0, 0)
    changed = lake.merge(path, pd.DataFrame({"k": [2, 3], "v": [9.0, 3.0], "h": ["c", "d"]}), ["k"], change_column="h")
    assert (changed.inserted, changed.updated) == (1, 1)
    assert lake.read(path).set_index("k")["v"].to_dict() == {1: 1.0, 2: 9.0, 3: 3.0}


def test_maintenance_compacts_vacuums_and_keeps_the_versions_asked_for(fresh_settings: Settings) -> None:
    table = catalog.PREDICTIONS
    path = table.path(fresh_settings)
    rows = pd.DataFrame(
        {
            "instrument_id": "binance:BTC/USDT",
            "feature_time": pd.date_range("2026-01-01", periods=4, freq="h", tz="UTC"),
            "predicted_log_return": 0.01,
            "predicted_close": 1.0,
            "model_name": "m",
            "model_version": "1",
            "model_alias": "challenger",
            "scored_at": pd.Timestamp("2026-01-02", tz="UTC"),
        }
    )
    rows["target_time"] = rows["feature_time"] + pd.Timedelta(hours=1)
    for i in range(4):  # four small files, then a version that rewrites one of them
        lake.upsert(fresh_settings, table, rows.iloc[[i]])
    kept = lake.version(path)
    lake.upsert(
        fresh_settings, table, rows.iloc[[0]].assign(predicted_log_return=0.02), change_column="predicted_log_return"
    )

    result = lake.maintain(fresh_settings, table, retention_hours=0, keep_versions=[kept])

    assert result.files_compacted >= 4 and result.files_removed >= 1
    assert len(lake.read(path)) == 4 and lake.read(path)["predicted_log_return"].max() == 0.02
    assert len(lake.read(path, version=kept)) == 4  # a kept version still time-travels
    lake.maintain(fresh_settings, table, retention_hours=0)
    with pytest.raises(FileNotFoundError):  # its files are gone
        lake.read(path, version=kept)
