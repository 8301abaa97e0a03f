"""Images too large to stylise in one pass, in overlapping tiles with blended borders.

Cutting an image into tiles and pasting the results back shows seams for two reasons: near a tile's
border the network sees reflected padding instead of the real neighbourhood, and instance norm
computes each tile's own statistics, so every tile drifts in colour and contrast. The first is
answered by overlapping tiles whose results are blended with linear ramps across the overlap; the
second by normalising every tile with statistics taken once from the whole image, scaled down to
one tile's size (models.InstanceNorm).
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from stylenet.errors import StylenetError
from stylenet.models import InstanceNorm


def tile_spans(length: int, tile: int, overlap: int, multiple: int) -> list[tuple[int, int]]:
    """(start, end) of tiles covering `length` pixels, neighbours sharing at least `overlap` pixels.
    Starts are multiples of `multiple` so that every tile sees the network's stride-2 (and half-
    resolution) sampling grid exactly where the whole image does; the last tile may be up to
    multiple - 1 pixels longer than `tile`."""
    if length <= tile:
        return [(0, length)]
    step = max(multiple, (tile - overlap) // multiple * multiple)
    last = (length - tile) // multiple * multiple
    return [(start, min(start + tile, length)) for start in range(0, last, step)] + [(last, length)]


def edge_weights(length: int, overlap: int, blend_start: bool, blend_end: bool) -> torch.Tensor:
    """1 inside a tile; at a border shared with a neighbour, 0 over the outer quarter of the overlap
    (pixels whose receptive field reaches past the tile, so they are only context) and a linear ramp
    over the middle half, where the neighbour's ramp is its mirror image."""
    margin, ramp_length = overlap // 4, max(1, overlap - 2 * (overlap // 4))
    ramp = (torch.arange(ramp_length, dtype=torch.float32) + 0.5) / ramp_length
    edge = torch.cat([torch.zeros(margin), ramp])
    weights = torch.ones(length)
    if blend_start:
        weights[:len(edge)] = edge
    if blend_end:
        weights[length - len(edge):] = edge.flip(0)
    return weights


def stylize_in_tiles(network: Callable[[torch.Tensor], torch.Tensor], model: nn.Module, image: torch.Tensor,
                     tile: int, overlap: int, statistics_size: int | None = None) -> torch.Tensor:
    """`network` (which runs `model`) over a (1, 3, H, W) image in tiles of at most `tile` pixels a side;
    returns the (1, 3, H, W) result on the CPU in float32. The instance-norm statistics come from the
    whole image scaled down to `statistics_size` pixels on its longer side (default: `tile`): exact
    where the image is no larger, an approximation above (a network sees a downscaled image's
    statistics as slightly different ones)."""
    if not 0 <= overlap <= tile // 2:
        raise StylenetError(f"tile_overlap must be between 0 and half of tile_size ({tile}), got {overlap}")
    height, width = image.shape[-2:]
    norms = [module for module in model.modules() if isinstance(module, InstanceNorm)]
    scale = (statistics_size or tile) / max(height, width)
    overview = F.interpolate(image, scale_factor=scale, mode="area") if scale < 1 else image
    for norm in norms:
        norm.recording = True
    try:
        network(overview)  # records each layer's statistics of the whole image
        result = torch.zeros(3, height, width)
        total = torch.zeros(height, width)
        multiple = getattr(model, "size_multiple", 1)
        for top, bottom in tile_spans(height, tile, overlap, multiple):
            for left, right in tile_spans(width, tile, overlap, multiple):
                styled = network(image[..., top:bottom, left:right])[0].float().cpu()
                weights = torch.outer(edge_weights(bottom - top, overlap, top > 0, bottom < height),
                                      edge_weights(right - left, overlap, left > 0, right < width))
                result[:, top:bottom, left:right] += styled * weights
                total[top:bottom, left:right] += weights
    finally:
        for norm in norms:
            norm.recording, norm.statistics = False, None
    return (result / total).unsqueeze(0)
