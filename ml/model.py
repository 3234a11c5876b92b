"""The LSTM next-period log-return forecaster, with its feature scaling inside the module.

The module takes raw feature sequences ``(batch, seq_len, n_features)`` (oldest step
first) and returns raw next-period log returns ``(batch,)``: the mean/std of the inputs
and of the target are buffers fitted on the training fold only, so the logged model
needs no separate preprocessing.
"""

from __future__ import annotations

import random

import numpy as np
import pandas as pd
import torch
from torch import nn

from sentinance.catalog import FORECASTER


def set_seed(seed: int) -> None:
    """Seed Python, NumPy and torch so training repeats bit for bit on CPU (tested by reproduce)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def to_sequences(
    frame: pd.DataFrame, sequence_length: int, features: tuple[str, ...] = FORECASTER.features
) -> np.ndarray:
    """Reshape a frame of lag columns to ``(rows, sequence_length, len(features))`` float32."""
    missing = [c for f in features for c in FORECASTER.lag_columns(f, sequence_length) if c not in frame.columns]
    if missing:
        raise KeyError(f"lag columns missing for sequence_length={sequence_length}: {missing[:4]}...")
    stacked = np.stack(
        [frame[FORECASTER.lag_columns(f, sequence_length)].to_numpy(dtype=np.float32) for f in features], axis=-1
    )
    return np.ascontiguousarray(stacked)  # the exported (pt2) model guards on C-contiguous strides


class LSTMForecaster(nn.Module):
    """Scale -> LSTM -> linear head on the last step -> unscale."""

    feature_mean: torch.Tensor
    feature_std: torch.Tensor
    target_mean: torch.Tensor
    target_std: torch.Tensor

    def __init__(
        self,
        sequence_length: int,
        features: tuple[str, ...] = FORECASTER.features,
        hidden_size: int = 32,
        num_layers: int = 1,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.sequence_length = sequence_length
        self.features = tuple(features)
        n_features = len(self.features)
        self.lstm = nn.LSTM(
            n_features,
            hidden_size,
            num_layers=num_layers,
            batch_first=True,
            dropout=dropout if num_layers > 1 else 0.0,
        )
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(hidden_size, 1)
        self.register_buffer("feature_mean", torch.zeros(n_features))
        self.register_buffer("feature_std", torch.ones(n_features))
        self.register_buffer("target_mean", torch.zeros(()))
        self.register_buffer("target_std", torch.ones(()))

    @torch.no_grad()
    def fit_scaling(self, x: np.ndarray, y: np.ndarray) -> None:
        """Fit the input and target standardization on the training fold."""
        flat = torch.as_tensor(x, dtype=torch.float32).reshape(-1, x.shape[-1])
        self.feature_mean.copy_(flat.mean(dim=0))
        self.feature_std.copy_(flat.std(dim=0).clamp_min(1e-8))
        target = torch.as_tensor(y, dtype=torch.float32)
        self.target_mean.copy_(target.mean())
        self.target_std.copy_(target.std().clamp_min(1e-8))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = (x - self.feature_mean) / self.feature_std
        out, _ = self.lstm(z)
        scaled = self.head(self.dropout(out[:, -1, :])).squeeze(-1)
        return scaled * self.target_std + self.target_mean

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Next-period log returns for raw sequences, in eval mode."""
        self.eval()
        with torch.no_grad():
            return self(torch.as_tensor(x, dtype=torch.float32)).numpy()
