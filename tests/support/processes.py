"""Servers the tests start the way a user does (`sentinance …`, the tools' own CLIs), on free loopback
ports, each in its own session with its output in test-artifacts/<name>.log, stopped with all it spawned."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sentinance.supervisor import stop_process

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def background(
    command: list[str], log_name: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> Iterator[subprocess.Popen]:
    """``command`` as a subprocess in its own session, its output in test-artifacts/<log_name>.log; stopped
    with everything it spawned when the block ends."""
    ARTIFACTS.mkdir(exist_ok=True)
    with (ARTIFACTS / f"{log_name}.log").open("w") as log:
        process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=env, cwd=cwd
        )
        try:
            yield process
        finally:
            stop_process(process)


def sentinance(*args: str, log_name: str, env: dict[str, str] | None = None):
    """`sentinance <args>` in the background (see :func:`background`)."""
    return background([sys.executable, "-m", "sentinance.cli", *args], log_name, env)
