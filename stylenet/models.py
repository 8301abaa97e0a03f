"""The transform network of Johnson et al. 2016 ("Perceptual Losses for Real-Time Style Transfer").

Variants differ only in constructor arguments, which come from conf/model/<variant>.yaml:
- separable: depthwise-separable convolutions (Howard et al. 2017, MobileNets) instead of full ones;
- half_resolution: the "downsample/upsample trick" of singlasahil14/style-transfer ("Practical
  techniques for getting style transfer to work"): the input is halved with bilinear
  interpolation, the network runs at half resolution, and a last nearest-upsample + 3x3
  convolution returns to full resolution (style transfer and super-resolution in one network);
- width_multiplier and num_residual_blocks: thinner or shallower networks.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

NORMS = ("instance", "batch", "none")
MIN_SIZE = 8  # the 3x3 reflection padding at the lowest resolution needs pixels to reflect


class InstanceNorm(nn.InstanceNorm2d):
    """Instance norm whose statistics can be set from outside: tiles of a large image are normalised
    with the statistics of the whole image, so that they do not each drift in colour and contrast
    (see stylenet.tiling). The parameters and state dict are nn.InstanceNorm2d's."""

    def __init__(self, channels: int) -> None:
        super().__init__(channels, affine=True)
        self.statistics: tuple[torch.Tensor, torch.Tensor] | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.statistics is not None:
            mean, var = (value.to(x.dtype) for value in self.statistics)
            return F.batch_norm(x, mean, var, self.weight, self.bias, training=False, eps=self.eps)
        return super().forward(x)


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "instance":
        # Ulyanov et al. 2016: instance norm is what makes feed-forward stylisation look right.
        return InstanceNorm(channels)
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    return nn.Identity()


def conv(in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, separable: bool = False) -> nn.Sequential:
    """Reflection padding (no dark borders) + a full or depthwise-separable convolution."""
    layers: list[nn.Module] = [nn.ReflectionPad2d(kernel_size // 2)]
    if separable:
        layers += [
            nn.Conv2d(in_channels, in_channels, kernel_size, stride, groups=in_channels, bias=False),
            nn.Conv2d(in_channels, out_channels, 1),
        ]
    else:
        layers.append(nn.Conv2d(in_channels, out_channels, kernel_size, stride))
    return nn.Sequential(*layers)


class ConvLayer(nn.Sequential):
    """Convolution + norm + ReLU."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 norm: str = "instance", separable: bool = False) -> None:
        super().__init__(conv(in_channels, out_channels, kernel_size, stride, separable),
                         _norm(norm, out_channels), nn.ReLU(inplace=True))


class ResidualBlock(nn.Module):
    """Two 3x3 convolutions with an identity shortcut, no ReLU after the sum (Gross & Wilber 2016)."""

    def __init__(self, channels: int, norm: str, separable: bool) -> None:
        super().__init__()
        self.body = nn.Sequential(
            ConvLayer(channels, channels, 3, norm=norm, separable=separable),
            conv(channels, channels, 3, separable=separable),
            _norm(norm, channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


def replicate_pad(x: torch.Tensor, pad: tuple[int, int, int, int]) -> torch.Tensor:
    """F.pad(x, (left, right, top, bottom), mode="replicate").

    Under torch.compile it is written as an index gather: the compiled backward of replication_pad2d
    fails on torch 2.15 (a stride mismatch in its meta kernel); eager mode keeps the native kernel.
    """
    if not torch.compiler.is_compiling():
        return F.pad(x, pad, mode="replicate")
    left, right, top, bottom = pad
    height, width = x.shape[-2:]
    rows = torch.arange(-top, height + bottom, device=x.device).clamp(0, height - 1)
    columns = torch.arange(-left, width + right, device=x.device).clamp(0, width - 1)
    return x.index_select(-2, rows).index_select(-1, columns)


class FusedUpsampleConv(nn.Module):
    """Nearest x2 upsampling + reflection-padded 3x3 convolution, computed at the low resolution.

    The same function as nn.Upsample(2) -> ReflectionPad2d(1) -> Conv2d(3x3, groups), exactly, and
    the same parameters: each of the four output phases is a 3x3 convolution of the low-resolution
    input whose taps are sums of the original kernel's, then a pixel shuffle interleaves the phases.
    (Reflecting the upsampled image at its border equals replicating the low-resolution one.)
    It never builds the upsampled tensor, whose padding and convolution at full resolution were the
    largest costs of the fast variant on a CPU (BENCHMARKS.md).
    """

    # PHASE_TAPS[phase, low-resolution tap (-1, 0, +1), original tap (0, 1, 2)]
    PHASE_TAPS = torch.tensor([[[1.0, 0, 0], [0, 1, 1], [0, 0, 0]],
                               [[0.0, 0, 0], [1, 1, 0], [0, 0, 1]]])

    def __init__(self, in_channels: int, out_channels: int, groups: int = 1, bias: bool = True) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 3, groups=groups, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        taps = self.PHASE_TAPS.to(self.conv.weight)
        weight = torch.einsum("pak,qbl,oikl->opqiab", taps, taps, self.conv.weight)
        weight = weight.reshape(-1, *self.conv.weight.shape[1:])  # channel o*4 + row phase*2 + column phase
        bias = None if self.conv.bias is None else self.conv.bias.repeat_interleave(4)
        padded = replicate_pad(x, (1, 1, 1, 1))
        return F.pixel_shuffle(F.conv2d(padded, weight, bias, groups=self.conv.groups), 2)


class UpsampleConv(nn.Sequential):
    """Nearest-neighbour x2 upsampling then a convolution (no checkerboard artefacts, Odena et al.
    2016), + norm + ReLU."""

    def __init__(self, in_channels: int, out_channels: int, norm: str, separable: bool) -> None:
        if separable:
            layers = [FusedUpsampleConv(in_channels, in_channels, groups=in_channels, bias=False),
                      nn.Conv2d(in_channels, out_channels, 1)]
        else:
            layers = [FusedUpsampleConv(in_channels, out_channels)]
        super().__init__(*layers, _norm(norm, out_channels), nn.ReLU(inplace=True))


class TransformerNet(nn.Module):
    """Image in, stylised image of exactly the same size out; float RGB in [0, 1], NCHW."""

    def __init__(self, channels: Sequence[int] = (32, 64, 128), num_residual_blocks: int = 5,
                 norm: str = "instance", separable: bool = False, half_resolution: bool = False,
                 width_multiplier: float = 1.0) -> None:
        super().__init__()
        if len(channels) != 3:
            raise ValueError(f"channels needs 3 widths (full, 1/2 and 1/4 resolution), got {list(channels)}")
        if norm not in NORMS:
            raise ValueError(f"norm must be one of {', '.join(NORMS)}, got '{norm}'")
        if width_multiplier <= 0:
            raise ValueError(f"width_multiplier must be positive, got {width_multiplier}")
        full, half, quarter = (max(1, round(int(c) * width_multiplier)) for c in channels)
        self.half_resolution = half_resolution
        self.encoder = nn.Sequential(
            ConvLayer(3, full, 9, norm=norm, separable=separable),
            ConvLayer(full, half, 3, stride=2, norm=norm, separable=separable),
            ConvLayer(half, quarter, 3, stride=2, norm=norm, separable=separable),
        )
        self.residuals = nn.Sequential(*(ResidualBlock(quarter, norm, separable) for _ in range(num_residual_blocks)))
        decoder: list[nn.Module] = [UpsampleConv(quarter, half, norm, separable), UpsampleConv(half, full, norm, separable)]
        if half_resolution:
            # The super-resolution ending: back to full resolution, one small 3x3 convolution there.
            decoder.append(FusedUpsampleConv(full, 3))
        else:
            decoder.append(conv(full, 3, 9, separable=separable))
        self.decoder = nn.Sequential(*decoder)
        # Stride-2 stages (and the halved input) need sizes divisible by this.
        self.size_multiple = 8 if half_resolution else 4

    def padding(self, length: int) -> int:
        """Pixels to add so that `length` suits the stride-2 stages (written with a remainder rather than
        a ceiling division so that ONNX export keeps it symbolic for any input size)."""
        multiple = self.size_multiple
        return max(MIN_SIZE * multiple // 4 - length, (multiple - length % multiple) % multiple)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        height, width = image.shape[-2:]
        x = replicate_pad(image, (0, self.padding(width), 0, self.padding(height)))
        if self.half_resolution:
            x = F.interpolate(x, scale_factor=0.5, mode="bilinear", align_corners=False, antialias=True)
        x = self.decoder(self.residuals(self.encoder(x)))
        # A sigmoid keeps the output a valid image while passing gradients everywhere (a clamp would not).
        return torch.sigmoid(x[..., :height, :width])
