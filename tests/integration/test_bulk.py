"""``backfill --source bulk``: Binance's archive layout served from tests/fixtures/exchanges/binance_archive/
by a loopback ``http.server`` (no internet), landed for real (GX, Delta), resumed file by file."""

from __future__ import annotations

import shutil
import tempfile
import threading
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pandas as pd
import pytest
from support.exchanges import ARCHIVE

from sentinance import catalog, lake
from sentinance.pipelines.flows.bulk import BulkIncomplete, backfill_bulk
from sentinance.settings import Settings, get_settings

START, END = pd.Timestamp("2024-12-01T00:00Z"), pd.Timestamp("2025-01-03T00:00Z")
CORRUPT = "data/spot/daily/klines/BTCUSDT/1h/BTCUSDT-1h-2025-01-01.zip"


class Archive:
    """A loopback HTTP server over a copy of the archive fixture, logging the paths asked for."""

    def __init__(self, root: Path) -> None:
        self.root, self.paths = root, []
        archive = self

        class Handler(SimpleHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                archive.paths.append(self.path)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), partial(Handler, directory=str(root)))
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"


@pytest.fixture
def archive(monkeypatch: pytest.MonkeyPatch) -> Iterator[Archive]:
    root = Path(tempfile.mkdtemp(prefix="binance-archive-"))
    shutil.copytree(ARCHIVE, root, dirs_exist_ok=True)
    served = Archive(root)
    for key, value in {
        "SENTINANCE_HOME": tempfile.mkdtemp(prefix="sentinance-bulk-"),
        "SENTINANCE_EXCHANGES": "binance=USDT,kraken=USD",
        "SENTINANCE_ASSETS": "BTC",
        "SENTINANCE_BINANCE_ARCHIVE_URL": served.url,
    }.items():
        monkeypatch.setenv(key, value)
    yield served
    served.server.shutdown()


def _bronze(settings: Settings, table: catalog.Table) -> pd.DataFrame:
    return lake.read(table.path(settings)).sort_values(list(table.keys), ignore_index=True)


def test_archives_land_verified_with_the_microsecond_switch_and_resume_file_by_file(archive: Archive) -> None:
    good = (archive.root / CORRUPT).read_bytes()
    (archive.root / CORRUPT).write_bytes(good[:-8] + b"corrupt!")
    with pytest.raises(BulkIncomplete, match=r"^data/spot/daily/klines/BTCUSDT/1h/BTCUSDT-1h-2025-01-01.zip: sha256 "):
        backfill_bulk(start=START.to_pydatetime(), end=END.to_pydatetime())
    settings = get_settings()
    candles, trades = _bronze(settings, catalog.CANDLES), _bronze(settings, catalog.TRADES)
    days = candles["open_time"].dt.floor("D").value_counts().sort_index()
    assert days.to_dict() == {pd.Timestamp("2024-12-31T00:00Z"): 24, pd.Timestamp("2025-01-02T00:00Z"): 24}
    assert candles["source"].eq("bulk").all() and candles["quote_volume"].notna().all()
    assert (candles["trade_count"] > 0).all() and candles["interval"].eq("1h").all()
    assert len(trades) == 24 + 31 and trades["side"].isin(["buy", "sell"]).all()
    assert trades["trade_time"].between(pd.Timestamp("2024-12-31T23:00Z"), pd.Timestamp("2025-01-02T01:00Z")).all()
    landed = (settings.home / "bulk" / "landed.txt").read_text().splitlines()
    assert len(landed) == 4 and CORRUPT not in landed  # 2025-01-01 aggTrades is not in the archive: reported

    (archive.root / CORRUPT).write_bytes(good)
    asked = len(archive.paths)
    result = backfill_bulk(start=START.to_pydatetime(), end=END.to_pydatetime())
    again = [p.lstrip("/") for p in archive.paths[asked:]]
    assert {p.removesuffix(".CHECKSUM") for p in again} == {
        CORRUPT,
        CORRUPT.replace("klines", "aggTrades").replace("/1h", "").replace("-1h-", "-aggTrades-"),
    }
    assert result.already_landed == 4 and result.landed_files == [CORRUPT]
    open_times = _bronze(settings, catalog.CANDLES)["open_time"]
    assert list(open_times) == list(pd.date_range("2024-12-31T00:00Z", periods=72, freq="h"))  # gap-free across 2025
