"""The promotion gate: a new version becomes champion only if it beats persistence and the
current champion on the same out-of-sample rows.

The rows are the newest walk-forward fold's test window, which the new version never saw.
The current champion is scored on those of them after its own training window ended
(``train_end`` on its run), so its errors are out-of-sample too. "Beats" means a lower mean
loss and both one-sided tests — Diebold–Mariano (HLN) and the paired t-test on the mean
losses per period — significant at ``alpha`` (:class:`sentinance.ml.evaluation.Comparison`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from sentinance.ml import registry
from sentinance.ml.evaluation import Comparison, compare, loss
from sentinance.ml.model import to_sequences
from sentinance.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GateDecision:
    promoted: bool
    reason: str
    vs_persistence: Comparison
    vs_champion: Comparison | None
    champion_version: str | None

    def metrics(self) -> dict[str, float]:
        values = {"gate_promoted": float(self.promoted), **self.vs_persistence.as_dict("gate_vs_persistence_")}
        if self.vs_champion is not None:
            values.update(self.vs_champion.as_dict("gate_vs_champion_"))
        return values

    def report(self) -> dict:
        return {
            "promoted": self.promoted,
            "reason": self.reason,
            "champion_version": self.champion_version,
            "vs_persistence": self.vs_persistence.as_dict(),
            "vs_champion": None if self.vs_champion is None else self.vs_champion.as_dict(),
        }


def _champion_predictions(settings: Settings, holdout: pd.DataFrame) -> tuple[str, pd.Series, np.ndarray] | str:
    """The champion's version, the holdout rows it never saw, and its forecasts for them —
    or why it cannot be compared."""
    champion = registry.alias_version(settings, registry.CHAMPION)
    if champion is None:
        return "no champion yet"
    params = registry.client(settings).get_run(champion.run_id).data.params
    unseen = holdout["event_timestamp"] > pd.Timestamp(params["train_end"])
    if not unseen.any():
        return f"champion v{champion.version} was trained on every holdout row"
    model = registry.load_model(champion)
    meta = model.metadata.metadata or {}
    try:
        x = to_sequences(holdout[unseen], int(meta["sequence_length"]), tuple(meta["features"]))
    except KeyError as missing:
        return f"champion v{champion.version} needs inputs this training set lacks ({missing})"
    return str(champion.version), unseen, np.asarray(model.predict(x), np.float64).reshape(-1)


def decide(settings: Settings, holdout: pd.DataFrame, *, alpha: float, loss_kind: str) -> GateDecision:
    """Gate the new version on ``holdout`` (the newest fold's test rows with lag columns and the
    columns ``actual``, ``lstm`` and ``persistence``)."""
    times, actual = holdout["event_timestamp"], holdout["actual"]
    new_loss = loss(holdout["lstm"], actual, loss_kind)
    vs_persistence = compare(new_loss, loss(holdout["persistence"], actual, loss_kind), times, alpha=alpha)
    champion = _champion_predictions(settings, holdout)
    vs_champion, champion_version = None, None
    if isinstance(champion, str):
        log.info("gate: the champion is not compared (%s)", champion)
        note = f"{champion}: gated on persistence only"
    else:
        champion_version, unseen, predicted = champion
        vs_champion = compare(
            new_loss[unseen.to_numpy()], loss(predicted, actual[unseen], loss_kind), times[unseen], alpha=alpha
        )
        note = f"vs champion v{champion_version}: {'better' if vs_champion.a_better else 'not better'}"
    promoted = vs_persistence.a_better and (vs_champion is None or vs_champion.a_better)
    reason = (
        f"vs persistence: {'better' if vs_persistence.a_better else 'not better'} "
        f"(DM p={vs_persistence.dm_pvalue:.3g}, t p={vs_persistence.t_pvalue:.3g}, "
        f"{vs_persistence.periods} periods); {note}"
    )
    return GateDecision(promoted, reason, vs_persistence, vs_champion, champion_version)
