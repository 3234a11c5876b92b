"""Detections scored against the simulator's labelled episodes: precision, recall and F1 per detector.

An anomaly matches a labelled episode of its own kind (``detector`` == ``kind``) on the same
exchange and symbol when their windows [start_time, end_time] overlap. Precision = anomalies
matching an episode / anomalies; recall = episodes matched / episodes.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd


@dataclass(frozen=True)
class DetectorScore:
    detector: str
    anomalies: int
    true_positives: int  # anomalies that match an episode
    episodes: int
    episodes_found: int  # episodes matched by at least one anomaly
    precision: float
    recall: float
    f1: float


def score_detections(anomalies: pd.DataFrame, labels: pd.DataFrame, detectors: list[str]) -> list[DetectorScore]:
    """One score per detector, ``anomalies`` (catalog.ANOMALIES) against ``labels`` (catalog.SIMULATOR_LABELS)."""
    scores = []
    for detector in detectors:
        found = anomalies[anomalies["detector"] == detector].reset_index(drop=True)
        truth = labels[labels["kind"] == detector].reset_index(drop=True)
        pairs = found.reset_index(names="a").merge(truth.reset_index(names="e"), on=["exchange", "symbol"])
        pairs = pairs[(pairs["start_time_x"] <= pairs["end_time_y"]) & (pairs["end_time_x"] >= pairs["start_time_y"])]
        hits, matched = pairs["a"].nunique(), pairs["e"].nunique()
        precision = hits / len(found) if len(found) else 0.0
        recall = matched / len(truth) if len(truth) else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        scores.append(DetectorScore(detector, len(found), hits, len(truth), matched, precision, recall, f1))
    return scores
