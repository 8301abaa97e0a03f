"""Held-out losses of a trained network: the measure of quality shared by the comparison scripts."""

from __future__ import annotations

import torch
from torch import nn

from stylenet.losses import PerceptualLoss


@torch.no_grad()
def heldout_losses(model: nn.Module, loss_fn: PerceptualLoss, photos: torch.Tensor, batch_size: int = 4) -> dict[str, float]:
    """Every loss term of the model's outputs on `photos` (float NCHW in [0, 1]), averaged per photo."""
    model.eval()
    sums: dict[str, float] = {}
    for start in range(0, len(photos), batch_size):
        batch = photos[start : start + batch_size]
        for name, value in loss_fn(model(batch), batch).items():
            sums[name] = sums.get(name, 0.0) + float(value) * len(batch)
    return {name: total / len(photos) for name, total in sums.items()}
