"""TensorBoard logging: loss scalars under stable tags, preview grids of fixed photos, hyper-parameters."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.tensorboard import SummaryWriter
from torch.utils.tensorboard.summary import hparams

from stylenet.common.images import image_grid, save_image


class RunLog:
    """Everything a run writes for people to look at: TensorBoard events and preview PNGs."""

    def __init__(self, run_dir: Path, enabled: bool = True) -> None:
        """enabled=False (the other ranks of a distributed run) writes nothing at all."""
        self.run_dir, self.enabled = Path(run_dir), enabled
        self.writer = SummaryWriter(log_dir=str(self.run_dir / "tensorboard")) if enabled else None

    def losses(self, losses: dict[str, float], step: int) -> None:
        """Tags: loss/total, loss/content, loss/style, loss/style/<layer>, loss/tv."""
        if self.writer is None:
            return
        for name, value in losses.items():
            self.writer.add_scalar(f"loss/{name}", value, step)

    def scalar(self, tag: str, value: float, step: int) -> None:
        if self.writer is not None:
            self.writer.add_scalar(tag, value, step)

    def image(self, tag: str, image: torch.Tensor, step: int) -> None:
        if self.writer is not None:
            self.writer.add_image(tag, image, step)

    def hparams(
        self, hyperparameters: dict[str, Any], final_losses: dict[str, float], images_per_sec: float, step: int
    ) -> None:
        """The HParams tab: this run's settings beside its final metrics (tags final/*, logged in this run)."""
        if self.writer is None or self.writer.file_writer is None:
            return
        metrics = {f"final/{name}": value for name, value in final_losses.items() if "/" not in name}
        metrics["final/images_per_sec"] = images_per_sec
        experiment, session_start, session_end = hparams(hyperparameters, metrics)
        for summary in (experiment, session_start, session_end):
            self.writer.file_writer.add_summary(summary, step)
        for tag, value in metrics.items():
            self.writer.add_scalar(tag, value, step)

    @torch.no_grad()
    def preview(self, model: nn.Module, photos: torch.Tensor, step: int, styles: torch.Tensor | None = None) -> None:
        """One row per photo, content | output (content | one output per row of style weights `styles`,
        for a network of several styles); logged as image 'preview' and saved as previews/step_N.png."""
        if self.writer is None:
            return
        with evaluating(model):
            outputs = [model(photos).float()] if styles is None else [model(photos, w).float() for w in styles]
        rows = torch.stack([photos.float(), *outputs], dim=1)
        grid = image_grid(rows.flatten(0, 1).cpu(), columns=rows.shape[1])
        self.writer.add_image("preview", grid, step)
        save_image(grid, self.run_dir / "previews" / f"step_{step:07d}.png")

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


@contextmanager
def evaluating(model: nn.Module) -> Iterator[None]:
    """A look at the network's outputs in the middle of training: eval mode and no autograd, then the mode it
    was in."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        model.train(was_training)
