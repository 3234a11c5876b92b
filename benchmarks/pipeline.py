"""Benchmark: what a lakehouse run costs as the lake grows — a full refresh, a no-op, +1 hour, +24 hours.

Lakes are built from the simulator (trades included), each in a state dir of its own:

* **30d** — 3 exchanges × 3 assets × 30 days, hourly: the reference for the increments' ratio;
* **S** — 3 exchanges × 3 assets × 90 days, hourly;
* **M** — 3 exchanges × 10 assets × 365 days, hourly.

For each lake, one `lakehouse` flow run per scenario, each in a fresh Python process (so peak RSS is
the scenario's own): ``full`` (an empty state), ``no-op`` (the same window again), ``+1h`` and
``+24h`` (the window's end moved on). Printed: wall time and peak RSS per stage (from the flow's
``timings``), rows landed per second, and the ratio of each increment's cost on S and M to the same
increment on the 30-day lake — which is 1.0 when the increment's cost follows the new rows only.

    .venv/bin/python benchmarks/pipeline.py [--lakes 30d S M] [--prefect-api http://127.0.0.1:4200/api]

With ``--prefect-api`` the runs report to that (already running) Prefect server instead of each
starting a temporary one; the first line printed says which.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

END = datetime(2026, 1, 20)
LAKES = {  # name: (assets, days)
    "30d": ("BTC,ETH,SOL", 30),
    "S": ("BTC,ETH,SOL", 90),
    "M": ("BTC,ETH,SOL,XRP,ADA,DOGE,AVAX,LINK,DOT,LTC", 365),
}
SCENARIOS = {  # name: hours the window's end moves on from the previous scenario's
    "full": 0,
    "no-op": 0,
    "+1h": 1,
    "+24h": 24,
}
CHILD = """
import json, resource, sys, time
from datetime import datetime
from sentinance.settings import configure
configure()
started = time.perf_counter()
from sentinance.pipelines.flows.lakehouse import lakehouse
imported = time.perf_counter() - started
result = lakehouse(end=datetime.fromisoformat(sys.argv[1]), days=int(sys.argv[2]))
ingest = result["stages"]["ingest"]
landed = sum((ingest.get(t) or {}).get("inserted", 0) + (ingest.get(t) or {}).get("updated", 0)
             for t in ("candles", "trades"))
print("RESULT " + json.dumps({"timings": result["timings"], "landed": landed, "imported": imported,
                              "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def run(child: Path, home: str, assets: str, end: datetime, days: int, prefect_api: str | None) -> dict:
    env = {**os.environ, "SENTINANCE_HOME": home, "SENTINANCE_ASSETS": assets}
    if prefect_api:
        env["PREFECT_API_URL"] = prefect_api
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, str(child), end.replace(tzinfo=None).isoformat() + "+00:00", str(days)],
        env=env,
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"the run of {home} failed:\n{done.stderr[-3000:]}")
    found = [line.split("RESULT ", 1)[1] for line in done.stdout.splitlines() if "RESULT " in line]
    if not found:
        raise SystemExit(f"the run of {home} printed no result:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return {**json.loads(found[-1]), "wall": wall}


def report(lake: str, scenario: str, measured: dict) -> None:
    stages = "  ".join(
        f"{stage} {t['seconds']:.1f}s/{t['peak_rss_mb']:.0f}MB" for stage, t in measured["timings"].items()
    )
    rate = measured["landed"] / measured["wall"] if measured["landed"] else 0.0
    print(
        f"{lake:>4} {scenario:>6}: {measured['wall']:7.1f} s wall ({measured['imported']:.1f} s imports), "
        f"peak RSS {measured['peak_rss_mb']:,.0f} MB, {measured['landed']:>9,} rows landed ({rate:,.0f} rows/s)"
        f"\n              {stages}",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lakes", nargs="+", choices=list(LAKES), default=list(LAKES))
    parser.add_argument("--prefect-api", help="report to this running Prefect server (else a temporary one per run)")
    args = parser.parse_args()
    print(f"{os.cpu_count()} cores; Prefect: {args.prefect_api or 'a temporary server per run'}", flush=True)
    # a script file, not ``python -c``: pyspark.sql.connect takes a __main__ without a file for its doctests
    child = Path(tempfile.mkdtemp(prefix="sentinance-bench-")) / "lakehouse_run.py"
    child.write_text(CHILD)
    costs: dict[str, dict[str, float]] = {}
    for lake in args.lakes:
        assets, days = LAKES[lake]
        home = tempfile.mkdtemp(prefix=f"sentinance-bench-{lake}-")
        end = END
        for scenario, hours in SCENARIOS.items():
            end = end + timedelta(hours=hours)
            measured = run(child, home, assets, end, days, args.prefect_api)
            report(lake, scenario, measured)
            costs.setdefault(lake, {})[scenario] = measured["wall"]
    if "30d" in costs:
        for lake in (name for name in costs if name != "30d"):
            ratios = ", ".join(f"{s} {costs[lake][s] / costs['30d'][s]:.2f}" for s in ("no-op", "+1h", "+24h"))
            print(f"increment cost ratio {lake} / 30d: {ratios}  (1.0 = independent of history)")


if __name__ == "__main__":
    main()
