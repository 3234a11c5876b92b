"""Benchmark: Feast's point-in-time retrieval of each model's training set, with the entity rows
uploaded as a DataFrame against read in place by a query on the mart.

On a state dir after one `lakehouse` run (``make run``, or ``sentinance run``), for the return
forecaster (one feature view) and the volatility model (two views, the forecaster's and its own):
the entity rows are the mart's complete labelled rows, retrieved twice with the model's feature
service, and the two results are checked equal. Prints rows, seconds and the ratio per model.
Why it matters: Feast's PostgreSQL offline store uploads a DataFrame into a fresh table without
planner statistics, and a multi-view join over it can fall into nested loops;
``sentinance.ml.training_set.build`` passes the query.

    SENTINANCE_HOME=.sentinance .venv/bin/python benchmarks/training_set.py
"""

from __future__ import annotations

import time

import pandas as pd

from sentinance.settings import configure, get_settings

settings = configure(get_settings())

from sentinance.catalog import MODELS
from sentinance.ml import feature_store


def timed(entity_df: pd.DataFrame | str, contract) -> tuple[pd.DataFrame, float]:
    started = time.perf_counter()
    frame = feature_store.historical_features(settings, entity_df, contract)
    return frame, time.perf_counter() - started


def main() -> None:
    print(f"state dir {settings.home}")
    for contract in MODELS:
        sql = (
            f"SELECT {contract.entity_key}, {contract.timestamp}, {contract.label} FROM {contract.mart} "
            f"WHERE is_complete AND {contract.label} IS NOT NULL"
        )
        uploaded, upload_seconds = timed(feature_store.query(settings, sql), contract)
        in_place, query_seconds = timed(sql, contract)
        columns = sorted(uploaded.columns)
        pd.testing.assert_frame_equal(uploaded[columns], in_place[columns], check_dtype=False)
        print(
            f"{contract.name}: {len(in_place)} rows, {len(contract.feature_views)} view(s): uploaded DataFrame "
            f"{upload_seconds:.1f} s, query in place {query_seconds:.1f} s, ratio {upload_seconds / query_seconds:.1f}"
        )


if __name__ == "__main__":
    main()
