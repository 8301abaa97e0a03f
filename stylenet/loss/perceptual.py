"""Perceptual loss terms and the one PerceptualLoss used by every method (training, optimisation, reports).

Scaling follows the PyTorch example fast_neural_style (pytorch/examples): images in [0, 1] with
ImageNet normalisation, mean-squared errors, Gram matrices divided by C*H*W. With its weights
(content 1e5, style 1e10) our content and style terms equal that example's numbers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from stylenet.common.errors import StylenetError
from stylenet.common.options import UNSET, one_of
from stylenet.data.photos import StyleOptions, load_painting
from stylenet.loss.grain import Weave
from stylenet.vgg.encoder import VGGEncoder, VGGOptions

# none: the configured layer weights as they are; auto: PerceptualLoss.balance_style_layers at step 0 (the
# untrained network's output); photos: PerceptualLoss.relative_to_photos at step 0 (the training photos themselves).
STYLE_LAYER_NORMS = ("none", "auto", "photos")
# gram: Gram matrices (Gatys et al.; Johnson et al.), second-order statistics of each layer's features;
# sliced_wasserstein: the whole distribution of each layer's features (Heitz et al., CVPR 2021).
STYLE_TERMS = ("gram", "sliced_wasserstein")
PER_IMAGE_STYLE = "style_per_image"
SW_DIRECTIONS = 64  # random directions per layer and step: Heitz et al. use one per channel; 64 cost a fraction
SW_POSITIONS = 8192  # feature positions compared per image and layer (a random subset): sorting dominates the cost
SW_DRAWS = 8  # draws of directions averaged where one measurement sets weights (style_layer_losses)
SW_STYLE_POSITIONS = 65536  # positions of the painting's features kept as the target (a fixed random subset)
# The coarse style term (loss.coarse_style_weight) compares the picture and the painting at 1/COARSE_SHRINK of their
# size: the `strokes` score's scale (a quarter of 512 px) for a real-time network that paints at 384 px.
COARSE_SHRINK = 3


def gram_matrix(features: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) -> (N, C, C) channel correlations, divided by C*H*W so the size of the image does not matter."""
    batch, channels, height, width = features.shape
    flat = features.reshape(batch, channels, height * width).float()
    return flat @ flat.transpose(1, 2) / (channels * height * width)


def content_loss(output_features: torch.Tensor, content_features: torch.Tensor) -> torch.Tensor:
    return F.mse_loss(output_features.float(), content_features.float())


def style_loss(output_features: torch.Tensor, target_gram: torch.Tensor) -> torch.Tensor:
    """Mean squared difference between the output's Gram matrices and the style's (broadcast over the batch)."""
    gram = gram_matrix(output_features)
    return F.mse_loss(gram, target_gram.expand_as(gram))


def style_loss_per_image(output_features: torch.Tensor, target_grams: torch.Tensor) -> torch.Tensor:
    """style_loss of each image against its own target Gram matrix: (N,); their mean is style_loss."""
    return (gram_matrix(output_features) - target_grams).square().mean((1, 2))


def sliced_wasserstein(
    output_features: torch.Tensor, targets: Sequence[torch.Tensor], style_index: torch.Tensor | None = None
) -> torch.Tensor:
    """(N,): the sliced Wasserstein distance of the batch's features from their style's features `targets[k]`
    (C, M): both projected on the same random unit directions, sorted, and compared quantile by quantile (mean
    squared difference). Unlike a Gram matrix it matches each projection's whole distribution, not only its
    second moments: the painting's colours and contrasts, not their correlations alone.

    The images of one style are compared together, as one distribution, and each carries that distance: a crop
    of sky need not hold the painting's darkest tones if another crop of the batch does. Compared one by one,
    every 128 px crop had to, and the network stamped black blobs where a photo had none (BENCHMARKS.md).
    The directions are drawn anew each call."""
    with torch.autocast(output_features.device.type, enabled=False):  # sorted projections need float32
        return _sliced_wasserstein(output_features, targets, style_index)


def _sliced_wasserstein(
    output_features: torch.Tensor, targets: Sequence[torch.Tensor], style_index: torch.Tensor | None
) -> torch.Tensor:
    batch, channels = output_features.shape[:2]
    flat = output_features.reshape(batch, channels, -1).float()
    if flat.shape[-1] > SW_POSITIONS:
        flat = flat[..., torch.randint(flat.shape[-1], (SW_POSITIONS,), device=flat.device)]
    directions = F.normalize(torch.randn(SW_DIRECTIONS, channels, device=flat.device), dim=1)
    projected = directions @ flat  # (N, D, n)
    distances = flat.new_zeros(batch)
    # One style: the whole batch, with no look at the indices on the device (a synchronisation per layer and step).
    groups = (
        [(0, slice(None))] if style_index is None else [(s, style_index == s) for s in style_index.unique().tolist()]
    )
    for style, chosen in groups:
        # The style's images as one distribution: (D, k * n), sorted along the last dimension (the fastest).
        pooled = projected[chosen].transpose(0, 1).reshape(len(directions), -1).sort(dim=-1).values
        target = (directions @ targets[style].float()).sort(dim=-1).values  # (D, M)
        # The target's quantiles at the output's: the two can hold different numbers of positions.
        count = pooled.shape[-1]
        quantiles = ((torch.arange(count, device=flat.device) + 0.5) * target.shape[-1] / count).long()
        distances[chosen] = (pooled - target[:, quantiles]).square().mean()
    return distances


def total_variation(images: torch.Tensor) -> torch.Tensor:
    """Mean squared difference between neighbouring pixels, vertical plus horizontal."""
    vertical = (images[..., 1:, :] - images[..., :-1, :]).float().pow(2).mean()
    horizontal = (images[..., :, 1:] - images[..., :, :-1]).float().pow(2).mean()
    return vertical + horizontal


# Each style's painting: one image ((3, H, W) or (1, 3, H, W)), or several sizes of it (style.sizes).
StyleImages = torch.Tensor | Sequence[torch.Tensor | Sequence[torch.Tensor]]


def shrunk(images: torch.Tensor, factor: int) -> torch.Tensor:
    """(N, 3, H, W) at 1/factor of the size (area average; at least 32 px a side for the VGG's pooling): the coarse
    style term's and the `strokes` score's scale."""
    return F.interpolate(images, size=[max(32, side // factor) for side in images.shape[-2:]], mode="area")


def painting_scales(style_images: StyleImages) -> list[list[torch.Tensor]]:
    """Each style's painting as a list of (1, 3, H, W) images, one per size it is trained against."""
    styles = [style_images] if isinstance(style_images, torch.Tensor) else list(style_images)
    return [
        [image.reshape(-1, *image.shape[-3:]) for image in ([each] if isinstance(each, torch.Tensor) else each)]
        for each in styles
    ]


class PerceptualLoss(nn.Module):
    """Weighted content + style + TV loss; returns every term by name so they can all be logged.

    Keys: "content", "style", "style/<layer>" for each style layer, "tv", "palette", "weave" and "coarse_style" (when
    weighted), "total"; every value is already multiplied by its weight, so "total" is the sum of the others but "style/<layer>".

    Several style images (a multi-style network, Dumoulin et al. 2017): each output image is
    compared with the style that `style_index` gives it, and the key PER_IMAGE_STYLE holds each
    image's weighted style term (N,), from which training logs a loss per style.

    `statistic` (loss.style_term): how a layer's features are compared with the painting's, one of STYLE_TERMS.
    `palette_weight` (loss.palette_weight) adds "palette": the sliced Wasserstein distance of the output's colours
    from the painting's, the batch's pictures of one style pooled (a Gram matrix of VGG features matches colours
    only through their correlations: Gram networks painted starry_night pale and udnie greyer than the photo).
    `weave_weight` (loss.weave_weight) adds "weave" (stylenet.loss.grain.Weave): a regular texture drawn on every
    picture of a style at one frequency, which the Gram matrix rewards as readily as a painted one.
    `coarse_style_weight` (loss.coarse_style_weight) adds "coarse_style": the style term again, this weight times
    it, with picture and painting at 1/COARSE_SHRINK of their size, where the VGG layers see strokes and forms: the
    full-size term is met by fine texture alone, and a small network's strokes then stay fine and pale.
    """

    def __init__(
        self,
        encoder: VGGEncoder,
        style_images: StyleImages,
        content_layer: str,
        style_layers: Mapping[str, float],
        content_weight: float,
        style_weight: float,
        tv_weight: float,
        statistic: str = "gram",
        palette_weight: float = 0.0,
        palette_patch: int = 1,
        weave_weight: float = 0.0,
        coarse_style_weight: float = 0.0,
    ) -> None:
        super().__init__()
        one_of("loss.style_term", statistic, STYLE_TERMS)
        missing = [name for name in (content_layer, *style_layers) if name not in encoder.layers]
        if missing:
            raise ValueError(f"encoder does not compute layer(s) {missing}; it has {encoder.layers}")
        self.encoder = encoder
        self.content_layer = content_layer
        self.style_layer_weights = {name: float(weight) for name, weight in style_layers.items()}
        self.content_weight = float(content_weight)
        self.style_weight = float(style_weight)
        self.tv_weight = float(tv_weight)
        self.statistic = statistic
        self.palette_weight = float(palette_weight)
        self.palette_patch = int(palette_patch)
        self.weave_weight = float(weave_weight)
        self.coarse_style_weight = float(coarse_style_weight)
        paintings = painting_scales(style_images)
        self.num_styles = len(paintings)
        self.weave = Weave(self.num_styles) if self.weave_weight > 0 else None
        for index, scales in enumerate(paintings if self.palette_weight > 0 else []):
            # The painting's colours: (3, at most SW_STYLE_POSITIONS of its pixels at all its sizes, chosen once).
            pixels = torch.cat([self.patch_colours(image).transpose(0, 1).reshape(3, -1) for image in scales], 1)
            kept = torch.randperm(pixels.shape[1], generator=torch.Generator().manual_seed(index))
            self.register_buffer(f"target_pixels_{index}", pixels[:, kept[:SW_STYLE_POSITIONS].to(pixels.device)])
        # The style targets never change: compute them once (and at the coarse scale where that term is on).
        self.register_style_targets(paintings, "")
        if self.coarse_style_weight > 0:
            self.register_style_targets(
                [[shrunk(image, COARSE_SHRINK) for image in scales] for scales in paintings], "coarse_"
            )

    def register_style_targets(self, paintings: list[list[torch.Tensor]], scale: str) -> None:
        """Buffers target_<scale>gram_<layer> (Gram: (styles, C, C) per layer, the mean over the painting's sizes:
        the expected loss of drawing one size at random each step, without its noise) or, for sliced Wasserstein,
        target_<scale>features_<layer>_<style> (C, at most SW_STYLE_POSITIONS positions, chosen once)."""
        with torch.no_grad():
            features = [[self.encoder(image) for image in scales] for scales in paintings]
        chooser = torch.Generator().manual_seed(0)
        for name in self.style_layer_weights:
            if self.statistic == "gram":
                grams = [torch.stack([gram_matrix(each[name]) for each in sized]).mean(0) for sized in features]
                self.register_buffer(f"target_{scale}gram_{name}", torch.cat(grams))
                continue
            for index, sized in enumerate(features):
                flat = torch.cat([each[name][0].flatten(1).float() for each in sized], 1)
                if flat.shape[1] > SW_STYLE_POSITIONS:
                    kept = torch.randperm(flat.shape[1], generator=chooser)[:SW_STYLE_POSITIONS]
                    flat = flat[:, kept.to(flat.device)]
                self.register_buffer(f"target_{scale}features_{name}_{index}", flat)

    def style_distances(
        self, layer: str, output_features: torch.Tensor, style_index: torch.Tensor | None = None, scale: str = ""
    ) -> torch.Tensor:
        """(N,): each image's unweighted style loss at `layer`, by the loss's statistic (scale "coarse_": against
        the painting at the coarse style term's scale)."""
        if self.statistic == "gram":
            return style_loss_per_image(output_features, self.target_gram(layer, style_index, scale))
        if style_index is None and self.num_styles > 1:
            raise ValueError(f"this loss has {self.num_styles} style images: pass each image's style_index")
        targets = [getattr(self, f"target_{scale}features_{layer}_{index}") for index in range(self.num_styles)]
        return sliced_wasserstein(output_features, targets, style_index)

    def target_gram(self, layer: str, style_index: torch.Tensor | None = None, scale: str = "") -> torch.Tensor:
        """The layer's target Gram matrix for each image of a batch given its style index (all the
        style's when the loss has one style and no index is given)."""
        grams = getattr(self, f"target_{scale}gram_{layer}")
        if style_index is not None:
            return grams[style_index]
        if self.num_styles > 1:
            raise ValueError(f"this loss has {self.num_styles} style images: pass each image's style_index")
        return grams

    def same_objective(self, other: PerceptualLoss) -> bool:
        """Whether `other` scores every image as this loss does (same VGG weights, layers, weights and
        style targets): networks trained with equal losses can share one optimisation run."""

        def settings(loss: PerceptualLoss) -> tuple:
            return (
                loss.encoder.weights_id,
                loss.encoder.input,
                loss.content_layer,
                loss.style_layer_weights,
                loss.content_weight,
                loss.style_weight,
                loss.tv_weight,
                loss.num_styles,
                loss.statistic,
                loss.palette_weight,
                loss.palette_patch,
                loss.weave_weight,
                loss.coarse_style_weight,
            )

        def targets(loss: PerceptualLoss) -> list[torch.Tensor]:
            return [buffer.cpu() for name, buffer in loss.named_buffers() if name.startswith("target_")]

        mine, theirs = targets(self), targets(other)
        return (
            settings(self) == settings(other)
            and [each.shape for each in mine] == [each.shape for each in theirs]
            and all(torch.allclose(a, b, rtol=1e-4, atol=0) for a, b in zip(mine, theirs))
        )

    @torch.no_grad()
    def style_layer_losses(self, output: torch.Tensor, style_index: torch.Tensor | None = None) -> dict[str, float]:
        """Each style layer's unweighted loss on `output`: what balance_style_layers needs."""
        features = self.encoder(output, list(self.style_layer_weights))
        if self.statistic == "gram":
            return {
                name: float(style_loss(features[name], self.target_gram(name, style_index)))
                for name in self.style_layer_weights
            }
        # Random directions each call: the mean of several draws, as these losses set the layers' weights.
        return {
            name: sum(float(self.style_distances(name, features[name], style_index).mean()) for _ in range(SW_DRAWS))
            / SW_DRAWS
            for name in self.style_layer_weights
        }

    @torch.no_grad()
    def style_term(self, images: torch.Tensor, style_index: torch.Tensor | None = None) -> float:
        """The weighted style term of `images` as they are: of the photos themselves, what an output that
        changes nothing would score."""
        raw = self.style_layer_losses(images, style_index)
        return self.style_weight * sum(self.style_layer_weights[name] * value for name, value in raw.items())

    @torch.no_grad()
    def content_to_own_and_other(self, output: torch.Tensor, content: torch.Tensor) -> tuple[float, float]:
        """The weighted content term of each output against its own photo, and against the next photo of the batch:
        an output that keeps its photo is far nearer its own (health's content_lost; needs 2 or more photos)."""
        features = self.encoder(torch.cat([output, content]), [self.content_layer])[self.content_layer]
        outputs, photos = features[: len(output)], features[len(output) :]
        own, other = content_loss(outputs, photos), content_loss(outputs, photos.roll(1, 0))
        return self.content_weight * float(own), self.content_weight * float(other)

    def use_layer_weights(self, weights: Mapping[str, float] | None) -> None:
        """Style layer weights stored with a run (style_layer_norm=auto balances them at step 0, and a resumed
        run or an evaluation must use the same ones); None keeps the configured weights."""
        if weights is None:
            return
        if set(weights) != set(self.style_layer_weights):
            raise StylenetError(
                f"stored style layer weights are for layers {sorted(weights)}, "
                f"this loss has {sorted(self.style_layer_weights)}"
            )
        self.style_layer_weights = {name: float(weights[name]) for name in self.style_layer_weights}

    def balance_style_layers(self, raw: dict[str, float]) -> dict[str, float]:
        """Scale each style layer's weight by the inverse of its loss `raw[layer]` (style_layer_losses of
        the untrained network's output), so that each layer's term becomes proportional to its
        configured weight; the style term's total on that output stays the same. Returns the new weights."""
        if min(raw.values()) <= 0:
            raise ValueError(f"cannot balance style layers with a zero loss: {raw}")
        weighted_total = sum(weight * raw[name] for name, weight in self.style_layer_weights.items())
        scale = weighted_total / sum(self.style_layer_weights.values())
        self.style_layer_weights = {
            name: weight * scale / raw[name] for name, weight in self.style_layer_weights.items()
        }
        return dict(self.style_layer_weights)

    def relative_to_photos(self, raw: dict[str, float]) -> dict[str, float]:
        """Divide each style layer's weight by the photos' own loss at that layer, `raw[layer]`
        (style_layer_losses of the training photos as they are). An output that changes nothing then scores
        style_weight x (sum of the configured layer weights) for every style image, and each layer counts
        in proportion to its configured weight: the style weight means the same push towards any painting
        (the photos' own distance differs 3x between the zoo's styles, and relu1_2 carries 99.5% of it with
        equal weights: BENCHMARKS.md "What the style term is made of"). Returns the new weights."""
        if min(raw.values()) <= 0:
            raise ValueError(f"cannot weigh style layers by a zero loss: {raw}")
        self.style_layer_weights = {name: weight / raw[name] for name, weight in self.style_layer_weights.items()}
        return dict(self.style_layer_weights)

    def normalise_style_layers(self, mode: str, raw: dict[str, float]) -> dict[str, float]:
        """loss.style_layer_norm: `raw` holds the photos' own layer losses for "photos" and the untrained
        output's for "auto" (balance_style_layers); "none" keeps the configured weights."""
        if mode == "photos":
            return self.relative_to_photos(raw)
        if mode == "auto":
            return self.balance_style_layers(raw)
        return dict(self.style_layer_weights)

    def forward(
        self,
        output: torch.Tensor,
        content: torch.Tensor | None = None,
        content_features: torch.Tensor | None = None,
        style_index: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """Loss of `output` against `content` images, or against their precomputed content-layer
        features; with several style images, `style_index` (N,) says which style each image is for."""
        if content_features is None:
            if content is None:
                raise ValueError("pass content images or their precomputed content features")
            # The content images need no gradient and no layer below the content layer: a separate
            # no-grad pass that stops there costs a fraction of sending them through the whole
            # autograd graph together with the output (measured in BENCHMARKS.md).
            with torch.no_grad():
                content_features = self.encoder(content.to(output.dtype), [self.content_layer])[self.content_layer]
        output_features = self.encoder(output)

        losses: dict[str, torch.Tensor] = {
            "content": self.content_weight * content_loss(output_features[self.content_layer], content_features)
        }
        per_image = output.new_zeros(len(output), dtype=torch.float32)
        for name, layer_weight in self.style_layer_weights.items():
            term = self.style_weight * layer_weight * self.style_distances(name, output_features[name], style_index)
            losses[f"style/{name}"] = term.mean()
            per_image = per_image + term
        losses["style"] = per_image.mean()
        if style_index is not None:
            losses[PER_IMAGE_STYLE] = per_image
        if self.coarse_style_weight > 0:
            # The same layers and weights (the coarse term is a share of the style term), on the picture shrunk.
            features = self.encoder(shrunk(output, COARSE_SHRINK), list(self.style_layer_weights))
            weight = self.coarse_style_weight * self.style_weight
            coarse_terms = [
                weight * layer_weight * self.style_distances(name, features[name], style_index, "coarse_").mean()
                for name, layer_weight in self.style_layer_weights.items()
            ]
            losses["coarse_style"] = torch.stack(coarse_terms).sum()
        losses["tv"] = self.tv_weight * total_variation(output)
        losses["total"] = losses["content"] + losses["style"] + losses["tv"]
        if "coarse_style" in losses:
            losses["total"] = losses["total"] + losses["coarse_style"]
        if self.palette_weight > 0:
            targets = [getattr(self, f"target_pixels_{index}") for index in range(self.num_styles)]
            colours = self.patch_colours(output)
            losses["palette"] = self.palette_weight * sliced_wasserstein(colours, targets, style_index).mean()
            losses["total"] = losses["total"] + losses["palette"]
        if self.weave is not None:
            if content is None:
                raise ValueError("the weave term compares the pictures' spectrum with their photos': pass them")
            losses["weave"] = self.weave_weight * self.weave(output, content, style_index)
            losses["total"] = losses["total"] + losses["weave"]
        return losses

    def patch_colours(self, images: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) -> each palette_patch x palette_patch block's mean colour: compared so, the painting's
        colours cannot be met by a fine dither of them, a regular pattern that the grain score sees (the zoo's
        mosaic: BENCHMARKS.md "Mosaic's grain")."""
        return F.avg_pool2d(images.float(), self.palette_patch) if self.palette_patch > 1 else images.float()


class Distilled(nn.Module):
    """The perceptual loss plus the pictures of a larger network (a `teacher`) as targets: distillation.

    A small network fits another network's pastiche, a dense target, far better than the Gram statistics
    alone: the low-resolution `realtime` network trained on the perceptual loss alone gave up the photo for
    texture (BENCHMARKS.md). Adds "distill", the mean squared pixel difference times `weight`, to the terms.
    """

    def __init__(self, loss: nn.Module, teacher: nn.Module, weight: float) -> None:
        super().__init__()
        self.loss = loss
        self.teacher = teacher.eval().requires_grad_(False)
        self.weight = weight

    def forward(
        self, output: torch.Tensor, content: torch.Tensor | None = None, **terms: Any
    ) -> dict[str, torch.Tensor]:
        losses = self.loss(output, content, **terms)
        if content is None:
            raise ValueError("distillation needs the content images")
        with torch.no_grad():
            target = self.teacher(content)
        losses["distill"] = self.weight * F.mse_loss(output.float(), target.float())
        losses["total"] = losses["total"] + losses["distill"]
        return losses


@dataclass
class LossOptions(VGGOptions):
    """conf/loss/<name>.yaml: the VGG, the layers and the weights of the perceptual loss."""

    content_layer: str = UNSET
    style_layers: dict[str, float] = UNSET
    style_layer_norm: str = UNSET
    content_weight: float = UNSET
    style_weight: float = UNSET
    tv_weight: float = UNSET
    style_term: str = "gram"
    palette_weight: float = 0.0
    palette_patch: int = 1
    equivariance_weight: float = 0.0  # training's shift-equivariance term (stylenet.loss.equivariance); 0: off
    weave_weight: float = 0.0  # the regular-texture term (stylenet.loss.grain.Weave); 0: off
    coarse_style_weight: float = 0.0  # the style term at 1/COARSE_SHRINK of the size, a share of it; 0: off

    def __post_init__(self) -> None:
        one_of("loss.style_layer_norm", self.style_layer_norm, STYLE_LAYER_NORMS)
        one_of("loss.style_term", self.style_term, STYLE_TERMS)
        if not self.palette_weight >= 0:  # a negative weight would push the colours away from the painting's
            raise StylenetError(f"loss.palette_weight must be 0 (off) or more, got {self.palette_weight}")
        if not self.equivariance_weight >= 0:
            raise StylenetError(f"loss.equivariance_weight must be 0 (off) or more, got {self.equivariance_weight}")
        if not self.weave_weight >= 0:  # a negative weight would reward a regular weave
            raise StylenetError(f"loss.weave_weight must be 0 (off) or more, got {self.weave_weight}")
        if not self.coarse_style_weight >= 0:  # a negative weight would push the strokes away from the painting's
            raise StylenetError(f"loss.coarse_style_weight must be 0 (off) or more, got {self.coarse_style_weight}")
        if self.palette_patch < 1:
            raise StylenetError(f"loss.palette_patch must be 1 (single pixels) or more, got {self.palette_patch}")

    @classmethod
    def recorded(cls, options: Mapping[str, Any]) -> LossOptions:
        """The options a network file records (summary["config"]["loss"]); files from before style_layer_norm
        trained without it."""
        known = {field.name for field in fields(cls)}
        return cls(**{"style_layer_norm": "none", **{key: value for key, value in options.items() if key in known}})


def perceptual_loss(options: LossOptions, style_images: StyleImages) -> PerceptualLoss:
    """The loss `options` describe, on the style images' device."""
    style_layers = dict(options.style_layers)
    encoder = options.encoder([options.content_layer, *style_layers]).to(painting_scales(style_images)[0][0].device)
    return PerceptualLoss(
        encoder,
        style_images,
        options.content_layer,
        style_layers,
        options.content_weight,
        options.style_weight,
        options.tv_weight,
        options.style_term,
        options.palette_weight,
        options.palette_patch,
        options.weave_weight,
        options.coarse_style_weight,
    )


def trained_loss(
    payload: Mapping[str, Any],
    checkpoint: str,
    device: torch.device,
    style_name: str | None = None,
    style_image: str | None = None,
    loss_overrides: Mapping[str, Any] | None = None,
) -> PerceptualLoss:
    """The loss an inference file's network was trained with (layers, weights, style image, the effective
    layer weights of style_layer_norm=auto), on this machine's VGG weights; for a network of several
    styles, the loss of the style named `style_name`. `style_image` replaces the recorded image;
    `loss_overrides` (non-null entries) replace loss options, e.g. where this machine keeps its weights."""
    summary = payload.get("summary", {})
    trained = summary.get("config")
    if not trained:
        raise StylenetError(f"{checkpoint} does not record its training config; it cannot be evaluated")
    options = LossOptions.recorded(
        {**trained["loss"], **{key: value for key, value in (loss_overrides or {}).items() if value is not None}}
    )
    recorded = StyleOptions.recorded(trained["style"])
    entries = {name: (image, size) for name, image, size in recorded.entries()}
    name = style_name or next(iter(entries))
    if name not in entries and not style_image:
        raise StylenetError(
            f"the image of style '{name}' is not recorded in {checkpoint} (it was trained in an "
            f"earlier run): pass style_image=/path/to/it"
        )
    image, size = entries.get(name, (None, int(trained["style"]["size"])))
    try:
        painting = load_painting(recorded, name, style_image or image, size)
    except StylenetError as error:
        raise StylenetError(
            f"{error} (the style image recorded in the checkpoint; pass style_image=/path/to/it)"
        ) from None
    loss_fn = perceptual_loss(options, [[image.to(device) for image in painting]])
    loss_fn.use_layer_weights(summary.get("style_layer_weights"))
    return loss_fn
