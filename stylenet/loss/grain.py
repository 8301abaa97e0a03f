"""The grain: a regular pattern in the picture's fine detail, seen as energy that stands in a few peaks of the
spectrum. A cross-hatch, a grid or a weave puts its energy into a few frequencies; brush strokes, natural detail
and blur spread theirs evenly around each ring of equal frequency.

Two uses. The picture score `grain` (stylenet.loss.scores) is the share of one picture's fine band in peaks. The
training term loss.weave_weight (Weave) looks across pictures: a weave the network draws is at the same frequency in
every picture of a style, whatever the photo, while a photo's own peaks (a fence, a facade) are where that photo
puts them. So the term finds peaks in the running mean of the style's spectra that the photos' mean spectrum does
not have, and lowers them in each picture. A Gram matrix rewards a regular texture as readily as a painted one,
and the real-time network, stopped from drawing one on its pixel lattice (loss.equivariance_weight), drew one
beside it (BENCHMARKS.md "The lattice and shift equivariance", "The weave term")."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

PEAK = 4.0  # the score: a frequency is a peak above this many times the median energy of its ring
SCORE_PERIODS = (2.0, 8.0)  # the score's fine band, pixels per cycle, at the size pictures are scored
# The term's band at the network's working size: pictures are scored larger (a 6 px weave at working size is 8 px
# scored, and `repetition` looks for shifts of up to 16 px scored), so the term looks further down.
WEAVE_PERIODS = (2.0, 12.0)
WEAVE_PEAK = 2.0  # the term: a peak of a style's mean spectrum, this many times its neighbourhood's mean ...
WEAVE_NEIGHBOURHOOD = 15  # ... over this many frequencies square ...
WEAVE_OVER_PHOTOS = 2.0  # ... and this many times the photos' mean spectrum there
WEAVE_MEMORY = 0.9  # the running means keep this much of themselves at each update


def luminance(images: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) in [0, 1] -> (N, 1, H, W), ITU-R BT.601 weights."""
    weights = images.new_tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
    return (images * weights).sum(1, keepdim=True)


def spectrum(gray: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, 1, H, W) -> each picture's Hann-windowed power (N, H, W // 2 + 1), as rfft2 lays it out, and each
    frequency's radius in cycles per pixel (H, W // 2 + 1)."""
    detail = gray[:, 0]
    height, width = detail.shape[-2:]
    dtype, device = detail.dtype, detail.device
    window = torch.outer(
        torch.hann_window(height, dtype=dtype, device=device), torch.hann_window(width, dtype=dtype, device=device)
    )
    power = torch.fft.rfft2((detail - detail.mean((-2, -1), keepdim=True)) * window).abs().square()
    fy = torch.fft.fftfreq(height, dtype=dtype, device=device).abs().unsqueeze(1)
    fx = torch.fft.rfftfreq(width, dtype=dtype, device=device).unsqueeze(0)
    return power, (fy.square() + fx.square()).sqrt()


def fine_band(gray: torch.Tensor, periods: tuple[float, float]) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, 1, H, W) -> the power of each picture at periods between `periods` (N, B), and the ring of equal
    frequency each of those B frequencies lies on (B,)."""
    power, radius = spectrum(gray)
    radius = radius.expand(power.shape[-2:])
    inside = (radius >= 1 / periods[1]) & (radius <= 1 / periods[0])
    return power[:, inside], (radius * max(gray.shape[-2:])).round().long()[inside]


@torch.no_grad()
def ring_medians(band: torch.Tensor, rings: torch.Tensor) -> torch.Tensor:
    """(N, B) -> each frequency's ring median (N, B): a constant of the picture, so that a gradient through a
    peak's excess lowers the peak and never buys a smaller share by raising the rest with noise."""
    medians = torch.empty_like(band)
    for ring in rings.unique():
        members = rings == ring
        medians[:, members] = band[:, members].median(1, keepdim=True).values
    return medians


def peak_share(gray: torch.Tensor, periods: tuple[float, float] = SCORE_PERIODS) -> torch.Tensor:
    """(N, 1, H, W) -> (N,): the share of each picture's band energy above PEAK times its ring's median."""
    band, rings = fine_band(gray, periods)
    total = band.sum(1).detach()
    peaks = (band - PEAK * ring_medians(band, rings)).clamp_min(0).sum(1)
    return torch.where(total > 0, peaks / total.clamp_min(torch.finfo(total.dtype).tiny), torch.zeros_like(total))


class Weave(nn.Module):
    """The weave term (loss.weave_weight) and its memory. A weave is the same in every picture of a style, so the
    term finds it in a running mean of each style's spectra (each picture's band normalised to 1; over about the
    last 1 / (1 - WEAVE_MEMORY) updates of that style): at the frequencies where that mean stands above WEAVE_PEAK
    times its neighbourhood's mean (a peak, not the broad lobes of strokes that lean one way) and above
    WEAVE_OVER_PHOTOS times the photos' running mean (not a regular detail the photos share, which the content
    term asks for), each picture's share above that bar is the term. One batch alone holds too few pictures of a
    style (a network of eight styles paints each photo of a batch in another). The memory is not part of a
    snapshot: a resumed run gathers it again within a few steps."""

    def __init__(self, styles: int = 1) -> None:
        super().__init__()
        self.styles = styles
        self.painted: torch.Tensor | None = None  # (styles, H, W // 2 + 1): each style's running mean spectrum
        self.photographed: torch.Tensor | None = None  # (H, W // 2 + 1): the photos'

    def forward(
        self, pictures: torch.Tensor, photos: torch.Tensor, style_index: torch.Tensor | None = None
    ) -> torch.Tensor:
        """(N, 3, H, W) pictures and their photos in [0, 1]; `style_index` (N,): each picture's style."""
        shares = normalised_spectrum(pictures)
        index = (
            torch.zeros(len(pictures), dtype=torch.long, device=shares.device) if style_index is None else style_index
        )
        with torch.no_grad():
            self.remember(shares.detach(), normalised_spectrum(photos), index)
            assert self.painted is not None and self.photographed is not None
            bars = torch.maximum(WEAVE_PEAK * neighbourhood_mean(self.painted), WEAVE_OVER_PHOTOS * self.photographed)
            bars = torch.where(self.painted > bars, bars, torch.inf)[index]  # only at each style's weave
        return (shares - bars).clamp_min(0).sum((-2, -1)).mean()

    @torch.no_grad()
    def remember(self, shares: torch.Tensor, photo_shares: torch.Tensor, index: torch.Tensor) -> None:
        """Fold a batch into the running means; another crop size starts them afresh."""
        if self.painted is None or self.painted.shape[1:] != shares.shape[1:]:
            self.painted = torch.full((self.styles, *shares.shape[1:]), torch.nan, device=shares.device)
            self.photographed = photo_shares.mean(0)
        assert self.photographed is not None
        self.photographed.lerp_(photo_shares.mean(0), 1 - WEAVE_MEMORY)
        for style in index.unique():
            batch_mean = shares[index == style].mean(0)
            seen = self.painted[style]
            self.painted[style] = torch.where(seen.isnan(), batch_mean, torch.lerp(seen, batch_mean, 1 - WEAVE_MEMORY))


def normalised_spectrum(images: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) in [0, 1] -> each picture's luminance power at WEAVE_PERIODS (0 elsewhere) as shares of its
    total there, laid out as rfft2's (N, H, W // 2 + 1)."""
    power, radius = spectrum(luminance(images.float()))
    band = power * ((radius >= 1 / WEAVE_PERIODS[1]) & (radius <= 1 / WEAVE_PERIODS[0]))
    return band / band.sum((-2, -1), keepdim=True).detach().clamp_min(torch.finfo(band.dtype).tiny)


def neighbourhood_mean(spectra: torch.Tensor) -> torch.Tensor:
    """(S, H, W // 2 + 1) -> the mean of each frequency's WEAVE_NEIGHBOURHOOD-wide square around it (rfft2's rows
    wrap around, its columns end at 0 and at the Nyquist frequency)."""
    reach = WEAVE_NEIGHBOURHOOD // 2
    rows = torch.cat([spectra[:, -reach:], spectra, spectra[:, :reach]], 1)
    padded = F.pad(rows.unsqueeze(1), (reach, reach, 0, 0), mode="replicate")
    return F.avg_pool2d(padded, WEAVE_NEIGHBOURHOOD, 1).squeeze(1)
