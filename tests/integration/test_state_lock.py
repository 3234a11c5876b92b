"""The single-writer lock against real processes: a second writer waits for or refuses a live holder,
naming it; a holder killed with SIGKILL leaves the lock free at once and is reported as crashed; a
flow inside the lock re-enters it and records its flow run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from prefect import flow

from sentinance.settings import Settings
from sentinance.state_lock import StateLocked, crashed_holder, holder, state_lock

HOLD = textwrap.dedent(
    """
    import sys, time
    from sentinance.settings import get_settings
    from sentinance.state_lock import state_lock
    with state_lock(get_settings()):
        print("held", flush=True)
        time.sleep(float(sys.argv[1]))
    """
)


@contextmanager
def held(settings: Settings, seconds: float) -> Iterator[subprocess.Popen]:
    """Another process holding the lock of ``settings`` for ``seconds`` (or until killed)."""
    env = {**os.environ, "SENTINANCE_HOME": str(settings.home)}
    process = subprocess.Popen([sys.executable, "-c", HOLD, str(seconds)], env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout.readline().strip() == "held"
        yield process
    finally:
        process.kill()
        process.wait()


def test_a_second_writer_refuses_or_waits_naming_the_holder(fresh_settings: Settings) -> None:
    with held(fresh_settings, 3) as other:
        with pytest.raises(StateLocked) as refused, state_lock(fresh_settings, wait=0):
            pass
        message = str(refused.value)
        assert message.startswith(f"the state dir {fresh_settings.home} is being written by pid {other.pid} (`-c 3`")
        assert message.endswith("not waiting (--no-wait or SENTINANCE_LOCK_WAIT=0); run again when it has finished")
        assert refused.value.holder.pid == other.pid and "\n" not in message
        gave_up = pytest.raises(StateLocked, match=r"gave up after 0.5 s \(SENTINANCE_LOCK_WAIT\)$")
        with gave_up, state_lock(fresh_settings, wait=0.5, notify=lambda _: None):
            pass
        notes: list[str] = []
        with state_lock(fresh_settings, wait=60, notify=notes.append) as mine:  # until the holder lets go
            assert mine.pid == os.getpid() and mine.since > refused.value.holder.since
    assert notes == [f"{message.split(': not waiting')[0]}: waiting for it (at most 60 s, SENTINANCE_LOCK_WAIT)"]
    assert holder(fresh_settings).released and crashed_holder(fresh_settings) is None  # it let go: no crash


def test_a_killed_holder_leaves_the_lock_free_and_is_reported(fresh_settings: Settings) -> None:
    with held(fresh_settings, 600) as other:
        other.send_signal(signal.SIGKILL)
        other.wait()
        notes: list[str] = []
        with state_lock(fresh_settings, wait=0, notify=notes.append):  # no wait for a dead holder
            crashed = crashed_holder(fresh_settings)
    assert crashed.pid == other.pid and not crashed.released and not crashed.alive()
    note = f"the last writer of {fresh_settings.home}, {crashed.describe()}, died holding it: its work is redone"
    assert notes == [note]


def test_the_lock_is_reentrant_and_records_the_flow_run_inside(fresh_settings: Settings) -> None:
    @flow
    def inner() -> str | None:
        with state_lock(fresh_settings, wait=0) as record:
            return record.flow_run_id

    with state_lock(fresh_settings, wait=0) as outer:
        assert outer.flow_run_id is None  # taken before any flow ran, as the CLI does
        run_id = inner()
        assert run_id is not None and holder(fresh_settings).flow_run_id == run_id
        assert holder(fresh_settings).since == outer.since and not holder(fresh_settings).released
    assert holder(fresh_settings).released
