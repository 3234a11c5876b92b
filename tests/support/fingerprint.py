"""A fingerprint of a state dir's business content, to compare a state with another: every Delta table of
the catalog, every table of the warehouse, Feast's online store and the model registry.

Each part is its row count, a digest of its rows (sorted, floats to 9 significant digits) and its
duplicate keys. Left out: what records *when* or *by which run* something was written (``ingested_at``,
``flow_run_id``, ``computed_at``, ``scored_at``, ...), Delta versions and the loader's
``lake._load_state`` (a rerun may take more commits to reach the same rows), MLflow runs (a killed
training leaves one) and the Prefect database. Two states with equal fingerprints hold the same rows,
the same registered versions with the same aliases and the same served features.

Run as a script (``python fingerprint.py <state dir>``, JSON on stdout) so the embedded PostgreSQL it
starts stops when it exits.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

VOLATILE = {
    "ingested_at",
    "last_ingested_at",
    "flow_run_id",
    "computed_at",
    "scored_at",
    "checked_at",
    "quarantined_at",
    "loaded_at",
    "created_ts",
    "backtested_at",
    "run_id",  # the MLflow run that made a version or a backtest: a killed training leaves another
}
SKIPPED_WAREHOUSE_TABLES = {"lake._load_state"}


@dataclass(frozen=True)
class Part:
    rows: int
    digest: str
    duplicate_keys: int = 0


def _canonical(value: object) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return ""
    if isinstance(value, (float, np.floating)):
        return f"{float(value):.9g}"
    if isinstance(value, pd.Timestamp):
        return value.tz_convert("UTC").isoformat() if value.tzinfo else value.isoformat()
    if isinstance(value, bytes):
        return value.hex()
    return str(value)


def part(frame: pd.DataFrame, keys: list[str] | tuple[str, ...] = ()) -> Part:
    """The rows of ``frame`` without volatile columns, in a canonical order, as a :class:`Part`."""
    frame = frame[[c for c in sorted(frame.columns) if c not in VOLATILE]]
    lines = sorted("\x1f".join(_canonical(v) for v in row) for row in frame.itertuples(index=False, name=None))
    digest = hashlib.sha256(("\x1e".join([",".join(frame.columns), *lines])).encode()).hexdigest()[:16]
    duplicates = int(frame.duplicated(list(keys)).sum()) if keys and len(frame) else 0
    return Part(len(frame), digest, duplicates)


def _delta(settings) -> dict[str, Part]:
    from sentinance import catalog, lake

    parts = {}
    for table in catalog.TABLES:
        path = table.path(settings)
        keys = table.keys
        if table is catalog.TRAINING_SETS:  # keyed by set; a row of a set is one instrument at one hour
            keys = [*keys, catalog.FORECASTER.entity_key, catalog.FORECASTER.timestamp]
        if lake.exists(path):
            parts[f"delta:{table.id}"] = part(lake.read(path), keys)
    return parts


def _warehouse(settings) -> dict[str, Part]:
    from sentinance import services

    parts = {}
    with services.connect(settings) as conn:
        names = conn.execute(
            "SELECT table_schema || '.' || table_name FROM information_schema.tables "
            "WHERE table_type = 'BASE TABLE' AND table_schema NOT IN ('pg_catalog', 'information_schema') "
            "ORDER BY 1"
        ).fetchall()
        for (name,) in names:
            if name in SKIPPED_WAREHOUSE_TABLES:
                continue
            cursor = conn.execute(f"SELECT * FROM {name}")
            frame = pd.DataFrame(cursor.fetchall(), columns=[c.name for c in cursor.description])
            keys = conn.execute(
                "SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid "
                "AND a.attnum = ANY(i.indkey) WHERE i.indrelid = %s::regclass AND i.indisprimary",
                [name],
            ).fetchall()
            parts[f"postgres:{name}"] = part(frame, [k for (k,) in keys])
    return parts


def _online_store(settings) -> dict[str, Part]:
    path = settings.feast_dir / "online_store.db"
    if not path.exists():
        return {}
    parts = {}
    with sqlite3.connect(path) as conn:
        for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY 1").fetchall():
            parts[f"feast:{name}"] = part(pd.read_sql_query(f'SELECT * FROM "{name}"', conn))
    return parts


def _registry(settings) -> dict[str, Part]:
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    from sentinance import services
    from sentinance.catalog import FORECASTER

    uri = services.mlflow_tracking_uri(settings)
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    try:
        model = client.get_registered_model(FORECASTER.name)
    except MlflowException:
        return {}
    aliases: dict[str, list[str]] = {}
    for alias, version in model.aliases.items():
        aliases.setdefault(str(version), []).append(alias)
    rows = []
    for version in client.search_model_versions(f"name = '{FORECASTER.name}'"):
        tags = client.get_run(version.run_id).data.tags if version.run_id else {}
        rows.append(
            {
                "version": str(version.version),
                "status": version.status,
                "aliases": ",".join(sorted(aliases.get(str(version.version), []))),
                "training_set_id": tags.get("training_set_id"),
                "gate": tags.get("gate"),
                "version_tags": ",".join(sorted(version.tags)),
            }
        )
    return {"mlflow:registry": part(pd.DataFrame(rows), ["version"])}


def fingerprint(home: Path) -> dict[str, Part]:
    """Every part of the state dir ``home``, by name (``delta:<layer>/<table>``, ``postgres:<schema>.<table>``,
    ``feast:<table>``, ``mlflow:registry``)."""
    from sentinance.settings import get_settings

    settings = get_settings(home=home)
    return {**_delta(settings), **_warehouse(settings), **_online_store(settings), **_registry(settings)}


def differences(reference: dict[str, Part], state: dict[str, Part]) -> list[str]:
    """What differs between two fingerprints, one line per part; duplicate keys anywhere are a difference too."""
    lines = []
    for name in sorted(set(reference) | set(state)):
        want, got = reference.get(name), state.get(name)
        if want is None or got is None:
            lines.append(f"{name}: {'missing' if got is None else 'not in the reference'}")
        elif want.digest != got.digest:
            lines.append(f"{name}: {got.rows} rows, the reference {want.rows}, other content")
        if got is not None and got.duplicate_keys:
            lines.append(f"{name}: {got.duplicate_keys} duplicate keys")
    return lines


def load(text: str) -> dict[str, Part]:
    return {name: Part(**value) for name, value in json.loads(text).items()}


if __name__ == "__main__":
    print(json.dumps({name: asdict(p) for name, p in fingerprint(Path(sys.argv[1])).items()}))
