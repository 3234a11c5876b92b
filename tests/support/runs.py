"""`sentinance` commands as an operator runs them — console script, own process group, own state dir —
and the fingerprint of the state they leave (:mod:`support.fingerprint`, in a process of its own)."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from support.fingerprint import Part, load

SCRIPT = Path(sys.executable).parent / "sentinance"
FINGERPRINT = Path(__file__).with_name("fingerprint.py")


def state_dir(prefix: str) -> Path:
    """An empty state dir (not under pytest's 0700 tmp root, which the embedded PostgreSQL cannot traverse)."""
    return Path(tempfile.mkdtemp(prefix=f"sentinance-{prefix}-"))


def environment(home: Path, **settings: str) -> dict[str, str]:
    """This process's environment for a command on ``home``, without the test session's Prefect and state."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SENTINANCE_", "PREFECT_"))}
    return {**env, "SENTINANCE_HOME": str(home), **settings}


def start(home: Path, *args: str, **settings: str) -> subprocess.Popen:
    """``sentinance <args>`` on ``home`` in a process group of its own (a fault kills that group only)."""
    return subprocess.Popen(
        [str(SCRIPT), *args],
        env=environment(home, **settings),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def run(home: Path, *args: str, timeout: float = 1200, **settings: str) -> subprocess.CompletedProcess:
    """``sentinance <args>`` on ``home`` to its end; the result keeps stdout and stderr."""
    process = start(home, *args, **settings)
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, 9)
        out, err = process.communicate()
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)


def fingerprint(home: Path) -> dict[str, Part]:
    """The fingerprint of the state dir ``home`` (its embedded PostgreSQL stops again afterwards)."""
    done = subprocess.run(
        [sys.executable, str(FINGERPRINT), str(home)],
        env=environment(home),
        capture_output=True,
        text=True,
        timeout=600,
    )
    if done.returncode:
        raise RuntimeError(f"fingerprint of {home} failed:\n{done.stderr[-3000:]}")
    return load(done.stdout.strip().splitlines()[-1])
