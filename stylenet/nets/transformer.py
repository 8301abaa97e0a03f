"""The transform network of Johnson et al. 2016 ("Perceptual Losses for Real-Time Style Transfer").

Variants differ only in constructor arguments, which come from conf/model/<variant>.yaml:
- separable: depthwise-separable convolutions (Howard et al. 2017, MobileNets) instead of full ones;
- downsample: the "downsample/upsample trick" of singlasahil14/style-transfer ("Practical
  techniques for getting style transfer to work"): the input is scaled down 2x or 4x with bilinear
  interpolation, the network runs at that resolution, and nearest-upsample + 3x3 convolution stages
  return to full resolution (style transfer and super-resolution in one network);
- width_multiplier and num_residual_blocks: thinner or shallower networks;
- working_size: the network paints at a fixed size (a picture's longer side scaled to it, the result
  scaled back up by inference), the way Magenta's mobile network paints at 384 px: trained at that scale,
  its strokes keep their size in the picture at any resolution, for a fixed cost per picture.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

NORMS = ("instance", "batch", "none")
UPSAMPLINGS = ("learned", "bilinear")  # how a network run at a lower resolution returns to full resolution
# How each decoder stage doubles its resolution before its 3x3 convolution: nearest (Johnson et al.; the PyTorch
# example) or bilinear, which spreads each low-resolution value over its neighbours instead of copying it 2x2.
DECODER_UPSAMPLINGS = ("nearest", "bilinear")
DOWNSAMPLES = (1, 2, 4)  # the input scaled down by this before the network, scaled back up by its last stages
MIN_SIZE = 8  # the 3x3 reflection padding at the lowest resolution needs pixels to reflect


class InstanceNorm(nn.Module):
    """Instance norm with two additions.

    Conditional scale and shift (Dumoulin, Shlens & Kudlur 2017, "A Learned Representation for
    Artistic Style"): each of `num_styles` styles has its own scale and shift, everything else is
    shared, and a forward pass takes style weights (N, num_styles) that blend them per image, so one
    network holds several styles and mixes them. Each style's parameters are separate tensors, so a
    style added later can be trained while the others stay untouched bit for bit.

    Statistics that can be set from outside: tiles of a large image are normalised with the
    statistics of the whole image, so that they do not each drift in colour and contrast (see
    stylenet.inference.tiling).
    """

    def __init__(self, channels: int, num_styles: int = 1, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.scales = nn.ParameterList(torch.ones(channels) for _ in range(num_styles))
        self.shifts = nn.ParameterList(torch.zeros(channels) for _ in range(num_styles))
        self.statistics: tuple[torch.Tensor, torch.Tensor] | None = None

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, *args: Any) -> None:
        # Inference files written before conditional norms held nn.InstanceNorm2d's `weight` and `bias`.
        for old, new in (("weight", "scales.0"), ("bias", "shifts.0")):
            if prefix + old in state_dict:
                state_dict[prefix + new] = state_dict.pop(prefix + old)
        super()._load_from_state_dict(state_dict, prefix, *args)

    def add_style(self) -> None:
        """A new style whose scale and shift start as the mean of the existing styles' (a blend of them)."""
        for parameters in (self.scales, self.shifts):
            parameters.append(torch.stack(list(parameters)).mean(0).detach().clone())

    def keep_style(self, index: int) -> None:
        """Drop every style but `index`, which becomes style 0."""
        self.scales = nn.ParameterList([self.scales[index]])
        self.shifts = nn.ParameterList([self.shifts[index]])

    def affine(self, style: torch.Tensor | None, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """Scale and shift: (C,) for one style, or one blend for the whole batch (style weights
        (num_styles,)); (N, C) for a blend per image (style weights (N, num_styles))."""
        if len(self.scales) == 1:
            return self.scales[0], self.shifts[0]
        if style is None:
            raise ValueError(f"this network has {len(self.scales)} styles: pass style weights (N, {len(self.scales)})")
        # Elementwise products rather than a matrix product, so that a one-hot weight selects a
        # style's parameters exactly (TF32 matrix products would round them).
        weights = style.to(dtype).unsqueeze(-1)
        return (
            (weights * torch.stack(list(self.scales)).to(dtype)).sum(-2),
            (weights * torch.stack(list(self.shifts)).to(dtype)).sum(-2),
        )

    def forward(self, x: torch.Tensor, style: torch.Tensor | None = None) -> torch.Tensor:
        scale, shift = self.affine(style, x.dtype)
        per_image = scale.dim() == 2
        # One scale and shift for the batch go into the fused kernel: a separate multiply and add
        # over the activations made the fast network up to 1.4x slower on a CPU (BENCHMARKS.md).
        fused_scale, fused_shift = (None, None) if per_image else (scale, shift)
        if self.statistics is not None:
            mean, var = (value.to(x.dtype) for value in self.statistics)
            x = F.batch_norm(x, mean, var, fused_scale, fused_shift, training=False, eps=self.eps)
        else:
            x = F.instance_norm(x, weight=fused_scale, bias=fused_shift, eps=self.eps)
        if per_image:
            x = x * scale[:, :, None, None] + shift[:, :, None, None]
        return x


class Styled(nn.Sequential):
    """A Sequential that hands the style weights on to the layers that take them."""

    def forward(self, x: torch.Tensor, style: torch.Tensor | None = None) -> torch.Tensor:
        for layer in self:
            x = layer(x, style) if isinstance(layer, (InstanceNorm, Styled, ResidualBlock)) else layer(x)
        return x


def _norm(kind: str, channels: int, num_styles: int) -> nn.Module:
    if kind == "instance":
        # Ulyanov et al. 2016: instance norm is what makes feed-forward stylisation look right.
        return InstanceNorm(channels, num_styles)
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    return nn.Identity()


def conv(
    in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, separable: bool = False
) -> nn.Sequential:
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


class ConvLayer(Styled):
    """Convolution + norm + ReLU."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        norm: str = "instance",
        separable: bool = False,
        num_styles: int = 1,
    ) -> None:
        super().__init__(
            conv(in_channels, out_channels, kernel_size, stride, separable),
            _norm(norm, out_channels, num_styles),
            nn.ReLU(inplace=True),
        )


class ResidualBlock(nn.Module):
    """Two 3x3 convolutions with an identity shortcut, no ReLU after the sum (Gross & Wilber 2016)."""

    def __init__(self, channels: int, norm: str, separable: bool, num_styles: int = 1) -> None:
        super().__init__()
        self.body = Styled(
            ConvLayer(channels, channels, 3, norm=norm, separable=separable, num_styles=num_styles),
            conv(channels, channels, 3, separable=separable),
            _norm(norm, channels, num_styles),
        )

    def forward(self, x: torch.Tensor, style: torch.Tensor | None = None) -> torch.Tensor:
        return x + self.body(x, style)


def exporting() -> bool:
    """True while torch.onnx.export traces the network: onnxruntime runs some PyTorch-fast forms slowly."""
    return torch.onnx.is_in_onnx_export() or torch.compiler.is_exporting()


def replicate_pad(x: torch.Tensor, pad: tuple[int, int, int, int]) -> torch.Tensor:
    """F.pad(x, (left, right, top, bottom), mode="replicate").

    Under torch.compile and export it is written without replication_pad2d: its compiled backward fails on
    torch 2.15 (a stride mismatch in its meta kernel), and exported it becomes an index Gather that cost
    onnxruntime a fifth of the fast network's time (BENCHMARKS.md); the edges are concatenated instead.
    """
    if not (torch.compiler.is_compiling() or exporting()):
        return F.pad(x, pad, mode="replicate")
    left, right, top, bottom = pad
    x = torch.cat([x[..., :1, :].expand(-1, -1, top, -1), x, x[..., -1:, :].expand(-1, -1, bottom, -1)], -2)
    return torch.cat([x[..., :1].expand(-1, -1, -1, left), x, x[..., -1:].expand(-1, -1, -1, right)], -1)


class FusedUpsampleConv(nn.Module):
    """Nearest x2 upsampling + reflection-padded 3x3 convolution, computed at the low resolution.

    The same function as nn.Upsample(2) -> ReflectionPad2d(1) -> Conv2d(3x3, groups), exactly, and
    the same parameters: each of the four output phases is a 3x3 convolution of the low-resolution
    input whose taps are sums of the original kernel's, then a pixel shuffle interleaves the phases.
    (Reflecting the upsampled image at its border equals replicating the low-resolution one.)
    It never builds the upsampled tensor, whose padding and convolution at full resolution were the
    largest costs of the fast variant on a CPU (BENCHMARKS.md). Exported to ONNX it takes the plain form,
    which onnxruntime runs faster than the pixel shuffle.
    """

    # PHASE_TAPS[phase, low-resolution tap (-1, 0, +1), original tap (0, 1, 2)]
    PHASE_TAPS = torch.tensor([[[1.0, 0, 0], [0, 1, 1], [0, 0, 0]], [[0.0, 0, 0], [1, 1, 0], [0, 0, 1]]])

    def __init__(self, in_channels: int, out_channels: int, groups: int = 1, bias: bool = True) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 3, groups=groups, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if exporting():
            # onnxruntime runs the pixel shuffle (DepthToSpace) slowly: the plain form is 2-3x faster there.
            upsampled = F.interpolate(x, scale_factor=2.0, mode="nearest")
            return self.conv(F.pad(upsampled, (1, 1, 1, 1), mode="reflect"))
        taps = self.PHASE_TAPS.to(self.conv.weight)
        weight = torch.einsum("pak,qbl,oikl->opqiab", taps, taps, self.conv.weight)
        weight = weight.reshape(-1, *self.conv.weight.shape[1:])  # channel o*4 + row phase*2 + column phase
        bias = None if self.conv.bias is None else self.conv.bias.repeat_interleave(4)
        padded = replicate_pad(x, (1, 1, 1, 1))
        return F.pixel_shuffle(F.conv2d(padded, weight, bias, groups=self.conv.groups), 2)


class BilinearUpsampleConv(FusedUpsampleConv):
    """Bilinear x2 upsampling + reflection-padded 3x3 convolution: the same parameters as FusedUpsampleConv."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        upsampled = F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)
        return self.conv(F.pad(upsampled, (1, 1, 1, 1), mode="reflect"))


class UpsampleConv(Styled):
    """x2 upsampling (nearest: no checkerboard artefacts, Odena et al. 2016; or bilinear) then a convolution,
    + norm + ReLU."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        norm: str,
        separable: bool,
        num_styles: int = 1,
        decoder_upsampling: str = "nearest",
    ) -> None:
        stage = BilinearUpsampleConv if decoder_upsampling == "bilinear" else FusedUpsampleConv
        if separable:
            layers = [
                stage(in_channels, in_channels, groups=in_channels, bias=False),
                nn.Conv2d(in_channels, out_channels, 1),
            ]
        else:
            layers = [stage(in_channels, out_channels)]
        super().__init__(*layers, _norm(norm, out_channels, num_styles), nn.ReLU(inplace=True))


class TransformerNet(nn.Module):
    """Image in, stylised image of exactly the same size out; float RGB in [0, 1], NCHW.

    num_styles > 1: conditional instance norm (see InstanceNorm); forward then takes style weights,
    (num_styles,) for the whole batch (inference: the fastest) or (N, num_styles) per image
    (training), e.g. one-hot rows to pick a style.
    None counts as 1 (a config that leaves the number to the style set, filled in by training).
    """

    def __init__(
        self,
        channels: Sequence[int] = (32, 64, 128),
        num_residual_blocks: int = 5,
        norm: str = "instance",
        separable: bool = False,
        downsample: int = 1,
        width_multiplier: float = 1.0,
        num_styles: int | None = 1,
        detail_skip: bool = False,
        upsampling: str = "learned",
        working_size: int | None = None,
        decoder_upsampling: str = "nearest",
    ) -> None:
        super().__init__()
        num_styles = 1 if num_styles is None else num_styles
        if len(channels) != 3:
            raise ValueError(f"channels needs 3 widths (full, 1/2 and 1/4 resolution), got {list(channels)}")
        if norm not in NORMS:
            raise ValueError(f"norm must be one of {', '.join(NORMS)}, got '{norm}'")
        if downsample not in DOWNSAMPLES:
            raise ValueError(f"downsample must be one of {', '.join(map(str, DOWNSAMPLES))}, got {downsample}")
        if upsampling not in UPSAMPLINGS:
            raise ValueError(f"upsampling must be one of {', '.join(UPSAMPLINGS)}, got '{upsampling}'")
        if decoder_upsampling not in DECODER_UPSAMPLINGS:
            raise ValueError(
                f"decoder_upsampling must be one of {', '.join(DECODER_UPSAMPLINGS)}, got '{decoder_upsampling}'"
            )
        if width_multiplier <= 0:
            raise ValueError(f"width_multiplier must be positive, got {width_multiplier}")
        if working_size is not None and (not isinstance(working_size, int) or working_size < 32):
            raise ValueError(f"working_size must be null or a whole number of pixels from 32, got {working_size}")
        if not isinstance(num_styles, int) or num_styles < 1:
            raise ValueError(f"num_styles must be a positive whole number, got {num_styles}")
        if num_styles > 1 and norm != "instance":
            raise ValueError(
                f"num_styles={num_styles} needs norm=instance (styles live in its scale and shift), got '{norm}'"
            )
        full, half, quarter = (max(1, round(int(c) * width_multiplier)) for c in channels)
        self.downsample = downsample
        # The longer side, in pixels, of the pictures this network learned to paint: inference paints larger
        # pictures at this size and scales the result back (Stylizer.working_shape), so that its brush strokes
        # keep their size in the picture. Training leaves crops as they are (they are at most this size).
        self.working_size = working_size
        self.bilinear = downsample > 1 and upsampling == "bilinear"
        self.num_styles = num_styles
        styles: dict[str, Any] = {"norm": norm, "separable": separable, "num_styles": num_styles}
        self.encoder = Styled(
            ConvLayer(3, full, 9, **styles),
            ConvLayer(full, half, 3, stride=2, **styles),
            ConvLayer(half, quarter, 3, stride=2, **styles),
        )
        self.residuals = Styled(*(ResidualBlock(quarter, **styles) for _ in range(num_residual_blocks)))
        stages = {**styles, "decoder_upsampling": decoder_upsampling}
        decoder: list[nn.Module] = [UpsampleConv(quarter, half, **stages), UpsampleConv(half, full, **stages)]
        if downsample > 1 and not self.bilinear:
            if downsample == 4:
                decoder.append(UpsampleConv(full, max(1, full // 2), **stages))
                full = max(1, full // 2)
            # The super-resolution ending: back to full resolution, one small 3x3 convolution there.
            decoder.append(FusedUpsampleConv(full, 3))
        else:
            # bilinear: the picture is drawn at the low resolution and interpolated up, so nothing learned at full
            # resolution can stamp a repeated pattern there (the learned stages did: BENCHMARKS.md "The `realtime`
            # preset").
            decoder.append(conv(full, 3, 9, separable=separable))
        self.decoder = Styled(*decoder)
        # A 3x3 convolution of the photo itself at full resolution, added before the final sigmoid: the path by
        # which a network that runs at a lower resolution can keep the photo's fine detail (84 parameters).
        self.detail = conv(3, 3, 3) if detail_skip else None
        # Stride-2 stages (and the scaled-down input) need sizes divisible by this.
        self.size_multiple = 4 * downsample

    def norms(self) -> list[InstanceNorm]:
        return [module for module in self.modules() if isinstance(module, InstanceNorm)]

    def add_styles(self, count: int) -> list[int]:
        """Grow the network by `count` styles (see InstanceNorm.add_style); returns their indices."""
        for _ in range(count):
            for norm in self.norms():
                norm.add_style()
        added = list(range(self.num_styles, self.num_styles + count))
        self.num_styles += count
        return added

    def keep_style(self, index: int) -> None:
        """Make this the one-style network of its style `index`: it then paints as fast as a network of one style,
        exports, fine-tunes and adds styles as one (see InstanceNorm.keep_style)."""
        for norm in self.norms():
            norm.keep_style(index)
        self.num_styles = 1

    def style_parameters(self, indices: Sequence[int]) -> list[nn.Parameter]:
        """The scale and shift of the given styles in every norm: all that adding a style trains."""
        return [
            parameters[index] for norm in self.norms() for parameters in (norm.scales, norm.shifts) for index in indices
        ]

    def padding(self, length: int) -> int:
        """Pixels to add so that `length` suits the stride-2 stages (written with a remainder rather than
        a ceiling division so that ONNX export keeps it symbolic for any input size)."""
        multiple = self.size_multiple
        return max(MIN_SIZE * multiple // 4 - length, (multiple - length % multiple) % multiple)

    def forward(self, image: torch.Tensor, style: torch.Tensor | None = None) -> torch.Tensor:
        height, width = image.shape[-2:]
        if self.num_styles > 1 and (style is None or style.shape[-1] != self.num_styles or style.dim() > 2):
            raise ValueError(
                f"this network has {self.num_styles} styles: pass style weights "
                f"({self.num_styles},) or (N, {self.num_styles})"
            )
        padded = replicate_pad(image, (0, self.padding(width), 0, self.padding(height)))
        x = padded
        if self.downsample > 1:
            x = F.interpolate(x, scale_factor=1 / self.downsample, mode="bilinear", align_corners=False, antialias=True)
        x = self.decoder(self.residuals(self.encoder(x, style), style), style)
        if self.bilinear:
            x = F.interpolate(x, scale_factor=float(self.downsample), mode="bilinear", align_corners=False)
        if self.detail is not None:
            x = x + self.detail(padded)  # the padded photo: at least 8 px, as reflection padding needs
        # A sigmoid keeps the output a valid image while passing gradients everywhere (a clamp would not).
        return torch.sigmoid(x[..., :height, :width])
