"""Benchmark: rows/s landed into bronze Delta by the `ingest` flow, against a plain write_deltalake.

Two sources, each measured in one run of this script:

* **simulator** - 9 series, trades + candles, 21 days landed incrementally (merge into tables
  that already hold the previous week) through the full path: simulate, payload hash, GX
  checkpoints, Delta merge, gap report, labels, Prefect artifacts.
* **replay** - binance BTC/ETH/SOL candles + trades captured once by a ``live`` run against a
  simulated Binance (an ``httpx.MockTransport`` answering ``/api/v3/klines`` and
  ``/api/v3/aggTrades`` from the simulator, so no network is used), then replayed offline into a
  fresh lake that already holds the previous week: JSON parsing + the same landing path.

The reference is one ``write_deltalake`` (append, no validation, no merge) per table of the same
rows into a fresh table. Printed per source: rows, and seconds, rows/s and the ratio to the plain
write for (a) the whole flow run and (b) its landing alone - ``bronze.land`` (hash, GX checkpoint,
merge) of the same rows into a lake warmed the same way, outside Prefect.

    .venv/bin/python benchmarks/ingest.py [--days 21]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sentinance.settings import configure, get_settings

configure(get_settings(home=tempfile.mkdtemp(prefix="sentinance-bench-")))  # before Prefect is imported

import httpx
import pandas as pd
import pyarrow as pa
from deltalake import write_deltalake

from sentinance.pipelines.flows.ingest import ingest
from sentinance.pipelines.landing import bronze
from sentinance.pipelines.sources.exchanges.binance import BinanceClient
from sentinance.pipelines.sources.simulator import simulate_candles, simulate_trades

END = pd.Timestamp("2026-01-20T00:00Z")
WARM_DAYS = 7


def _ms(times: pd.Series) -> pd.Series:
    return times.astype("datetime64[us, UTC]").astype("int64") // 1000


class SimulatedBinance:
    """Answers Binance's klines and aggTrades requests with the simulator's candles and trades."""

    def __init__(self, start: pd.Timestamp, end: pd.Timestamp, seed: int) -> None:
        universe = get_settings().universe
        symbols = {BinanceClient.market(universe.symbol("binance", a)): a for a in universe.assets}
        one = {"seed": seed, "exchanges": ["binance"]}
        self.candles = {
            m: simulate_candles(start, end, assets=[a], **one).assign(ms=lambda d: _ms(d["open_time"]))
            for m, a in symbols.items()
        }
        self.trades = {
            m: simulate_trades(start, end, assets=[a], **one).assign(
                ms=lambda d: _ms(d["trade_time"]), id=lambda d: d["trade_id"].astype("int64")
            )
            for m, a in symbols.items()
        }

    def __call__(self, request: httpx.Request) -> httpx.Response:
        q = request.url.params
        limit = int(q["limit"])
        if request.url.path == "/api/v3/klines":
            c = self.candles[q["symbol"]]
            c = c[(c["ms"] >= int(q["startTime"])) & (c["ms"] <= int(q["endTime"]))].head(limit)
            body = [
                [
                    int(r.ms),
                    str(r.open),
                    str(r.high),
                    str(r.low),
                    str(r.close),
                    str(r.volume),
                    int(r.ms) + 3599999,
                    "0",
                    int(r.trade_count),
                    "0",
                    "0",
                    "0",
                ]
                for r in c.itertuples()
            ]
        else:
            t = self.trades[q["symbol"]]
            t = (t[t["id"] >= int(q["fromId"])] if "fromId" in q else t[t["ms"] >= int(q["startTime"])]).head(limit)
            body = [
                {
                    "a": int(r.id),
                    "p": str(r.price),
                    "q": str(r.size),
                    "f": int(r.id),
                    "l": int(r.id),
                    "T": int(r.ms),
                    "m": r.side == "sell",
                    "M": True,
                }
                for r in t.itertuples()
            ]
        return httpx.Response(200, content=json.dumps(body).encode())


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=21)
    args = parser.parse_args()
    start = END - pd.Timedelta(days=args.days)
    warm_end = start
    seed = get_settings().seed

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
    server = SimulatedBinance(earlier, END, seed)
    captures = Path(tempfile.mkdtemp(prefix="captures-"))
    _fresh_home()
    live = {"exchanges": ["binance"], "source": "live"}
    for window in ({"end": warm_end, "days": WARM_DAYS}, {"end": END, "days": args.days}):
        ingest(client_options={"transport": httpx.MockTransport(server), "capture_dir": captures}, **window, **live)
    _fresh_home()
    replay = {"exchanges": ["binance"], "source": "replay", "client_options": {"capture_dir": captures}}
    ingest(start=earlier, end=warm_end, **replay)  # warm: the earlier capture
    result, seconds = _timed(lambda: ingest(**replay))  # the latest live run
    rows = result.candles.landed + result.trades.landed
    binance = {
        name: {k: v.drop(columns=["ms", "id"], errors="ignore") for k, v in frames_.items()}
        for name, frames_ in (("candles", server.candles), ("trades", server.trades))
    }
    split = {"candles": "open_time", "trades": "trade_time"}
    frames = {n: pd.concat(f[f[split[n]] >= start] for f in binance[n].values()) for n in binance}
    warm = {n: pd.concat(f[f[split[n]] < start] for f in binance[n].values()) for n in binance}
    _report("replay", rows, seconds, _landing_only(warm, frames), _plain_write(frames))


if __name__ == "__main__":
    main()
