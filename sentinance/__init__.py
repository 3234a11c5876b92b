"""Sentinance: a batch-first crypto market lakehouse.

Importing the package fixes the process environment the embedded tools read at
import time: telemetry off everywhere, Prefect's state under the state dir, and
every embedded server bound to loopback. Values already set by the user win.
"""

from __future__ import annotations

import os
from pathlib import Path

__version__ = "0.1.0"


def _configure_environment() -> None:
    home = Path(os.environ.setdefault("SENTINANCE_HOME", str(Path.cwd() / ".sentinance"))).resolve()
    os.environ["SENTINANCE_HOME"] = str(home)
    defaults = {
        # telemetry off: dbt, Great Expectations, Feast, Prefect, MLflow, and the generic flag
        "DO_NOT_TRACK": "1",
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "False",
        "GX_ANALYTICS_ENABLED": "False",
        "FEAST_USAGE": "False",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        # Prefect keeps its database (flow runs the UI shows) in the state dir
        "PREFECT_HOME": str(home / "prefect"),
        "PREFECT_SERVER_API_HOST": "127.0.0.1",
        # the ephemeral API's first start runs migrations; a busy 2-core machine needs more than 20 s
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
        "PREFECT_UI_ENABLED": "true",
        "PREFECT_LOGGING_LEVEL": "INFO",
        # Spark's driver binds to loopback only
        "SPARK_LOCAL_IP": "127.0.0.1",
        "PYARROW_IGNORE_TIMEZONE": "1",
    }
    for key, value in defaults.items():
        os.environ.setdefault(key, value)
    # Prefect creates its home without parents; make sure the state dir exists
    Path(os.environ["PREFECT_HOME"]).mkdir(parents=True, exist_ok=True)


_configure_environment()
