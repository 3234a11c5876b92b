"""Core: settings, embedded PostgreSQL and its recovery after a killed user, Delta merge semantics and a
damaged Delta log."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pandas as pd
import psutil
import pytest

from sentinance import catalog, lake, services
from sentinance.settings import Settings


def _python(settings: Settings, code: str) -> subprocess.Popen:
    """A Python process on ``settings``' state dir (not the test session's Prefect or state)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SENTINANCE_", "PREFECT_"))}
    env["SENTINANCE_HOME"] = str(settings.home)
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], env=env, stdout=subprocess.PIPE, text=True)


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


def test_merge_deletes_only_where_asked_and_can_keep_the_first_write(fresh_settings: Settings) -> None:
    path = str(fresh_settings.lake_dir / "bronze" / "probe")
    lake.merge(path, pd.DataFrame({"k": [1, 2, 3], "g": ["a", "a", "b"], "v": [1, 2, 3]}), ["k"])
    lake.merge(path, pd.DataFrame({"k": [2], "g": ["a"], "v": [20]}), ["k"], delete_where="t.g = 'a'")
    assert lake.read(path).set_index("k")["v"].to_dict() == {2: 20, 3: 3}  # 1 went (in scope), 3 stayed
    kept = lake.merge(path, pd.DataFrame({"k": [2, 4], "g": ["a", "b"], "v": [99, 4]}), ["k"], keep_existing=True)
    assert (kept.inserted, kept.updated) == (1, 0) and lake.read(path).set_index("k")["v"].to_dict()[2] == 20


def test_a_damaged_newest_commit_is_named_with_its_recovery(fresh_settings: Settings) -> None:
    path = str(fresh_settings.lake_dir / "bronze" / "probe")
    lake.merge(path, pd.DataFrame({"k": [1], "v": [1]}), ["k"])
    lake.merge(path, pd.DataFrame({"k": [2], "v": [2]}), ["k"])
    newest = fresh_settings.lake_dir / "bronze" / "probe" / "_delta_log" / "00000000000000000001.json"
    newest.write_text(newest.read_text()[:40])  # a torn write
    with pytest.raises(lake.CorruptTableError) as damaged:
        lake.read(path)
    assert str(damaged.value).startswith(f"the Delta table {path} cannot be read: its newest commit {newest.name}")
    assert f"move {newest} out of _delta_log and rerun" in str(damaged.value)
    newest.rename(fresh_settings.home / newest.name)  # the recovery it names: back to version 0
    assert lake.version(path) == 0 and lake.read(path)["k"].tolist() == [1]


def test_the_embedded_postgres_forgets_a_killed_user_and_stops_with_the_last(fresh_settings: Settings) -> None:
    user = _python(
        fresh_settings,
        """
        import time
        from sentinance import services
        from sentinance.settings import configure
        services.connect(configure()).close()
        print("connected", flush=True)
        time.sleep(600)
        """,
    )
    assert user.stdout.readline().strip() == "connected"
    user.send_signal(signal.SIGKILL)  # dies without telling pgserver
    user.wait()
    users = fresh_settings.postgres_dir / "data" / ".handle_pids.json"
    assert user.pid in json.loads(users.read_text()) and services.postmaster_pid(fresh_settings) is not None
    services.recover(fresh_settings)
    assert user.pid not in json.loads(users.read_text())
    last = _python(fresh_settings, "from sentinance import services\nservices.connect().close()\n")
    assert last.wait(timeout=120) == 0
    assert services.postmaster_pid(fresh_settings) is None, "the last user stopped the server"


def _prefect_servers(settings: Settings) -> list[psutil.Process]:
    found = []
    for process in psutil.process_iter(["cmdline"]):
        if "prefect.server.api.server:create_app" in (process.info["cmdline"] or []):
            try:
                if process.environ().get("PREFECT_HOME") == str(settings.prefect_dir):
                    found.append(process)
            except psutil.Error:
                pass
    return found


def test_an_orphaned_ephemeral_prefect_server_is_stopped(fresh_settings: Settings) -> None:
    owner = _python(
        fresh_settings,
        """
        import time
        from sentinance.settings import configure
        configure()
        from prefect import get_client
        with get_client(sync_client=True) as client:
            client.hello()
        print("served", flush=True)
        time.sleep(600)
        """,
    )
    assert owner.stdout.readline().strip() == "served"
    owner.send_signal(signal.SIGKILL)  # the owner alone: its server is left without it
    owner.wait()
    assert len(_prefect_servers(fresh_settings)) == 1
    services.recover(fresh_settings)
    deadline = time.monotonic() + 30
    while _prefect_servers(fresh_settings) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert _prefect_servers(fresh_settings) == []
