"""TensorBoard logging: loss scalars under stable tags, and preview grids of fixed photos."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from torch.utils.tensorboard import SummaryWriter
from torchvision.utils import make_grid

from stylenet.images import save_image


class RunLog:
    """Everything a run writes for people to look at: TensorBoard events and preview PNGs."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = Path(run_dir)
        self.writer = SummaryWriter(log_dir=str(self.run_dir / "tensorboard"))

    def losses(self, losses: dict[str, float], step: int) -> None:
        """Tags: loss/total, loss/content, loss/style, loss/style/<layer>, loss/tv."""
        for name, value in losses.items():
            self.writer.add_scalar(f"loss/{name}", value, step)

    def scalar(self, tag: str, value: float, step: int) -> None:
        self.writer.add_scalar(tag, value, step)

    @torch.no_grad()
    def preview(self, model: nn.Module, photos: torch.Tensor, step: int) -> None:
        """One row per photo, content | output; logged as image 'preview' and saved as previews/step_N.png."""
        was_training = model.training
        model.eval()
        outputs = model(photos).float()
        model.train(was_training)
        pairs = torch.stack([photos.float(), outputs], dim=1).flatten(0, 1)
        grid = make_grid(pairs.cpu(), nrow=2, padding=2, pad_value=1.0)
        self.writer.add_image("preview", grid, step)
        save_image(grid, self.run_dir / "previews" / f"step_{step:07d}.png")

    def close(self) -> None:
        self.writer.close()
