"""The transform network of Johnson et al. 2016 ("Perceptual Losses for Real-Time Style Transfer").

Variants differ only in constructor arguments, which come from conf/model/<variant>.yaml.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

NORMS = ("instance", "batch", "none")

# Two stride-2 convolutions: the body works at 1/4 resolution, so sizes are padded to a multiple
# of 4; at least 8 px so that the 3x3 reflection padding at 1/4 resolution has pixels to reflect.
SIZE_MULTIPLE = 4
MIN_SIZE = 8


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "instance":
        # Ulyanov et al. 2016: instance norm is what makes feed-forward stylisation look right.
        return nn.InstanceNorm2d(channels, affine=True)
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    return nn.Identity()


class ConvLayer(nn.Sequential):
    """Reflection padding + convolution (+ norm + ReLU): reflection avoids dark borders."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 norm: str = "instance", activation: bool = True) -> None:
        layers: list[nn.Module] = [
            nn.ReflectionPad2d(kernel_size // 2),
            nn.Conv2d(in_channels, out_channels, kernel_size, stride),
        ]
        if activation:
            layers += [_norm(norm, out_channels), nn.ReLU(inplace=True)]
        super().__init__(*layers)


class ResidualBlock(nn.Module):
    """Two 3x3 convolutions with an identity shortcut, no ReLU after the sum (Gross & Wilber 2016)."""

    def __init__(self, channels: int, norm: str) -> None:
        super().__init__()
        self.body = nn.Sequential(
            ConvLayer(channels, channels, 3, norm=norm),
            nn.ReflectionPad2d(1),
            nn.Conv2d(channels, channels, 3),
            _norm(norm, channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class UpsampleConv(nn.Sequential):
    """Nearest-neighbour x2 upsampling then a convolution: no checkerboard artefacts (Odena et al. 2016)."""

    def __init__(self, in_channels: int, out_channels: int, norm: str) -> None:
        super().__init__(nn.Upsample(scale_factor=2, mode="nearest"), ConvLayer(in_channels, out_channels, 3, norm=norm))


class TransformerNet(nn.Module):
    """Image in, stylised image of exactly the same size out; float RGB in [0, 1], NCHW."""

    def __init__(self, channels: Sequence[int] = (32, 64, 128), num_residual_blocks: int = 5,
                 norm: str = "instance") -> None:
        super().__init__()
        if len(channels) != 3:
            raise ValueError(f"channels needs 3 widths (full, 1/2 and 1/4 resolution), got {list(channels)}")
        if norm not in NORMS:
            raise ValueError(f"norm must be one of {', '.join(NORMS)}, got '{norm}'")
        full, half, quarter = (int(c) for c in channels)
        self.encoder = nn.Sequential(
            ConvLayer(3, full, 9, norm=norm),
            ConvLayer(full, half, 3, stride=2, norm=norm),
            ConvLayer(half, quarter, 3, stride=2, norm=norm),
        )
        self.residuals = nn.Sequential(*(ResidualBlock(quarter, norm) for _ in range(num_residual_blocks)))
        self.decoder = nn.Sequential(
            UpsampleConv(quarter, half, norm),
            UpsampleConv(half, full, norm),
            ConvLayer(full, 3, 9, activation=False),
        )

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        height, width = image.shape[-2:]
        padded_height = max(MIN_SIZE, -(-height // SIZE_MULTIPLE) * SIZE_MULTIPLE)
        padded_width = max(MIN_SIZE, -(-width // SIZE_MULTIPLE) * SIZE_MULTIPLE)
        x = F.pad(image, (0, padded_width - width, 0, padded_height - height), mode="replicate")
        x = self.decoder(self.residuals(self.encoder(x)))
        # A sigmoid keeps the output a valid image while passing gradients everywhere (a clamp would not).
        return torch.sigmoid(x[..., :height, :width])
