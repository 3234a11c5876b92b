"""The forecaster's behaviour, checked on a model trained on the synthetic mart (its only predictive
input is the mean-reverting basis), after Made-With-ML's behavioural tests:

- minimum functionality: it learns a signal that is plainly there, and answers finite numbers;
- invariance: what must not matter does not (the rest of the batch, the price level);
- direction: what must matter moves the forecast the right way (a richer venue reverts down).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sentinance.catalog import FORECASTER
from sentinance.ml import evaluation, train
from sentinance.ml.model import to_sequences

PARAMS = train.TrainParams(sequence_length=8, max_epochs=8, seed=7)


@pytest.fixture(scope="module")
def fitted(synthetic_training_set: pd.DataFrame) -> train.FoldFit:
    """The newest walk-forward fold's model and its out-of-sample test rows."""
    windows = evaluation.walk_forward(
        synthetic_training_set[FORECASTER.timestamp],
        n_folds=1,
        test_fraction=0.2,
        validation_fraction=0.15,
        embargo=PARAMS.embargo,
    )
    return train.fit_fold(synthetic_training_set, windows[-1], PARAMS)


def _forecast(fitted: train.FoldFit, frame: pd.DataFrame) -> np.ndarray:
    return fitted.model.predict(to_sequences(frame, PARAMS.sequence_length))


def test_minimum_functionality_it_beats_persistence_where_the_signal_is_plain(fitted: train.FoldFit) -> None:
    test = fitted.test
    lstm = np.mean(np.abs(test["lstm"] - test["actual"]))
    persistence = np.mean(np.abs(test["persistence"] - test["actual"]))
    assert np.isfinite(test["lstm"]).all()
    assert lstm < 0.9 * persistence, (lstm, persistence)


def test_invariance_a_forecast_does_not_depend_on_the_rest_of_the_batch(fitted: train.FoldFit) -> None:
    rows = fitted.test.head(32)
    together = _forecast(fitted, rows)
    alone = np.concatenate([_forecast(fitted, rows.iloc[[i]]) for i in range(len(rows))])
    reversed_ = _forecast(fitted, rows.iloc[::-1])[::-1]
    np.testing.assert_allclose(together, alone, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(together, reversed_, rtol=1e-5, atol=1e-7)


def test_invariance_the_price_level_is_not_an_input(fitted: train.FoldFit) -> None:
    rows = fitted.test.head(32)
    repriced = rows.assign(close=rows["close"] * 1000)  # the same market quoted in another unit
    np.testing.assert_array_equal(_forecast(fitted, rows), _forecast(fitted, repriced))


def test_direction_a_richer_venue_is_forecast_to_revert_down(fitted: train.FoldFit) -> None:
    rows = fitted.test.head(64)
    lag0 = "basis_bps_lag_0"
    cheap, rich = rows.assign(**{lag0: rows[lag0] - 40}), rows.assign(**{lag0: rows[lag0] + 40})
    lower = _forecast(fitted, rich) < _forecast(fitted, cheap)
    assert lower.mean() > 0.9, lower.mean()
