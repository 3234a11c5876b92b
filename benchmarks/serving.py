"""Benchmark: latency and throughput of features and forecasts served on loopback, and of the online read.

On one state (``--home``, or one built here by `sentinance run` on 21 simulated days, a few minutes),
in one run, this script times:

* **online read, in process** — ``online_features()`` for one instrument as it was (a ``FeatureStore``
  built on every call) and as it is (one store per settings, reused), and the speed-up;
* **feature server** — `sentinance serve-features` (Feast's server): ``POST /get-online-features`` of
  the forecaster's features for one instrument (1 + 4 x sequence-length features), asked by feature
  service and by feature names, and by names again with Python's ``-O`` (Feast's typeguard checks off);
* **model server** — `sentinance serve-model` (MLflow's server, ``--env-manager local``):
  ``POST /invocations`` with one sequence;
* **forecast** — the two in a row, as an application does (``sentinance.ml.serving.forecast``);

each over ``--requests`` requests (after a warm-up), from one client and from 8 concurrent clients
(threads, each with its own keep-alive connection), with ``--workers`` server processes (the feature
server's never replaced: ``--max-requests 0``; Feast's default 1000 resets the clients' connections
mid-run). Printed:
p50 and p99 latency in ms and requests per second, then what the servers spend on the work itself
(the same calls in process: the feature service lookup Feast's server makes per request, the read on
the reused store, the loaded model's predict) beside what HTTP adds.

    .venv/bin/python benchmarks/serving.py [--home STATE] [--requests 1000] [--workers 1]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx
import numpy as np

from sentinance.settings import configure, get_settings

BIN = Path(sys.executable).parent
CLIENTS = 8
WARMUP = 50
BUILD_DAYS, BUILD_END = 21, "2026-01-20T00:00"


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def _server(command: str, port: int, workers: int, ready: str, env: dict[str, str]):
    """`sentinance <command>` on ``port`` until the block ends."""
    from sentinance.supervisor import stop_process, wait_for_http

    args = [str(BIN / "sentinance"), command, "--port", str(port), "--workers", str(workers)]
    if command == "serve-features":
        args += ["--max-requests", "0"]  # Feast replaces a worker every ~1000 requests: a reset, not latency
    log = tempfile.NamedTemporaryFile("w", prefix=f"{command}-", suffix=".log", delete=False)  # noqa: SIM115
    process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=env)
    try:
        wait_for_http(f"http://127.0.0.1:{port}{ready}", 180, process)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_process(process)


def _stats(latencies: list[float], wall: float) -> tuple[float, float, float]:
    ms = np.asarray(latencies) * 1e3
    return float(np.percentile(ms, 50)), float(np.percentile(ms, 99)), len(latencies) / wall


def _timed(call: Callable[[], object], n: int) -> tuple[float, float, float]:
    for _ in range(min(WARMUP, n)):
        call()
    latencies = []
    started = time.perf_counter()
    for _ in range(n):
        t = time.perf_counter()
        call()
        latencies.append(time.perf_counter() - t)
    return _stats(latencies, time.perf_counter() - started)


def _http(url: str, body: dict, n: int, clients: int) -> tuple[float, float, float]:
    """``n`` POSTs of ``body`` from ``clients`` threads, each with its own connection."""

    def client_run(count: int) -> list[float]:
        with httpx.Client(timeout=30) as client:
            for _ in range(WARMUP // clients + 1):
                client.post(url, json=body).raise_for_status()
            latencies = []
            for _ in range(count):
                t = time.perf_counter()
                client.post(url, json=body).raise_for_status()
                latencies.append(time.perf_counter() - t)
            return latencies

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        parts = list(pool.map(client_run, [n // clients + (i < n % clients) for i in range(clients)]))
    return _stats([x for part in parts for x in part], time.perf_counter() - started)


def _row(name: str, stats: tuple[float, float, float]) -> None:
    print(f"  {name:<58} {stats[0]:>8.2f} {stats[1]:>8.2f} {stats[2]:>9.0f}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, help="a state dir after `sentinance run` (default: build one)")
    parser.add_argument("--requests", type=int, default=1000, help="requests per measurement (default 1000)")
    parser.add_argument("--workers", type=int, default=1, help="processes per server (default 1)")
    args = parser.parse_args()
    home = args.home or Path(tempfile.mkdtemp(prefix="sentinance-bench-serving-"))
    env = {**os.environ, "SENTINANCE_HOME": str(home)}
    if args.home is None:
        print(f"building a state in {home}: sentinance run --end {BUILD_END} --days {BUILD_DAYS}", flush=True)
        subprocess.run(
            [str(BIN / "sentinance"), "run", "--end", BUILD_END, "--days", str(BUILD_DAYS)],
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
        )
    settings = configure(get_settings(home=home))

    from feast import FeatureStore

    from sentinance.catalog import FORECASTER
    from sentinance.ml import feature_store, registry, serving
    from sentinance.resources import feature_repo_dir

    instrument = sorted(
        feature_store.query(settings, f"SELECT DISTINCT instrument_id FROM {FORECASTER.mart}")["instrument_id"]
    )[0]
    rows = [{FORECASTER.entity_key: instrument}]
    n = args.requests
    print(f"\n{instrument}, {n} requests each, {args.workers} worker(s) per server; p50 ms, p99 ms, requests/s")

    def built_per_call() -> None:  # online_features() before: a new store (YAML, registry) on every call
        store = FeatureStore(repo_path=str(feature_repo_dir()), config=feature_store.repo_config(settings))
        store.get_online_features(features=store.get_feature_service(FORECASTER.feature_service), entity_rows=rows)

    before = _timed(built_per_call, max(n // 5, 50))
    after = _timed(lambda: feature_store.online_features(settings, [instrument]), n)
    store = feature_store.feature_store(settings)
    service = store.get_feature_service(FORECASTER.feature_service, allow_cache=True)
    feast_only = _timed(lambda: store.get_online_features(features=service, entity_rows=rows).to_dict(), n)
    service_lookup = _timed(lambda: store.get_feature_service(FORECASTER.feature_service, allow_cache=True), n)
    online = feature_store.online_features(settings, [instrument])
    x = np.asarray(serving.model_input(online), dtype=np.float32)
    model = registry.load_model(registry.serving_version(settings)[0])
    predict_only = _timed(lambda: model.predict(x), n)
    print("online read in process (one instrument)")
    _row("online_features(), a FeatureStore built per call (before)", before)
    _row("online_features(), one FeatureStore reused (now)", after)
    print(f"  speed-up: p50 x{before[0] / after[0]:.1f}, p99 x{before[1] / after[1]:.1f}")

    with ExitStack() as servers:
        features = servers.enter_context(_server("serve-features", _free_port(), args.workers, "/health", env))
        models = servers.enter_context(_server("serve-model", _free_port(), args.workers, "/ping", env))
        by_service = (f"{features}/get-online-features", serving.online_request([instrument]))
        by_names = (f"{features}/get-online-features", serving.online_request([instrument], settings.sequence_length))
        invocations = (f"{models}/invocations", {"inputs": x.tolist()})
        print("over HTTP on loopback")
        for clients in (1, CLIENTS):
            _row(
                f"feature server /get-online-features, by service, {clients} client(s)", _http(*by_service, n, clients)
            )
        for clients in (1, CLIENTS):
            _row(f"feature server /get-online-features, by names, {clients} client(s)", _http(*by_names, n, clients))
        for clients in (1, CLIENTS):
            _row(f"model server /invocations, {clients} client(s)", _http(*invocations, n, clients))
        with httpx.Client(timeout=30) as client:
            _row(
                "forecast: both servers in a row, 1 client",
                _timed(lambda: serving.forecast(client, features, models, instrument, settings.sequence_length), n),
            )
    unchecked = {**env, "PYTHONOPTIMIZE": "1"}  # python -O: typeguard's @typechecked is a no-op
    with _server("serve-features", _free_port(), args.workers, "/health", unchecked) as features:
        by_names = (f"{features}/get-online-features", serving.online_request([instrument], settings.sequence_length))
        for clients in (1, CLIENTS):
            _row(f"... by names, Feast's type checks off (-O), {clients} client(s)", _http(*by_names, n, clients))
    print("the work itself, in process (what the servers add is HTTP, JSON and the web framework)")
    _row("Feast get_feature_service() (the server looks it up per request)", service_lookup)
    _row("Feast get_online_features() on the reused store, to_dict()", feast_only)
    _row("the loaded pyfunc model's predict() on one sequence", predict_only)


if __name__ == "__main__":
    main()
