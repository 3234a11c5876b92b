"""The state dir's single writer: an OS lock that the kernel releases when its holder dies.

Everything that writes the state — landing into bronze, silver, the warehouse, the marts, the online
store, the registry, predictions — runs inside :func:`state_lock`: an exclusive ``flock`` (through
``filelock``) on ``$SENTINANCE_HOME/state.lock``. There is no lease and no heartbeat to expire: when
the holder exits or is killed (``kill -9`` included), the kernel closes its descriptor and the lock is
free at once, so a rerun never waits on a dead holder.

The holder writes who it is into the lock file — pid, command line, Prefect flow run and since when —
so a second writer can say whom it waits for. It waits at most ``SENTINANCE_LOCK_WAIT`` seconds
(logging the holder when it starts waiting and every minute after), or refuses at once with a one-line
:class:`StateLocked` when the wait is 0 (``sentinance run --no-wait``).

The lock belongs to the process: re-entering it in the same process (the ``lakehouse`` flow's stage
subflows inside its run, a flow inside the CLI command that took the lock) only counts. A holder that
finds a dead predecessor's record says so (:func:`crashed_holder`): that run's work is redone by this one.
"""

from __future__ import annotations

import json
import logging
import os
import shlex
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import psutil
from filelock import FileLock, Timeout

from sentinance.errors import SentinanceError
from sentinance.settings import ENV_PREFIX, Settings

log = logging.getLogger(__name__)

POLL_SECONDS = 0.5
REMIND_SECONDS = 60  # a waiting writer repeats whom it waits for this often


class StateLocked(SentinanceError):
    """Another process writes this state dir and this one did not wait (long enough) for it."""

    def __init__(self, message: str, holder: Holder | None) -> None:
        super().__init__(message)
        self.holder = holder


@dataclass(frozen=True)
class Holder:
    """Who holds (or last held) the lock, as its holder recorded it."""

    pid: int
    command: str
    since: str  # ISO time in UTC
    flow_run_id: str | None = None
    flow_run_name: str | None = None
    flow: str | None = None
    released: str | None = None  # when the holder let go; None while held, or if it died holding the lock

    def describe(self) -> str:
        """``pid 123 (`sentinance run --days 7`, flow run lakehouse/brave-otter 0f3…, since 07:30:12 UTC)``."""
        parts = [f"`{self.command}`"]
        if self.flow_run_id:
            parts.append(f"flow run {self.flow or '?'}/{self.flow_run_name or '?'} {self.flow_run_id}")
        parts.append(f"since {datetime.fromisoformat(self.since):%Y-%m-%d %H:%M:%S} UTC")
        return f"pid {self.pid} ({', '.join(parts)})"

    def alive(self) -> bool:
        """Whether the recorded process still runs (the one that recorded itself, not a reused pid)."""
        try:
            started = psutil.Process(self.pid).create_time()
        except psutil.Error:
            return False
        return started <= datetime.fromisoformat(self.since).timestamp() + 1


# one lock object per lock file and process, so that re-entering it only counts
_locks: dict[Path, FileLock] = {}
_guard = threading.Lock()
_crashed: dict[Path, Holder] = {}


def _lock(path: Path) -> FileLock:
    with _guard:
        if path not in _locks:
            _locks[path] = FileLock(path, thread_local=False, preserve_lock_file=True, fallback_to_soft=False)
        return _locks[path]


def holder(settings: Settings) -> Holder | None:
    """The record of the lock's current (or last) holder; None if there is none, or it is being written."""
    try:
        return Holder(**json.loads(settings.lock_file.read_text()))
    except (OSError, ValueError, TypeError):
        return None


def crashed_holder(settings: Settings) -> Holder | None:
    """The holder this process found dead, its record not released, when it took the lock: a killed run."""
    return _crashed.get(settings.lock_file)


def _flow_run() -> dict[str, str | None]:
    """The Prefect flow run this code runs in, if any (Prefect is asked only when something imported it)."""
    if "prefect" not in sys.modules:
        return {}
    from prefect.runtime import flow_run

    run_id = flow_run.get_id()
    if run_id is None:
        return {}
    return {"flow_run_id": str(run_id), "flow_run_name": flow_run.get_name(), "flow": flow_run.get_flow_name()}


def _write(settings: Settings, record: Holder) -> Holder:
    """Write the lock file's record (only its holder does; a reader may catch it half-written: it retries)."""
    settings.lock_file.write_text(json.dumps(asdict(record)))
    return record


def _command() -> str:
    return shlex.join([Path(sys.argv[0]).name, *sys.argv[1:]]) if sys.argv and sys.argv[0] else sys.executable


def _notifier(notify: Callable[[str], None] | None) -> Callable[[str], None]:
    if notify is not None:
        return notify
    if "prefect" in sys.modules:  # inside a flow run: into its log, which the UI shows
        from prefect.exceptions import MissingContextError
        from prefect.logging import get_run_logger

        try:
            return get_run_logger().warning
        except MissingContextError:
            pass
    return log.warning


def _describe_holder(settings: Settings) -> tuple[Holder | None, str]:
    found = holder(settings)
    if found is None or found.released or not found.alive():  # the new holder has not written its record yet
        return None, "another process"
    return found, found.describe()


def _acquire(lock: FileLock, settings: Settings, wait: float, notify: Callable[[str], None]) -> None:
    """Take the lock, waiting at most ``wait`` seconds for its holder and saying whom it waits for."""
    try:
        lock.acquire(blocking=False)
        return
    except Timeout:
        pass
    found, who = _describe_holder(settings)
    where = f"the state dir {settings.home} is being written by {who}"
    if wait == 0:
        raise StateLocked(
            f"{where}: not waiting (--no-wait or {ENV_PREFIX}LOCK_WAIT=0); run again when it has finished", found
        )
    notify(f"{where}: waiting for it (at most {wait:g} s, {ENV_PREFIX}LOCK_WAIT)")
    started = reminded = time.monotonic()

    def remind() -> bool:
        nonlocal reminded
        if time.monotonic() - reminded >= REMIND_SECONDS:
            reminded = time.monotonic()
            notify(f"still waiting ({reminded - started:.0f} s) for {_describe_holder(settings)[1]}")
        return False  # never cancel: the timeout bounds the wait

    try:
        lock.acquire(timeout=wait, poll_interval=POLL_SECONDS, cancel_check=remind)
    except Timeout:
        raise StateLocked(f"{where}: gave up after {wait:g} s ({ENV_PREFIX}LOCK_WAIT)", found) from None


@contextmanager
def state_lock(
    settings: Settings, *, wait: float | None = None, notify: Callable[[str], None] | None = None
) -> Iterator[Holder]:
    """Hold the state dir's single-writer lock for the block; yields this process's record.

    ``wait`` (default ``settings.lock_wait``) bounds the wait for another holder; 0 refuses at once.
    Re-entrant within the process: an inner block only counts, and records the flow run it runs in
    when the outer one had none (the CLI took the lock before the flow started).
    """
    settings.home.mkdir(parents=True, exist_ok=True)
    lock = _lock(settings.lock_file)
    notify = _notifier(notify)
    if lock.is_locked:
        lock.acquire()
        current = holder(settings)
    else:
        _acquire(lock, settings, settings.lock_wait if wait is None else wait, notify)
        previous = holder(settings)
        if previous is not None and not previous.released and previous.pid != os.getpid() and not previous.alive():
            _crashed[settings.lock_file] = previous
            notify(f"the last writer of {settings.home}, {previous.describe()}, died holding it: its work is redone")
        current = None
    try:
        run = _flow_run()
        if current is None or (run and not current.flow_run_id):
            since = current.since if current else datetime.now(UTC).isoformat(timespec="seconds")
            current = _write(settings, Holder(os.getpid(), current.command if current else _command(), since, **run))
        yield current
    finally:
        if lock.lock_counter == 1 and current is not None:  # the outermost hold ends: not a crash, says the record
            _write(settings, replace(current, released=datetime.now(UTC).isoformat(timespec="seconds")))
        lock.release()
