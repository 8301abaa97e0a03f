"""The shift-equivariance term (loss.equivariance_weight): the picture of a photo moved by a few pixels should be
the picture moved by as many. A network that paints through stride-2 stages can draw a pattern locked to its own
pixel lattice (a 4 px grid for two stages), which a Gram matrix rewards as texture and which the real-time
network's enlargement makes visible at 100% (BENCHMARKS.md "The weave is the network's lattice"). A pattern on
the lattice does not move with the photo, so this term sees it; what the network draws from the photo's own detail
moves with it (a grating that follows a smooth ramp too: the term does not see that one).

Training paints each batch twice in one forward pass, the photos and the photos moved by (dy, dx) of 1-3 px (a
shift the lattice cannot absorb), and adds the weighted mean squared difference of the overlapping pictures,
away from the borders, where the moved photo's edge differs."""

from __future__ import annotations

import torch
import torch.nn.functional as F

MAX_SHIFT = 3  # shifts of 1-3 px: never a multiple of the 4 px lattice of two stride-2 stages
MARGIN = 8  # px of each picture's border left out of the comparison (at most an eighth of its side)


def lattice_shift(step: int) -> tuple[int, int]:
    """(dy, dx) for step `step`: every pair of 1..MAX_SHIFT in turn, a function of the step so that a resumed
    run takes the shifts an uninterrupted one would."""
    index = step % (MAX_SHIFT * MAX_SHIFT)
    return 1 + index // MAX_SHIFT, 1 + index % MAX_SHIFT


def moved(photos: torch.Tensor, shift: tuple[int, int]) -> torch.Tensor:
    """The photos moved up by dy and left by dx, the same size (the rows and columns that come in at the bottom
    and right are reflected): pixel (i, j) of the result is pixel (i + dy, j + dx) of the photo."""
    dy, dx = shift
    return F.pad(photos[..., dy:, dx:], (0, dx, 0, dy), mode="reflect")


def equivariance_loss(pictures: torch.Tensor, pictures_of_moved: torch.Tensor, shift: tuple[int, int]) -> torch.Tensor:
    """The mean squared difference between each picture and the picture of its moved photo, moved back, where
    both come from the same pixels of the photo and away from the borders."""
    dy, dx = shift
    height, width = pictures.shape[-2:]
    margin = min(MARGIN, height // 8, width // 8)
    if height - dy - 2 * margin < 1 or width - dx - 2 * margin < 1:
        raise ValueError(f"pictures of {height}x{width} px are too small to compare after a shift of {shift}")
    here = pictures[..., margin + dy : height - margin, margin + dx : width - margin]
    there = pictures_of_moved[..., margin : height - dy - margin, margin : width - dx - margin]
    return F.mse_loss(here.float(), there.float())
