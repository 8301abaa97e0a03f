"""Images too large to stylise in one pass, in overlapping tiles with blended borders.

Cutting an image into tiles and pasting the results back shows seams for two reasons: near a tile's
border the network sees padding instead of the real neighbourhood, and instance norm computes each
tile's own statistics, so every tile drifts in colour and contrast. The first is answered by
overlapping tiles whose outer margins are discarded and whose results are blended across the rest
of the overlap. The second by normalising every tile with the whole image's statistics, which are
computed tile by tile, one instance-norm layer at a time: each layer's statistics need the layers
before it already normalised with the whole image's statistics, so the tiles are run once per layer
up to that layer (about half a network pass per layer: several times the cost of one pass, in
exchange for memory bounded by one tile). A statistics-from-a-thumbnail shortcut is not used: instance
norm statistics depend on the image's scale, and on an H100 test the thumbnail's gave a result
nowhere near the whole image's.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from stylenet.common.errors import StylenetError
from stylenet.nets.transformer import InstanceNorm


class _Reached(Exception):
    """Stops a forward pass once the layer being measured has seen its input."""


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


def core_bounds(spans: list[tuple[int, int]], multiple: int) -> list[tuple[int, int]]:
    """Each tile's share of a partition of the length: boundaries in the middle of the overlaps, on
    the network's grid, so that every pixel is counted once and away from tile borders."""
    cuts = [(next_start + end) // 2 // multiple * multiple for (_, end), (next_start, _) in zip(spans, spans[1:])]
    starts, ends = [spans[0][0], *cuts], [*cuts, spans[-1][1]]
    return list(zip(starts, ends))


def edge_weights(length: int, overlap: int, blend_start: bool, blend_end: bool) -> torch.Tensor:
    """1 inside a tile; at a border shared with a neighbour, 0 over the outer quarter of the overlap
    (pixels whose receptive field reaches past the tile, so they are only context) and a linear ramp
    over the middle half, where the neighbour's ramp is its mirror image."""
    margin, ramp_length = overlap // 4, max(1, overlap - 2 * (overlap // 4))
    ramp = (torch.arange(ramp_length, dtype=torch.float32) + 0.5) / ramp_length
    edge = torch.cat([torch.zeros(margin), ramp])
    weights = torch.ones(length)
    if blend_start:
        weights[: len(edge)] = edge
    if blend_end:
        weights[length - len(edge) :] = edge.flip(0)
    return weights


def measure_statistics(
    network: Callable[[torch.Tensor], torch.Tensor],
    norm: InstanceNorm,
    image: torch.Tensor,
    rows: list[tuple[int, int]],
    columns: list[tuple[int, int]],
    multiple: int,
) -> None:
    """`norm`'s input statistics over the whole image, from each tile's core; sets norm.statistics."""
    total: torch.Tensor | None = None
    total_squares: torch.Tensor | None = None
    count = 0
    cores = [(span, core) for span, core in zip(rows, core_bounds(rows, multiple))]
    core_columns = [(span, core) for span, core in zip(columns, core_bounds(columns, multiple))]
    for (top, bottom), (core_top, core_bottom) in cores:
        for (left, right), (core_left, core_right) in core_columns:
            seen: list[torch.Tensor] = []

            def grab(_: nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
                seen.append(inputs[0])
                raise _Reached

            handle = norm.register_forward_pre_hook(grab)
            try:
                network(image[..., top:bottom, left:right])
            except _Reached:
                pass
            finally:
                handle.remove()
            features = seen[0].double()
            # The layer's resolution relative to the tile (after the network's own padding to its grid).
            scale_y = features.shape[-2] / (-(-(bottom - top) // multiple) * multiple)
            scale_x = features.shape[-1] / (-(-(right - left) // multiple) * multiple)
            y0, x0 = round((core_top - top) * scale_y), round((core_left - left) * scale_x)
            y1 = features.shape[-2] if bottom == rows[-1][1] else round((core_bottom - top) * scale_y)
            x1 = features.shape[-1] if right == columns[-1][1] else round((core_right - left) * scale_x)
            core = features[0, :, y0:y1, x0:x1]
            total = core.sum((1, 2)) if total is None else total + core.sum((1, 2))
            total_squares = (
                core.square().sum((1, 2)) if total_squares is None else total_squares + core.square().sum((1, 2))
            )
            count += core.shape[1] * core.shape[2]
    assert total is not None and total_squares is not None  # every tile has a core
    mean = total / count
    norm.statistics = (mean.float(), (total_squares / count - mean.square()).clamp_min(0).float())


def stylize_in_tiles(
    network: Callable[[torch.Tensor], torch.Tensor], model: nn.Module, image: torch.Tensor, tile: int, overlap: int
) -> torch.Tensor:
    """`network` (which runs `model`) over a (1, 3, H, W) image in tiles of at most `tile` pixels a side,
    normalised with the whole image's statistics; returns the (1, 3, H, W) result on the CPU in float32."""
    if not 0 <= overlap <= tile // 2:
        raise StylenetError(f"tile_overlap must be between 0 and half of tile_size ({tile}), got {overlap}")
    height, width = image.shape[-2:]
    multiple = getattr(model, "size_multiple", 1)
    rows, columns = tile_spans(height, tile, overlap, multiple), tile_spans(width, tile, overlap, multiple)
    norms = [module for module in model.modules() if isinstance(module, InstanceNorm)]
    try:
        for norm in norms:  # in forward order: each needs the ones before it settled
            measure_statistics(network, norm, image, rows, columns, multiple)
        result = torch.zeros(3, height, width)
        total = torch.zeros(height, width)
        for top, bottom in rows:
            for left, right in columns:
                styled = network(image[..., top:bottom, left:right])[0].float().cpu()
                weights = torch.outer(
                    edge_weights(bottom - top, overlap, top > 0, bottom < height),
                    edge_weights(right - left, overlap, left > 0, right < width),
                )
                result[:, top:bottom, left:right] += styled * weights
                total[top:bottom, left:right] += weights
    finally:
        for norm in norms:
            norm.statistics = None
    return (result / total).unsqueeze(0)
