"""Benchmark: rows/s landed into bronze by the `ingest` flow against a plain write_deltalake; replay throughput
of the ccxt path against the old hand-written connectors; bulk archive rows/s.

Measured in one run of this script:

* **simulator** - 9 series, trades + candles, ``--days`` landed incrementally (merge into tables
  that already hold the previous week) through the full path: simulate, payload hash, GX
  checkpoints, Delta merge, gap report, labels, Prefect artifacts.
* **replay** - binance BTC/ETH/SOL candles + trades captured once by a ``live`` run whose network is
  a simulated Binance (a ``requests`` adapter answering ``exchangeInfo``, ``klines`` and ``aggTrades``
  in Binance's wire format from the simulator, so no network is used), then replayed offline
  through ccxt (the same parsing as live) into a fresh lake that holds the previous week. Printed:
  the whole flow, the landing alone, and the connector alone (replayed responses -> raw records,
  no landing) in rows/s. The old path (httpx connectors, deleted with issue 12) is not in the
  tree: its figures, measured by this script on main before the switch, are printed beside them
  (``OLD_REPLAY``).
* **bulk** - a month of one symbol's aggTrades and hourly klines as Binance archive zips (with
  ``.CHECKSUM``) served by a loopback ``http.server``: download, verify, read, land, in rows/s.

The reference is one ``write_deltalake`` (append, no validation, no merge) per table of the same
rows into a fresh table.

    .venv/bin/python benchmarks/ingest.py [--days 7]
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import tempfile
import threading
import time
import zipfile
from collections.abc import Callable
from email.utils import formatdate
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from sentinance.settings import configure, get_settings

configure(get_settings(home=tempfile.mkdtemp(prefix="sentinance-bench-")))  # before Prefect is imported

import numpy as np
import pandas as pd
import pyarrow as pa
from deltalake import write_deltalake
from requests import PreparedRequest, Response
from requests.adapters import HTTPAdapter
from urllib3 import HTTPResponse

from sentinance.pipelines.flows.bulk import backfill_bulk
from sentinance.pipelines.flows.ingest import ingest
from sentinance.pipelines.landing import bronze
from sentinance.pipelines.sources.exchanges.candles import fetch_candles
from sentinance.pipelines.sources.exchanges.trades import fetch_trades
from sentinance.pipelines.sources.exchanges.venues import Venue
from sentinance.pipelines.sources.simulator import simulate_candles, simulate_trades

END = pd.Timestamp("2026-01-20T00:00Z")
WARM_DAYS = 7
EXCHANGE_INFO = Path(__file__).parents[1] / "tests" / "fixtures" / "exchanges" / "universe" / "binance"
# the old httpx connectors' replay of the same 7-day capture, measured by this script on main (6f8f794)
OLD_REPLAY = {"days": 7, "rows": 20_259, "flow_rows_per_s": 4_973, "connector_rows_per_s": 127_023}


def _ms(times: pd.Series) -> pd.Series:
    return times.astype("datetime64[us, UTC]").astype("int64") // 1000


class SimulatedBinance(HTTPAdapter):
    """Answers Binance's exchangeInfo (recorded), klines and aggTrades requests with the simulator's data."""

    def __init__(self, start: pd.Timestamp, end: pd.Timestamp, seed: int, assets: list[str]) -> None:
        super().__init__()
        self.info = next(p for p in EXCHANGE_INFO.glob("api_v3_exchangeInfo*.body")).read_bytes()
        one = {"seed": seed, "exchanges": ["binance"]}
        self.candles = {
            f"{a}USDT": simulate_candles(start, end, assets=[a], **one).assign(ms=lambda d: _ms(d["open_time"]))
            for a in assets
        }
        self.trades = {
            f"{a}USDT": simulate_trades(start, end, assets=[a], **one).assign(
                ms=lambda d: _ms(d["trade_time"]), id=lambda d: d["trade_id"].astype("int64")
            )
            for a in assets
        }
        self.date = formatdate((end + pd.Timedelta(minutes=1)).timestamp(), usegmt=True)

    def send(self, request: PreparedRequest, **kwargs: Any) -> Response:
        url = urlsplit(request.url or "")
        q = dict(parse_qsl(url.query))
        if url.path.endswith("/exchangeInfo"):
            body = self.info
        elif url.path.endswith("/klines"):
            c = self.candles[q["symbol"]]
            c = c[(c["ms"] >= int(q["startTime"])) & (c["ms"] <= int(q["endTime"]))].head(int(q["limit"]))
            body = json.dumps(
                [
                    [
                        int(r.ms),
                        *map(str, (r.open, r.high, r.low, r.close, r.volume)),
                        int(r.ms) + 3599999,
                        "0",
                        int(r.trade_count),
                        "0",
                        "0",
                        "0",
                    ]
                    for r in c.itertuples()
                ]
            ).encode()
        else:
            t = self.trades[q["symbol"]]
            if "fromId" in q:
                t = t[t["id"] >= int(q["fromId"])]
            else:
                t = t[(t["ms"] >= int(q["startTime"])) & (t["ms"] <= int(q["endTime"]))]
            body = json.dumps(
                [
                    {"a": int(r.id), "p": str(r.price), "q": str(r.size), "f": int(r.id), "l": int(r.id)}
                    | {"T": int(r.ms), "m": r.side == "sell", "M": True}
                    for r in t.head(int(q["limit"])).itertuples()
                ]
            ).encode()
        headers = {"Content-Type": "application/json;charset=UTF-8", "Date": self.date}
        raw = HTTPResponse(body=io.BytesIO(body), headers=headers, status=200, reason="OK", preload_content=False)
        return self.build_response(request, raw)


def _timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    began = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - began


def _plain_write(frames: dict[str, pd.DataFrame]) -> float:
    """Seconds for one write_deltalake per table of the same raw rows into fresh tables."""
    folder = Path(tempfile.mkdtemp(prefix="plain-"))
    began = time.perf_counter()
    for name, frame in frames.items():
        write_deltalake(str(folder / name), pa.Table.from_pandas(frame, preserve_index=False), mode="append")
    return time.perf_counter() - began


def _fresh_home() -> None:
    os.environ["SENTINANCE_HOME"] = tempfile.mkdtemp(prefix="sentinance-bench-")


def _landing_only(warm: dict[str, pd.DataFrame], rows: dict[str, pd.DataFrame]) -> float:
    """Seconds for bronze.land of ``rows`` (per table) into a fresh lake that already holds ``warm``."""
    _fresh_home()
    settings = get_settings()
    targets = {"candles": bronze.CANDLES, "trades": bronze.TRADES}
    for name, frame in warm.items():
        bronze.land(settings, targets[name], frame, source="benchmark", flow_run_id=None)
    began = time.perf_counter()
    for name, frame in rows.items():
        bronze.land(settings, targets[name], frame, source="benchmark", flow_run_id=None)
    return time.perf_counter() - began


def _report(label: str, rows: int, flow: float, landing: float, plain: float) -> None:
    def rate(seconds: float) -> str:
        return f"{seconds:6.2f} s {rows / seconds:>10,.0f} rows/s {seconds / plain:6.1f}x"

    print(
        f"{label:<9} {rows:>8,d} rows | flow {rate(flow)} | landing (hash+GX+merge) {rate(landing)} | "
        f"plain write_deltalake {plain:5.2f} s {rows / plain:>10,.0f} rows/s"
    )


def _connector_replay(captures: Path, start: pd.Timestamp, end: pd.Timestamp, assets: list[str]) -> tuple[int, float]:
    """Rows and seconds of the connector alone: replayed responses -> raw records through ccxt, no landing."""
    run = max(p.parent for p in captures.glob("*/run.json"))
    venue = Venue("binance", "replay", replay_dirs=[run])
    began, rows = time.perf_counter(), 0
    for asset in assets:
        rows += len(fetch_candles(venue, f"{asset}/USDT", "1h", start, end))
        rows += len(fetch_trades(venue, f"{asset}/USDT", start, end))
    return rows, time.perf_counter() - began


def _archive(folder: Path, month: pd.Timestamp, trades_per_hour: int) -> int:
    """One month of BTCUSDT aggTrades and 1h klines in Binance's archive layout, with .CHECKSUM; the rows."""
    rng = np.random.default_rng(7)
    hours = pd.date_range(month, month + pd.offsets.MonthBegin(1), freq="h", inclusive="left")
    ms = (hours.asi8 // 1_000_000).repeat(trades_per_hour) + rng.integers(0, 3_600_000, len(hours) * trades_per_hour)
    ms.sort()
    price = 60_000 * np.exp(np.cumsum(rng.normal(0, 2e-4, len(ms))))
    size = rng.lognormal(-4, 1, len(ms)).round(5)
    ids = np.arange(1, len(ms) + 1)
    trades = pd.DataFrame(
        {"a": ids, "p": price.round(2), "q": size, "f": ids, "l": ids, "T": ms, "m": rng.random(len(ms)) < 0.5}
    ).assign(M=True)
    grouped = trades.groupby(trades["T"] // 3_600_000)
    klines = pd.DataFrame(
        {"open_time": grouped["T"].min() // 3_600_000 * 3_600_000, "open": grouped["p"].first()}
        | {"high": grouped["p"].max(), "low": grouped["p"].min(), "close": grouped["p"].last()}
        | {"volume": grouped["q"].sum().round(5)}
    ).assign(close_time=lambda d: d["open_time"] + 3_599_999, quote_volume=0.0, count=trades_per_hour)
    klines = klines.assign(taker_buy=0.0, taker_buy_quote=0.0, ignore=0)
    stamp = f"{month:%Y-%m}"
    for frame, path in (
        (trades, f"data/spot/monthly/aggTrades/BTCUSDT/BTCUSDT-aggTrades-{stamp}.zip"),
        (klines, f"data/spot/monthly/klines/BTCUSDT/1h/BTCUSDT-1h-{stamp}.zip"),
    ):
        target = folder / path
        target.parent.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
            archive.writestr(target.name.replace(".zip", ".csv"), frame.to_csv(header=False, index=False))
        digest = hashlib.sha256(target.read_bytes()).hexdigest()
        target.with_name(target.name + ".CHECKSUM").write_text(f"{digest}  {target.name}\n")
    return len(trades) + len(klines)


def _bulk(trades_per_hour: int) -> None:
    folder = Path(tempfile.mkdtemp(prefix="archive-"))
    month = pd.Timestamp("2024-12-01T00:00Z")
    rows = _archive(folder, month, trades_per_hour)
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(SimpleHTTPRequestHandler, directory=str(folder)))
    server.RequestHandlerClass.log_message = lambda *args: None  # type: ignore[method-assign]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    _fresh_home()
    os.environ.update(
        {
            "SENTINANCE_EXCHANGES": "binance=USDT",
            "SENTINANCE_ASSETS": "BTC",
            "SENTINANCE_BINANCE_ARCHIVE_URL": f"http://127.0.0.1:{server.server_address[1]}",
        }
    )
    end = month + pd.offsets.MonthBegin(1)
    result, seconds = _timed(lambda: backfill_bulk(start=month.to_pydatetime(), end=end.to_pydatetime()))
    server.shutdown()
    landed = result.candles["landed"] + result.trades["landed"]
    print(
        f"bulk      {rows:>8,d} rows in 2 archive files (a month of BTCUSDT aggTrades + 1h klines) | download, "
        f"checksum, read, GX, merge {seconds:6.2f} s {landed / seconds:>10,.0f} rows/s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--bulk-trades-per-hour", type=int, default=300)
    args = parser.parse_args()
    start = END - pd.Timedelta(days=args.days)
    warm_end = start
    seed = get_settings().seed
    assets = list(get_settings().universe.assets)

    # simulator: warm the lake with the previous week, then time the incremental landing (merge)
    ingest(end=warm_end, days=WARM_DAYS)
    result, seconds = _timed(lambda: ingest(end=END, days=args.days))
    rows = result.candles.landed + result.trades.landed
    frames = {"candles": simulate_candles(start, END, seed=seed), "trades": simulate_trades(start, END, seed=seed)}
    earlier = warm_end - pd.Timedelta(days=WARM_DAYS)
    warm = {
        "candles": simulate_candles(earlier, warm_end, seed=seed),
        "trades": simulate_trades(earlier, warm_end, seed=seed),
    }
    _report("simulator", rows, seconds, _landing_only(warm, frames), _plain_write(frames))

    # replay: capture a live run against the simulated Binance once, replay it into a fresh lake
    server = SimulatedBinance(earlier, END, seed, assets)
    captures = Path(tempfile.mkdtemp(prefix="captures-"))
    _fresh_home()
    live = {"exchanges": ["binance"], "source": "live"}
    options = {"upstream": server, "capture_root": captures, "pace": False}
    for window in ({"end": warm_end, "days": WARM_DAYS}, {"end": END, "days": args.days}):
        ingest(client_options=dict(options), **window, **live)
    _fresh_home()
    replay = {"exchanges": ["binance"], "source": "replay"}
    ingest(start=earlier, end=warm_end, client_options={"capture_root": captures}, **replay)  # warm: the earlier run
    result, seconds = _timed(lambda: ingest(client_options={"capture_root": captures}, **replay))  # the latest run
    rows = result.candles.landed + result.trades.landed
    binance = {
        name: {k: v.drop(columns=["ms", "id"], errors="ignore") for k, v in frames_.items()}
        for name, frames_ in (("candles", server.candles), ("trades", server.trades))
    }
    split = {"candles": "open_time", "trades": "trade_time"}
    frames = {n: pd.concat(f[f[split[n]] >= start] for f in binance[n].values()) for n in binance}
    warm = {n: pd.concat(f[f[split[n]] < start] for f in binance[n].values()) for n in binance}
    _report("replay", rows, seconds, _landing_only(warm, frames), _plain_write(frames))
    connector_rows, connector_seconds = min(
        (_connector_replay(captures, start, END, assets) for _ in range(3)), key=lambda r: r[1]
    )
    old, flow_rate = OLD_REPLAY, rows / seconds
    print(
        f"replay through ccxt vs the old httpx connectors ({args.days} days, binance {'/'.join(assets)}): "
        f"flow {flow_rate:,.0f} rows/s vs {old['flow_rows_per_s']:,} ({flow_rate / old['flow_rows_per_s']:.2f}x); "
        f"connector alone {connector_rows:,} rows in {connector_seconds:.3f} s = "
        f"{connector_rows / connector_seconds:,.0f} rows/s vs {old['connector_rows_per_s']:,} "
        f"({connector_rows / connector_seconds / old['connector_rows_per_s']:.2f}x; old figures: {old['days']} days, "
        f"{old['rows']:,} rows, measured on main)"
    )

    _bulk(args.bulk_trades_per_hour)


if __name__ == "__main__":
    main()
