"""Measures of quality. Loss-based: a trained network's loss on held-out photos and how many optimisation
iterations that loss is worth (Johnson et al.). Picture-based (PictureScorer): how stylised a finished picture
is and how much of its photo it keeps, on no training loss's weights, so that any two methods compare."""

from __future__ import annotations

import math
import statistics

import torch
import torch.nn.functional as F
from torch import nn

from stylenet.loss.grain import SCORE_PERIODS, luminance, peak_share
from stylenet.loss.perceptual import PerceptualLoss, gram_matrix, shrunk

TERMS = ("content", "style", "tv", "total")


@torch.no_grad()
def heldout_losses(
    model: nn.Module,
    loss_fn: PerceptualLoss,
    photos: torch.Tensor,
    batch_size: int = 4,
    style: torch.Tensor | None = None,
) -> dict[str, float]:
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


def report(
    rows: dict[str, dict[str, float]],
    seconds: dict[str, float],
    equivalents: dict[str, list[int | None]],
    iterations: list[int],
    header: str,
) -> str:
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


# ---- Picture scores that do not depend on any training loss's weights ------------------------------------
# A stylised picture is judged against its photo and the style image alone, so that networks trained with
# different losses, the optimisation and other tools' pictures can be compared on one scale.

MEASURE_LAYERS = ("relu1_2", "relu2_2", "relu3_3", "relu4_3")
LAYOUT_SIZE = 64  # shorter side at which the photo's layout (light and shapes) is compared
EDGE_FRACTION = 0.05  # the photo's strongest edges: this fraction of its pixels
REPEAT_LAGS = range(2, 17)  # shifts (pixels) at which a repeated texture shows up in the autocorrelation
STROKE_SHRINK = 4  # strokes: the style distance with picture, photo and painting at a quarter of the size
PALETTE_DIRECTIONS = 64  # palette: random directions in RGB on which the two colour distributions are compared
PALETTE_SAMPLES = 16384  # pixels drawn from each picture (sorted quantiles, so sizes may differ)
SCORES = ("style", "strokes", "layout", "edges", "sharpness", "repetition", "grain", "palette")


def gradient_magnitude(gray: torch.Tensor) -> torch.Tensor:
    """Sobel gradient magnitude of (N, 1, H, W), the same size (replicated border)."""
    sobel = gray.new_tensor([[-1.0, 0, 1], [-2, 0, 2], [-1, 0, 1]]) / 8
    kernels = torch.stack([sobel, sobel.t()]).unsqueeze(1)
    gradients = F.conv2d(F.pad(gray, (1, 1, 1, 1), mode="replicate"), kernels)
    return gradients.square().sum(1, keepdim=True).sqrt()


def correlation(a: torch.Tensor, b: torch.Tensor) -> float:
    """Pearson correlation of two equally sized tensors (0 where either is constant)."""
    a, b = a.flatten().double(), b.flatten().double()
    a, b = a - a.mean(), b - b.mean()
    denominator = float(a.norm() * b.norm())
    return float(a @ b) / denominator if denominator > 0 else 0.0


def repetition(gray: torch.Tensor) -> float:
    """How strongly the picture's fine detail repeats itself: the largest normalised autocorrelation of its
    high-pass luminance at a shift of 2-16 pixels. A regular cross-hatch or grid scores near 1, brush
    strokes and natural detail near 0 (a neighbour one pixel away is always alike, so shifts start at 2)."""
    blurred = F.avg_pool2d(F.pad(gray, (2, 2, 2, 2), mode="replicate"), 5, 1)
    detail = (gray - blurred)[0, 0].double()
    detail = detail - detail.mean()
    height, width = detail.shape
    spectrum = torch.fft.rfft2(detail, s=(2 * height, 2 * width))  # zero-padded: no wrap-around
    autocorrelation = torch.fft.irfft2(spectrum.abs().square(), s=(2 * height, 2 * width))
    energy = float(autocorrelation[0, 0])
    if energy <= 0:
        return 0.0
    best = 0.0
    for lag in REPEAT_LAGS:
        # Shifts along rows, columns and both diagonals, each normalised by the overlap it leaves.
        for dy, dx in ((lag, 0), (0, lag), (lag, lag), (lag, -lag)):
            overlap = (height - abs(dy)) * (width - abs(dx)) / (height * width)
            best = max(best, float(autocorrelation[dy % (2 * height), dx % (2 * width)]) / energy / overlap)
    return best


def grain(gray: torch.Tensor) -> float:
    """How much of the fine band's energy (periods of 2-8 px) stands in peaks (stylenet.loss.grain): a regular
    hatch or grid puts its energy in a few, natural detail, brush strokes and blur spread theirs evenly (photos
    about 0.1, a faint even weave far more). Sees the weave that `repetition` misses (BENCHMARKS.md)."""
    return float(peak_share(gray.double(), SCORE_PERIODS)[0])


def palette_distance(picture: torch.Tensor, painting: torch.Tensor) -> float:
    """The sliced Wasserstein distance between the picture's colours and the painting's (RGB in [0, 1]): the
    mean, over fixed random directions, of the distance between the sorted projections. 0: the painting's
    colours in the painting's proportions; it sees what a Gram matrix of features cannot (the whole
    distribution, not its correlations)."""
    generator = torch.Generator().manual_seed(0)
    directions = F.normalize(torch.randn(3, PALETTE_DIRECTIONS, generator=generator, dtype=torch.float64), dim=0)
    quantiles = []
    for image in (picture, painting):
        pixels = image[0].reshape(3, -1).t().double().cpu()
        chosen = torch.randint(0, len(pixels), (PALETTE_SAMPLES,), generator=generator)
        quantiles.append((pixels[chosen] @ directions).sort(dim=0).values)
    return float((quantiles[0] - quantiles[1]).abs().mean())


class PictureScorer:
    """Scores a stylised picture against its photo and the style image:

    - style: distance of the picture's VGG Gram matrices from the style's, each layer relative to the
      photo's own distance and the layers weighted equally (a geometric mean): 1 = no closer to the style than the photo,
      0 = the style's statistics exactly (lower is more stylised);
    - strokes: the same at a quarter of the size (picture, photo and painting shrunk alike), where the VGG
      layers see brush strokes and forms rather than pixel grain: a picture of bold strokes scores lower
      (more stylised) here than one that matches the painting's fine statistics only (BENCHMARKS.md);
    - layout: correlation of the picture's luminance with the photo's at 64 px: the objects and light kept;
    - edges: correlation of the two gradient-magnitude maps at full size: the photo's contours kept, and
      not buried under texture of the picture's own;
    - sharpness: how much more the picture changes across the photo's strongest edges than elsewhere,
      relative to the photo (1: as crisp as the photo; a blurred picture or an even texture scores low);
    - repetition: see `repetition` (high: a repeated pattern, whatever the loss says);
    - grain: see `grain` (high: a regular hatch or grid in the fine band; the photo's own is about 0.1);
    - palette: see `palette_distance` (the picture's colours against the painting's; lower is closer).
    """

    def __init__(self, encoder: torch.nn.Module, style_image: torch.Tensor) -> None:
        self.encoder = encoder
        with torch.no_grad():
            style = style_image.unsqueeze(0) if style_image.dim() == 3 else style_image
            self.painting = style
            features, coarse = encoder(style, MEASURE_LAYERS), encoder(shrunk(style, STROKE_SHRINK), MEASURE_LAYERS)
        self.style_grams = {name: gram_matrix(features[name])[0] for name in MEASURE_LAYERS}
        self.coarse_grams = {name: gram_matrix(coarse[name])[0] for name in MEASURE_LAYERS}
        # The last photo's own distances (fine, coarse): every method's picture of a photo is scored against them,
        # and they cost two VGG passes at full size (python -m stylenet.score passes the same photo tensor).
        self._photo: torch.Tensor | None = None
        self._photo_distances: dict[bool, dict[str, float]] = {}

    @torch.no_grad()
    def style_distances(self, images: torch.Tensor, coarse: bool = False) -> dict[str, float]:
        features = self.encoder(shrunk(images, STROKE_SHRINK) if coarse else images, MEASURE_LAYERS)
        grams = self.coarse_grams if coarse else self.style_grams
        return {name: float((gram_matrix(features[name])[0] - grams[name]).square().mean()) for name in MEASURE_LAYERS}

    def relative_style(self, picture: torch.Tensor, photo: torch.Tensor, coarse: bool = False) -> float:
        """The picture's Gram distance from the style relative to the photo's, layers in a geometric mean: a
        layer at which the photo already sits near the style (a small denominator) must not outweigh the others."""
        if photo is not self._photo:
            self._photo, self._photo_distances = photo, {}
        if coarse not in self._photo_distances:
            self._photo_distances[coarse] = self.style_distances(photo, coarse)
        theirs, ours = self._photo_distances[coarse], self.style_distances(picture, coarse)
        return math.exp(
            statistics.fmean(math.log(max(ours[name], 1e-20) / max(theirs[name], 1e-20)) for name in MEASURE_LAYERS)
        )

    @torch.no_grad()
    def score(self, picture: torch.Tensor, photo: torch.Tensor) -> dict[str, float]:
        """`picture` and `photo`: (1, 3, H, W) in [0, 1]; the picture is resized to the photo's size."""
        if picture.shape[-2:] != photo.shape[-2:]:
            picture = F.interpolate(
                picture, size=photo.shape[-2:], mode="bilinear", align_corners=False, antialias=True
            )
        picture = picture.clamp(0, 1)
        gray_picture, gray_photo = luminance(picture), luminance(photo)
        scale = LAYOUT_SIZE / min(photo.shape[-2:])
        small = [
            F.interpolate(gray, scale_factor=scale, mode="area") if scale < 1 else gray
            for gray in (gray_picture, gray_photo)
        ]
        edges_picture, edges_photo = gradient_magnitude(gray_picture), gradient_magnitude(gray_photo)
        strongest = edges_photo >= torch.quantile(edges_photo.flatten().float(), 1 - EDGE_FRACTION)

        def contrast(edges: torch.Tensor) -> float:
            return float(edges[strongest].mean() / edges.mean().clamp_min(1e-8))

        return {
            "style": self.relative_style(picture, photo),
            "strokes": self.relative_style(picture, photo, coarse=True),
            "layout": correlation(*small),
            "edges": correlation(edges_picture, edges_photo),
            "sharpness": contrast(edges_picture) / max(contrast(edges_photo), 1e-8),
            "repetition": repetition(gray_picture),
            "grain": grain(gray_picture),
            "palette": palette_distance(picture, self.painting),
        }
