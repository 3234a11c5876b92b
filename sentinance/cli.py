"""The `sentinance` command: run the lakehouse or one of its stages, show status, serve deployments, features,
forecasts and metrics, keep the services the tools' own CLIs need, print their environment, open UIs.

Exit codes: 0 success; 1 a stage failed, its inputs are missing or another command writes the state
(one line on stderr, --debug for the traceback); 2 a usage mistake (bad command, option, value or
setting); 130 interrupted (SIGINT), 143 terminated (SIGTERM). Any other failure is a bug and prints
its traceback.

A command that writes the state holds its single-writer lock (:mod:`sentinance.state_lock`) from
start to end; a second one waits for it, saying for whom, or refuses with ``--no-wait``. SIGTERM and
SIGINT unwind the command like an error, so the embedded PostgreSQL and Prefect servers it started
stop with it; after a SIGKILL the next command cleans up (:func:`sentinance.services.recover`).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shlex
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import NoReturn

from sentinance import services
from sentinance.errors import MissingInputError, SentinanceError, SettingsError
from sentinance.pipelines.sources import BULK, SOURCES
from sentinance.settings import Settings, configure, get_settings
from sentinance.state_lock import state_lock
from sentinance.supervisor import prefect_server_command, wait_for_http

BIN = Path(sys.executable).parent
SERVER_START_SECONDS = 90
Command = Callable[[argparse.Namespace], int]


class Terminated(BaseException):
    """SIGTERM, raised in the main thread so that the command unwinds and its servers stop at exit."""


def _terminate(signum: int, frame: object) -> NoReturn:
    raise Terminated


class Parser(argparse.ArgumentParser):
    """argparse with its errors on one line (``sentinance run: error: argument --days: ...``), no usage dump."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def _utc_hour(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not an ISO date/time: {text!r}") from exc
    value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return value.replace(minute=0, second=0, microsecond=0)


def _positive(kind: type) -> Callable[[str], int | float]:
    def parse(text: str) -> int | float:
        try:
            value = kind(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from exc
        if not 0 < value < float("inf"):
            raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
        return value

    return parse


def _port(text: str) -> int:
    value = _positive(int)(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"not a TCP port: {text}")
    return value


def _print_result(result: dict) -> int:
    print(json.dumps(result, indent=2, default=str))
    return 0


# --- preconditions: the one-line answers to running a stage before its inputs exist ---------------


def _require_bronze(settings: Settings) -> None:
    from sentinance import catalog, lake

    if not lake.exists(catalog.CANDLES.path(settings)):
        raise MissingInputError(
            f"no bronze candles in {settings.home} yet: run `sentinance ingest` (or `backfill`) first"
        )


def _require_table(settings: Settings, table: str, step: str) -> None:
    from sentinance.status import warehouse_tables

    if table not in warehouse_tables(settings):
        raise MissingInputError(
            f"no table {table} in the warehouse of {settings.home} yet: run `sentinance {step}` first"
        )


def _require_model(settings: Settings) -> None:
    from sentinance.ml import registry
    from sentinance.status import model_status

    model = model_status(settings)
    if not model or not model["aliases"]:
        raise MissingInputError(f"no registered model in {settings.home} yet: run `sentinance train` first")
    registry.require_artifacts(registry.serving_version(settings)[0])


# --- stage commands -----------------------------------------------------------------------------


def _run(args: argparse.Namespace) -> int:
    from sentinance.pipelines.flows.lakehouse import lakehouse

    result = lakehouse(end=args.end, days=args.days, full_refresh=args.full_refresh)
    print(result["summary"])
    return 0


@contextmanager
def _quiet_prefect_console() -> Iterator[None]:
    """Keep Prefect's INFO lines off the terminal while a progress bar draws (they still reach the API/UI)."""
    from prefect.logging.handlers import PrefectConsoleHandler

    known = logging.Logger.manager.loggerDict.values()
    loggers = [logging.getLogger(), *(logger for logger in known if isinstance(logger, logging.Logger))]
    handlers = {h for lg in loggers for h in lg.handlers if isinstance(h, PrefectConsoleHandler)}
    levels = {h: h.level for h in handlers}
    for handler in handlers:
        handler.setLevel(max(handler.level, logging.WARNING))
    try:
        yield
    finally:
        for handler, level in levels.items():
            handler.setLevel(level)


def _land_chunks(args: argparse.Namespace, windows: list[tuple[datetime | None, datetime, float]]) -> list:
    """Run the ``ingest`` flow once per ``(start, end, days)`` window, with a progress bar (on stderr)."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from sentinance.pipelines.flows.ingest import ingest

    results = []
    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()]
    progress = Progress(*columns, console=Console(stderr=True), redirect_stdout=False, redirect_stderr=False)
    with _quiet_prefect_console(), progress:
        bar = progress.add_task(f"ingest {args.source} until {windows[-1][1]:%Y-%m-%d %H:%M} UTC", total=len(windows))
        for start, end, days in windows:
            results.append(
                ingest(
                    exchanges=args.exchange,
                    symbols=args.symbol,
                    start=start,
                    end=end,
                    days=days,
                    source=args.source,
                    include_trades=not args.no_trades,
                )
            )
            progress.update(bar, advance=1, description=f"landed until {end:%Y-%m-%d %H:%M} UTC")
    return results


def _chunk_ends(start: datetime, end: datetime, chunk_days: float) -> list[datetime]:
    hours = int((end - start) / timedelta(hours=1))
    step = max(1, int(chunk_days * 24))
    return [start + timedelta(hours=min(h, hours)) for h in range(step, hours + step, step)]


def _landed(results: list) -> int:
    for table in ("candles", "trades"):
        landings = [getattr(r, table) for r in results if getattr(r, table) is not None]
        if landings:
            total = {
                k: sum(getattr(landing, k) for landing in landings)
                for k in ("received", "inserted", "updated", "quarantined")
            }
            print(
                f"bronze {table}: {total['inserted']} inserted, {total['updated']} updated, "
                f"{total['quarantined']} quarantined of {total['received']} received"
            )
    print(f"{len(results)} ingest flow run(s); missing candles: {sum(g['missing'] for r in results for g in r.gaps)}")
    return 0


def _ingest(args: argparse.Namespace) -> int:
    from sentinance.pipelines.flows.ingest import default_end

    end = args.end or default_end().to_pydatetime()
    start = end - timedelta(days=args.days)
    if args.source == "replay":  # replays the windows of the latest live run: one flow run
        return _landed(_land_chunks(args, [(None, end, args.days)]))
    return _landed(
        _land_chunks(
            args, [(None, e, (e - start) / timedelta(days=1)) for e in _chunk_ends(start, end, args.chunk_days)]
        )
    )


def _backfill(args: argparse.Namespace) -> int:
    from sentinance.pipelines.flows.ingest import default_end

    if args.source == BULK:
        return _bulk(args, args.end or default_end().to_pydatetime())
    ends = _chunk_ends(args.start, args.end or default_end().to_pydatetime(), args.chunk_days)
    starts = [args.start, *ends[:-1]]
    return _landed(_land_chunks(args, [(s, e, (e - s) / timedelta(days=1)) for s, e in zip(starts, ends, strict=True)]))


def _bulk(args: argparse.Namespace, end: datetime) -> int:
    """Binance's archives file by file (resumable), with a progress bar over the files."""
    from sentinance.pipelines.sources.archives import EXCHANGE

    if args.exchange and set(args.exchange) != {EXCHANGE}:
        raise SettingsError(f"--source {BULK} reads Binance's archives: --exchange can only be {EXCHANGE}")
    from sentinance.pipelines.flows.bulk import backfill_bulk

    with _quiet_prefect_console():
        result = backfill_bulk(
            start=args.start, end=end, symbols=args.symbol, include_trades=not args.no_trades, show_progress=True
        )
    print(
        f"{result.files} archive files: {len(result.landed_files)} landed, {result.already_landed} landed before, "
        f"{len(result.missing)} not in the archive"
    )
    for table in ("candles", "trades"):
        counts = getattr(result, table)
        print(f"bronze {table}: {counts['landed']} landed, {counts['quarantined']} quarantined of {counts['received']}")
    print(f"missing candles: {sum(g['missing'] for g in result.gaps)}")
    return 0


def _features(args: argparse.Namespace) -> int:
    from sentinance.pipelines.flows.stages import features

    _require_bronze(get_settings())
    return _print_result(features(full_refresh=args.full_refresh))


def _marts(args: argparse.Namespace) -> int:
    from sentinance.pipelines.flows.stages import marts

    _require_table(get_settings(), "lake.candle_features", "features")
    return _print_result(marts(end=args.end, full_refresh=args.full_refresh))


def _train(args: argparse.Namespace) -> int:
    from sentinance.catalog import FORECASTER, VOLATILITY
    from sentinance.pipelines.flows.stages import train, train_volatility

    contract = VOLATILITY if args.model == "volatility" else FORECASTER
    _require_table(get_settings(), contract.mart, "marts")
    return _print_result(train_volatility() if args.model == "volatility" else train())


def _score(args: argparse.Namespace) -> int:
    from sentinance.pipelines.flows.stages import score

    _require_model(get_settings())
    return _print_result(score())


def _monitor(args: argparse.Namespace) -> int:
    from sentinance.pipelines.flows.stages import monitor

    _require_model(get_settings())
    return _print_result(monitor())


def _maintain(args: argparse.Namespace) -> int:
    from sentinance.pipelines.flows.stages import maintain

    return _print_result(maintain())


def _status(args: argparse.Namespace) -> int:
    from sentinance.status import collect_status, render_summary

    status = collect_status(get_settings())
    print(json.dumps(status, indent=2, default=str) if args.json else render_summary(status))
    return 0


def _backup(args: argparse.Namespace) -> int:
    from sentinance import state

    return _print_result(state.backup(get_settings(), args.archive))


def _restore(args: argparse.Namespace) -> int:
    from sentinance import state

    return _print_result(state.restore(get_settings(), args.archive))


# --- servers on loopback --------------------------------------------------------------------------


def _check_port(port: int) -> None:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            raise SentinanceError(f"port {port} on 127.0.0.1 is in use: pass another --port") from None


def _exec(command: list[str]) -> int:
    print("$ " + " ".join(command), flush=True)
    os.execv(command[0], command)
    return 0  # not reached


def _ui_prefect(args: argparse.Namespace) -> int:
    _check_port(args.port)
    return _exec(prefect_server_command(args.port))


def _ui_mlflow(args: argparse.Namespace) -> int:
    settings = get_settings()
    _check_port(args.port)
    return _exec(
        [
            str(BIN / "mlflow"),
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            str(args.port),
            "--workers",
            "1",
            "--backend-store-uri",
            services.mlflow_tracking_uri(settings),
            "--default-artifact-root",
            services.mlflow_artifact_root(settings),
        ]
    )


def _ui_dbt_docs(args: argparse.Namespace) -> int:
    from sentinance.pipelines.warehouse import marts

    settings = get_settings()
    _check_port(args.port)
    index = marts.generate_docs(settings)
    print(f"dbt docs generated at {index}; serving on http://127.0.0.1:{args.port}/static_index.html", flush=True)
    marts.serve_docs(settings, port=args.port)
    return 0


def jupyter_command(port: int, root: Path, options: list[str], as_root: bool) -> list[str]:
    """`jupyter lab` on loopback in ``root``, then the user's ``options``; as root (the usual case in a
    container) with ``--allow-root``, without which Jupyter refuses to start."""
    options = options[1:] if options[:1] == ["--"] else options
    return [
        str(BIN / "jupyter"),
        "lab",
        "--ip",
        "127.0.0.1",
        "--port",
        str(port),
        "--no-browser",
        f"--ServerApp.root_dir={root}",
        *(["--allow-root"] if as_root else []),
        *options,
    ]


def _ui_jupyter(args: argparse.Namespace) -> int:
    from sentinance.resources import source_checkout

    _check_port(args.port)
    checkout = source_checkout()
    root = checkout / "notebooks" if checkout else Path.cwd()  # an installed wheel has no notebooks: the cwd
    return _exec(jupyter_command(args.port, root, args.options, os.geteuid() == 0))


# --- the tools' own CLIs on this state, and serving -----------------------------------------------


def _env(args: argparse.Namespace) -> int:
    from sentinance.supervisor import environment

    settings = get_settings()
    values = environment(settings)
    print(f'# the tools\' environment for {settings.home}: eval "$(sentinance env)"')
    for key, value in sorted(values.items()):
        print(f"export {key}={shlex.quote(value)}")
    return 0


def _print_services(state: dict | None, home: Path) -> None:
    if state is None:
        print(f"services of {home}: not running")
        return
    print(f"services of {home}: running (pid {state['pid']}, since {state['started_at']})")
    for name in ("postgres", "prefect", "metrics"):
        print(f"  {name:<9} {state[name] or '-'}")
    print(f"  {'log':<9} {state['log']}")


def _services(args: argparse.Namespace) -> int:
    from sentinance import supervisor

    settings = get_settings()
    if args.action == "up":
        for port in (args.prefect_port, args.metrics_port):
            if port and not supervisor.running(settings):
                _check_port(port)
        state = supervisor.up(settings, args.prefect_port, args.metrics_port)
        _print_services(state, settings.home)
        print('then, for plain dbt, feast, mlflow, prefect and jupyter on this state: eval "$(sentinance env)"')
    elif args.action == "down":
        state = supervisor.down(settings)
        print(f"services of {settings.home}: " + ("stopped" if state else "not running"))
    elif args.json:
        print(json.dumps(supervisor.running(settings), indent=2))
    else:
        _print_services(supervisor.running(settings), settings.home)
    return 0


def _serve_features(args: argparse.Namespace) -> int:
    from feast.errors import FeatureViewNotFoundException

    from sentinance.catalog import FORECASTER
    from sentinance.ml import feature_store

    settings = get_settings()
    _check_port(args.port)
    store = feature_store.feature_store(settings)
    try:
        store.get_feature_view(FORECASTER.feature_view)
    except FeatureViewNotFoundException:
        raise MissingInputError(
            f"no feature view {FORECASTER.feature_view} in the Feast registry of {settings.home} yet: "
            "run `sentinance marts` first"
        ) from None
    print(
        f"Feast feature server on http://127.0.0.1:{args.port} ({settings.feast_online_store} online store; "
        f"POST /get-online-features with feature_service {FORECASTER.feature_service!r})",
        flush=True,
    )
    store.serve(
        host="127.0.0.1", port=args.port, workers=args.workers, max_requests=args.max_requests, no_access_log=True
    )
    return 0


def _serve_model(args: argparse.Namespace) -> int:
    from sentinance import services
    from sentinance.catalog import FORECASTER
    from sentinance.ml import registry

    settings = get_settings()
    _require_model(settings)
    _check_port(args.port)
    version, alias = registry.serving_version(settings)  # champion, else challenger (as scoring serves)
    tracking = services.mlflow_tracking_uri(settings)
    os.environ.update({"MLFLOW_TRACKING_URI": tracking, "MLFLOW_REGISTRY_URI": tracking})
    os.environ["PATH"] = f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"  # mlflow starts `uvicorn` from PATH
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # a tiny LSTM: more intra-op threads only spin (as in training)
    print(f"MLflow model server for {FORECASTER.name} v{version.version} (@{alias}): POST /invocations", flush=True)
    return _exec(
        [
            str(BIN / "mlflow"),
            "models",
            "serve",
            "--model-uri",
            f"models:/{FORECASTER.name}@{alias}",
            "--env-manager",
            "local",
            "--host",
            "127.0.0.1",
            "--port",
            str(args.port),
            "--workers",
            str(args.workers),
        ]
    )


def _serve_metrics(args: argparse.Namespace) -> int:
    from sentinance import metrics

    settings = get_settings()
    _check_port(args.port)
    _, thread = metrics.serve(settings, args.port)
    print(f"pipeline metrics of {settings.home} on http://127.0.0.1:{args.port}/metrics (Ctrl-C stops)", flush=True)
    thread.join()  # serves until Ctrl-C
    return 0


def _serve_deployments(args: argparse.Namespace) -> int:
    """Serve the deployments from this process, or register them on a work pool and run one worker of it."""
    from sentinance.pipelines.flows import deployments

    if not args.work_pool:
        deployments.serve(limit=args.limit)
        return 0
    deployments.deploy_to_work_pool(args.work_pool)
    print(f"deployments registered on the work pool {args.work_pool!r}; starting a process worker", flush=True)
    worker = [str(BIN / "prefect"), "worker", "start", "--pool", args.work_pool, "--type", "process"]
    return subprocess.run([*worker, *(["--limit", str(args.limit)] if args.limit else [])], check=False).returncode


def _serve(args: argparse.Namespace) -> int:
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from sentinance import services

    if PREFECT_API_URL.value():
        print(f"serving the deployments on {PREFECT_API_URL.value()}", flush=True)
        return _serve_deployments(args)
    _check_port(args.port)
    settings = get_settings()
    server = subprocess.Popen(prefect_server_command(args.port), start_new_session=True)
    api = f"http://127.0.0.1:{args.port}/api"
    try:
        wait_for_http(f"{api}/health", SERVER_START_SECONDS, server)
        services.record_prefect_server(settings, api, server.pid)  # other commands on this state report here
        print(f"Prefect UI on http://127.0.0.1:{args.port}; serving the deployments (Ctrl-C stops both)", flush=True)
        os.environ["PREFECT_API_URL"] = api  # for the flow-run subprocesses and the worker
        with temporary_settings({PREFECT_API_URL: api}):
            return _serve_deployments(args)
    finally:
        services.forget_prefect_server(settings)
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()


# --- parser ---------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="sentinance", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--debug", action="store_true", help="show the traceback of a failure")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(
        name: str, func: Command, help_: str, *, writes: bool = False, warehouse: bool = True
    ) -> argparse.ArgumentParser:
        """A subcommand; ``writes``: it holds the state lock (and takes ``--no-wait``); ``warehouse``: it needs
        PostgreSQL (an external ``SENTINANCE_DATABASE_URL`` is checked first)."""
        cmd = sub.add_parser(name, help=help_, description=help_)
        cmd.set_defaults(func=func, writes=writes, warehouse=warehouse, no_wait=False)
        if writes:
            cmd.add_argument(
                "--no-wait",
                action="store_true",
                help="if another command writes this state, fail at once instead of waiting "
                "(at most SENTINANCE_LOCK_WAIT seconds) for it",
            )
        return cmd

    def end_option(cmd: argparse.ArgumentParser) -> None:
        cmd.add_argument(
            "--end",
            type=_utc_hour,
            default=None,
            help="exclusive end of the window, ISO UTC (default: the current hour)",
        )

    run = command("run", _run, "run the whole lakehouse flow once (incremental)", writes=True)
    end_option(run)
    run.add_argument("--days", type=_positive(int), default=90, help="history to keep in the window (default 90)")
    run.add_argument("--full-refresh", action="store_true", help="recompute silver and marts from scratch")

    def source_options(cmd: argparse.ArgumentParser, chunk_days: float, sources: tuple[str, ...] = SOURCES) -> None:
        cmd.add_argument(
            "--chunk-days",
            type=_positive(float),
            default=chunk_days,
            help=f"days per ingest flow run (default {chunk_days:g})",
        )
        cmd.add_argument(
            "--source",
            choices=sources,
            default="simulator",
            help="simulator (default), live exchange APIs (captured), or replay of the captures"
            + (f"; {BULK}: Binance's public archives (SENTINANCE_BINANCE_ARCHIVE_URL)" if BULK in sources else ""),
        )
        cmd.add_argument(
            "--exchange",
            action="append",
            metavar="NAME",
            help="only this exchange (repeatable; default: every exchange of the universe, SENTINANCE_EXCHANGES)",
        )
        cmd.add_argument(
            "--symbol",
            action="append",
            metavar="SYMBOL",
            help="only this asset or symbol, e.g. BTC or BTC/USDT (repeatable; default: every asset of the "
            "universe, SENTINANCE_ASSETS)",
        )
        cmd.add_argument("--no-trades", action="store_true", help="land candles only")

    ingest = command(
        "ingest",
        _ingest,
        "land the newest candles and trades into bronze (from each series' watermark), with a progress bar",
        writes=True,
        warehouse=False,
    )
    end_option(ingest)
    ingest.add_argument(
        "--days", type=_positive(float), default=90, help="history to keep for a new series (default 90)"
    )
    source_options(ingest, 30)

    backfill = command(
        "backfill",
        _backfill,
        "(re)land the history of [--start, --end) into bronze, chunk by chunk, with a progress bar (idempotent)",
        writes=True,
        warehouse=False,
    )
    backfill.add_argument("--start", type=_utc_hour, required=True, help="first hour to land, ISO UTC")
    end_option(backfill)
    source_options(backfill, 7, (*SOURCES, BULK))

    features = command(
        "features", _features, "Spark features from bronze into silver, loaded into PostgreSQL", writes=True
    )
    features.add_argument("--full-refresh", action="store_true", help="recompute silver from scratch")

    marts = command(
        "marts", _marts, "dbt build of staging and marts (with tests), then the Feast online store", writes=True
    )
    end_option(marts)
    marts.add_argument("--full-refresh", action="store_true", help="rebuild the incremental marts from scratch")

    train = command("train", _train, "train an LSTM on the marts, register it in MLflow and gate it", writes=True)
    train.add_argument(
        "--model",
        choices=("forecaster", "volatility"),
        default="forecaster",
        help="the next-hour return forecaster (default) or the next-day volatility model",
    )
    command(
        "score", _score, "score the latest features with the serving models (champion, else challenger)", writes=True
    )
    command("monitor", _monitor, "KS + PSI feature drift against the serving model's training window", writes=True)

    command(
        "maintain",
        _maintain,
        "compact (OPTIMIZE) and VACUUM every lake table, keeping what registered model versions need to be reproduced",
        writes=True,
        warehouse=False,
    )
    status = command("status", _status, "tables, Delta versions, model aliases, last flow runs and UI commands")
    status.add_argument("--json", action="store_true", help="machine-readable output")

    backup = command("backup", _backup, "write the state dir (lake, warehouse, MLflow, Feast, Prefect) to one archive")
    backup.add_argument("archive", type=Path, help="the .tar.gz file to write (must not exist yet)")
    restore = command("restore", _restore, "unpack a backup into the empty state dir SENTINANCE_HOME, wherever it is")
    restore.add_argument("archive", type=Path, help="a .tar.gz written by `sentinance backup`")

    serve = command("serve", _serve, "start a Prefect server on loopback and serve the scheduled deployments")
    serve.add_argument("--port", type=_port, default=4200, help="Prefect UI/API port (default 4200)")
    serve.add_argument("--limit", type=_positive(int), default=None, help="at most this many flow runs at once")
    serve.add_argument(
        "--work-pool",
        metavar="NAME",
        help="register the deployments on this process work pool (created if missing) and start a worker of it, "
        "instead of running the flows from this process",
    )

    command(
        "env",
        _env,
        "print the shell exports that make plain dbt, feast, mlflow, prefect and jupyter work on this state "
        '(eval "$(sentinance env)"; the embedded PostgreSQL needs `sentinance services up`)',
    )

    services = command(
        "services",
        _services,
        "keep the embedded PostgreSQL, a Prefect server and the metrics exporter running on this state until `down`",
    )
    services.add_argument("action", choices=("up", "down", "status"), help="start (detached), stop, or show them")
    services.add_argument(
        "--prefect-port", type=_port, default=4200, help="Prefect server's port with `up` (default 4200)"
    )
    services.add_argument(
        "--no-prefect", dest="prefect_port", action="store_const", const=None, help="no Prefect server"
    )
    services.add_argument(
        "--metrics-port", type=_port, default=9464, help="pipeline metrics exporter's port with `up` (default 9464)"
    )
    services.add_argument("--json", action="store_true", help="`status` as JSON (null: not running)")

    def server_options(cmd: argparse.ArgumentParser, port: int, workers: bool = True) -> None:
        cmd.add_argument("--port", type=_port, default=port, help=f"port on 127.0.0.1 (default {port})")
        if workers:
            cmd.add_argument("--workers", type=_positive(int), default=1, help="server processes (default 1)")

    serve_features = command(
        "serve-features",
        _serve_features,
        "Feast's feature server on the repo and the online store (POST /get-online-features), until Ctrl-C",
    )
    server_options(serve_features, 6566)
    serve_features.add_argument(
        "--max-requests",
        type=int,
        default=1000,
        help="requests a worker serves before it is replaced (Feast's default 1000; 0: never)",
    )
    server_options(
        command(
            "serve-model",
            _serve_model,
            "MLflow's model server for the champion (else the challenger) (POST /invocations), until Ctrl-C",
        ),
        5001,
    )
    server_options(
        command(
            "serve-metrics", _serve_metrics, "the pipeline metrics in Prometheus' format on /metrics, until Ctrl-C"
        ),
        9464,
        workers=False,
    )

    ui = sub.add_parser(
        "ui",
        help="serve one UI on this state, on 127.0.0.1, until Ctrl-C",
        description="Serve one UI on this state, on 127.0.0.1, until Ctrl-C.",
    )
    ui.set_defaults(writes=False, warehouse=False, no_wait=False)
    ui_sub = ui.add_subparsers(dest="ui", required=True, metavar="UI")
    for name, func, port, help_ in [
        ("prefect", _ui_prefect, 4200, "the Prefect UI: flow runs, deployments, schedules"),
        ("mlflow", _ui_mlflow, 5000, "the MLflow UI: experiments, runs, the model registry and its aliases"),
        ("dbt-docs", _ui_dbt_docs, 8080, "generate the dbt docs site (lineage graph) and serve it"),
        ("jupyter", _ui_jupyter, 8888, "Jupyter Lab on notebooks/, its kernels reading this state"),
    ]:
        cmd = ui_sub.add_parser(name, help=help_, description=help_)
        cmd.add_argument("--port", type=_port, default=port, help=f"port on 127.0.0.1 (default {port})")
        cmd.set_defaults(func=func, warehouse=name == "dbt-docs")
        if name == "jupyter":
            cmd.add_argument("options", nargs=argparse.REMAINDER, help="after --: options passed to `jupyter lab`")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "backfill" and args.start >= (args.end or datetime.now(UTC)):
        parser.error(f"backfill: --start {args.start:%Y-%m-%dT%H:%M} is not before --end")
    return run(args)


def _check(args: argparse.Namespace, settings: Settings) -> None:
    """What can be checked before the command touches the state: the selection of the universe, an
    external PostgreSQL's answer."""
    if getattr(args, "exchange", None):
        settings.universe.select(exchanges=args.exchange)
    if getattr(args, "warehouse", False):
        services.check_database_url(settings)


def run(args: argparse.Namespace) -> int:
    """Run the parsed command: one line on stderr for what the user can fix, a traceback for a bug."""
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        settings = get_settings()
        _check(args, settings)
        configure(settings)  # before any tool is imported: telemetry off, Prefect's home in the state dir
        services.recover(settings)
        lock = (
            state_lock(
                settings,
                wait=0 if args.no_wait else None,
                notify=lambda message: print(f"sentinance {args.command}: {message}", file=sys.stderr, flush=True),
            )
            if getattr(args, "writes", False)
            else nullcontext()
        )
        with lock:
            return args.func(args)
    except KeyboardInterrupt:
        print("sentinance: interrupted", file=sys.stderr)
        return 130
    except Terminated:
        print("sentinance: terminated", file=sys.stderr)
        return 143
    except SentinanceError as exc:  # a bug is anything else: it keeps its traceback
        if args.debug:
            raise
        print(f"sentinance {args.command}: error: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, SettingsError) else 1
    finally:
        signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
