"""Measures of a trained network's quality that the evaluation and the comparison scripts share: its
loss on held-out photos, and how many optimisation iterations that loss is worth (Johnson et al.)."""

from __future__ import annotations

import statistics

import torch
from torch import nn

from stylenet.losses import PerceptualLoss

TERMS = ("content", "style", "tv", "total")


@torch.no_grad()
def heldout_losses(model: nn.Module, loss_fn: PerceptualLoss, photos: torch.Tensor, batch_size: int = 4,
                   style: torch.Tensor | None = None) -> dict[str, float]:
    """Every loss term of the model's outputs on `photos` (float NCHW in [0, 1]), averaged per photo;
    `style`: the weights of the style to run a network of several styles with."""
    model.eval()
    sums: dict[str, float] = {}
    for start in range(0, len(photos), batch_size):
        batch = photos[start : start + batch_size]
        output = model(batch) if style is None else model(batch, style)
        for name, value in loss_fn(output, batch).items():
            sums[name] = sums.get(name, 0.0) + float(value) * len(batch)
    return {name: total / len(photos) for name, total in sums.items()}


def equivalent_iterations(history: list[dict[str, float]], network_total: float) -> int | None:
    """The first iteration at which the optimisation's total loss is at or below the network's."""
    return next((iteration for iteration, losses in enumerate(history) if losses["total"] <= network_total), None)


def report(rows: dict[str, dict[str, float]], seconds: dict[str, float], equivalents: dict[str, list[int | None]],
           iterations: list[int], header: str) -> str:
    lines = [header, "", "| method | " + " | ".join(TERMS) + " | s/image |", "|" + " --- |" * (len(TERMS) + 2)]
    for name, losses in rows.items():
        lines.append(f"| {name} | " + " | ".join(f"{losses[term]:.4g}" for term in TERMS) + f" | {seconds[name]:.3f} |")
    last = max(iterations)
    lines.append("")
    for label, found in equivalents.items():
        reached = [value for value in found if value is not None]
        per_photo = ", ".join(str(value) if value is not None else f">{last}" for value in found)
        whose = "the network's" if label == "network" else f"{label}'s"
        if len(reached) == len(found):
            summary = f"{whose[0].upper()}{whose[1:]} loss equals L-BFGS after **{statistics.median(reached):g}** iterations (median)"
        else:
            summary = f"On {len(found) - len(reached)} of {len(found)} photos L-BFGS did not reach {whose} loss in {last} iterations"
        lines.append(f"{summary}; per photo: {per_photo} (0: the unchanged photo already scores as well).")
    return "\n".join(lines)
