"""`services.json`, the record of a running `sentinance services up`: who is alive, what is stale."""

from __future__ import annotations

import json
import subprocess
import sys

import psutil

from sentinance import supervisor
from sentinance.settings import Settings


def _record(settings: Settings, pid: int, create_time: float) -> None:
    settings.services_dir.mkdir(parents=True, exist_ok=True)
    state = {"pid": pid, "pid_create_time": create_time, "prefect": None, "metrics": None}
    supervisor.state_file(settings).write_text(json.dumps(state))


def test_a_live_supervisor_is_running_and_a_dead_or_reused_pid_is_stale(fresh_settings: Settings) -> None:
    me = psutil.Process()
    _record(fresh_settings, me.pid, me.create_time())
    assert supervisor.running(fresh_settings)["pid"] == me.pid

    _record(fresh_settings, me.pid, me.create_time() - 60)  # the pid now belongs to another process
    assert supervisor.running(fresh_settings) is None
    assert not supervisor.state_file(fresh_settings).exists()  # removed: the next `up` starts afresh

    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    _record(fresh_settings, int(gone.stdout), 0.0)  # killed without cleaning up
    assert supervisor.running(fresh_settings) is None and supervisor.down(fresh_settings) is None
