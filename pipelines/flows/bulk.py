"""The ``backfill-bulk`` Prefect flow: years of Binance history from its public archives, file by file.

For every symbol of the universe's ``binance`` exchange: the klines of each interval and the
aggTrades of ``[start, end)``, as monthly files for whole months and daily files for the rest
(:mod:`sentinance.pipelines.sources.archives`). Each file is downloaded and verified against its
``.CHECKSUM`` (a retried task: the download is idempotent), read in chunks and landed through the
same GX checkpoint and Delta merge as the ``ingest`` flow, with lineage ``source = bulk``. A file
is recorded in ``$SENTINANCE_HOME/bulk/landed.txt`` once all of it has landed: a rerun resumes
with the first file not recorded. A file the archive does not have (not published yet) is reported
and skipped; a file that fails its checksum fails the run after the others have landed, named in
one line.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import pandas as pd
from prefect import flow, get_run_logger, task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run

from sentinance.errors import SentinanceError, SettingsError
from sentinance.pipelines.flows.ingest import as_utc, gap_report, land_table, resolve_series
from sentinance.pipelines.flows.retry import retrying
from sentinance.pipelines.landing import bronze
from sentinance.pipelines.sources import BULK
from sentinance.pipelines.sources.archives import EXCHANGE, ArchiveFile, ArchiveMissing, download, plan_files, read
from sentinance.settings import Settings, configure, get_settings
from sentinance.state_lock import state_lock

log = logging.getLogger(__name__)


class BulkIncomplete(SentinanceError):
    """Some archive files failed (e.g. a checksum); the others landed. ``result`` is the run's :class:`BulkResult`."""

    def __init__(self, result: BulkResult) -> None:
        self.result = result
        super().__init__("; ".join(result.failures.values()))


@dataclass
class BulkResult:
    files: int = 0  # in the window
    already_landed: int = 0  # recorded by an earlier run: not fetched again
    landed_files: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # not in the archive
    failures: dict[str, str] = field(default_factory=dict)  # file -> error
    candles: dict[str, int] = field(default_factory=lambda: {"received": 0, "landed": 0, "quarantined": 0})
    trades: dict[str, int] = field(default_factory=lambda: {"received": 0, "landed": 0, "quarantined": 0})
    gaps: list[dict] = field(default_factory=list)


class LandedFiles:
    """The archive files already landed in this state dir, one path per line (appended as each completes)."""

    def __init__(self, settings: Settings) -> None:
        self.path = settings.home / "bulk" / "landed.txt"

    def __contains__(self, file: ArchiveFile) -> bool:
        return self.path.exists() and file.path in self.path.read_text().splitlines()

    def add(self, file: ArchiveFile) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a") as record:
            record.write(file.path + "\n")


@task(cache_policy=NO_CACHE, **retrying())
def fetch_archive(base_url: str, file: ArchiveFile, folder: Path) -> Path:
    """Download one archive file and verify its checksum (retried on transient network errors)."""
    return download(base_url, file, folder)


@contextmanager
def _progress(show: bool, total: int, done: int) -> Iterator[Callable[[str], None]]:
    """A progress bar over the files on stderr (``show``), else nothing."""
    if not show:
        yield lambda description: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()]
    with Progress(*columns, console=Console(stderr=True)) as bar:
        files = bar.add_task("binance archive files", total=total, completed=done)
        yield lambda description: bar.update(files, advance=1, description=description)


def _land(
    settings: Settings,
    file: ArchiveFile,
    path: Path,
    window: tuple[pd.Timestamp, pd.Timestamp],
    result: BulkResult,
    run_id: str | None,
) -> None:
    target = bronze.CANDLES if file.kind == "klines" else bronze.TRADES
    counts = result.candles if file.kind == "klines" else result.trades
    for chunk in read(file, path):
        inside = chunk[(chunk[target.time] >= window[0]) & (chunk[target.time] < window[1])]
        landing = land_table(settings, target, [inside], BULK, run_id)
        counts["received"] += landing.received
        counts["landed"] += landing.landed
        counts["quarantined"] += landing.quarantined


@flow(name="backfill-bulk", log_prints=True)
def backfill_bulk(
    start: datetime,
    end: datetime,
    symbols: list[str] | None = None,
    intervals: list[str] | None = None,
    include_trades: bool = True,
    show_progress: bool = False,
) -> BulkResult:
    """Land ``[start, end)`` of the universe's binance symbols from the archives (see the module docstring)."""
    settings, run_id = configure(get_settings()), flow_run.get_id()
    if EXCHANGE not in settings.universe.exchanges:
        raise SettingsError("the bulk source reads Binance's archives: add binance to SENTINANCE_EXCHANGES")
    window = (as_utc(start, "start"), as_utc(end, "end"))
    if window[0] >= window[1]:
        raise SettingsError(f"start {window[0]} is not before end {window[1]}")
    pairs = resolve_series(settings, [EXCHANGE], symbols, "live")
    chosen = list(settings.universe.select(intervals=intervals).intervals)
    today = pd.Timestamp.now(tz="UTC")
    files = plan_files([s for _, s in pairs], chosen, include_trades, window[0], window[1], today)
    landed = LandedFiles(settings)
    pending = [f for f in files if f not in landed]
    result = BulkResult(files=len(files), already_landed=len(files) - len(pending))
    folder = settings.home / "bulk" / "downloads"
    logger = get_run_logger()
    with _progress(show_progress, len(files), result.already_landed) as advance:
        for file in pending:
            try:
                path = fetch_archive(settings.binance_archive_url, file, folder)
                with state_lock(settings):  # the state's single writer (re-entered under the CLI's)
                    _land(settings, file, path, window, result, run_id)
            except ArchiveMissing as exc:
                result.missing.append(file.path)
                logger.warning("%s; skipped", exc)
            except SentinanceError as exc:  # a corrupt file: the others go on, the run fails after them
                result.failures[file.path] = str(exc)
                logger.error("%s", exc)
            else:
                landed.add(file)
                path.unlink()
                result.landed_files.append(file.path)
            advance(f"{file.path.rsplit('/', 1)[-1]}")
    windows = {(EXCHANGE, s, i): window for _, s in pairs for i in chosen}
    with state_lock(settings):
        result.gaps = gap_report(settings, windows, run_id).to_dict("records")
    create_table_artifact(
        key="bulk-report",
        table=[{"file": f.path, "status": _status(f, result)} for f in files],
        description=f"binance archives {window[0]:%Y-%m-%d} to {window[1]:%Y-%m-%d}: landed, missing or failed",
    )
    logger.info(
        "bulk: %d files (%d landed before), %d landed now, %d missing, %d failed; candles %s; trades %s",
        result.files,
        result.already_landed,
        len(result.landed_files),
        len(result.missing),
        len(result.failures),
        result.candles,
        result.trades,
    )
    if result.failures:
        raise BulkIncomplete(result)
    return result


def _status(file: ArchiveFile, result: BulkResult) -> str:
    if file.path in result.failures:
        return "failed: " + result.failures[file.path]
    if file.path in result.missing:
        return "not in the archive"
    return "landed" if file.path in result.landed_files else "landed before"
