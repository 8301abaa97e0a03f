"""Training health: the failure modes that cost style-transfer practitioners days, caught while they happen.

Failures (health=stop ends the run on them, with a snapshot): the output collapsing to a flat
image, a colour cast, the saturation collapsing, the loss jumping after a resume, the photo's
content lost (the network paints the style's texture whatever the photo), the style not learned (the
network returns its photo almost unchanged). Advice (always
only a warning): loss-balance rules of thumb. Non-finite losses or weights end every run,
whatever the mode (see training.fit). Every measured signal goes to TensorBoard under health/.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import torch

from stylenet.loss.perceptual import PerceptualLoss
from stylenet.training.monitor import RunLog

log = logging.getLogger(__name__)

MODES = ("warn", "stop", "off")
FAILURES = ("collapse", "colour_cast", "saturation_collapse", "resume_jump", "content_lost", "unstylised")
ADVICE = ("content_below_style", "tv_above_content")

FLAT_STD = 0.01  # spatial standard deviation (images in [0, 1]) below which an output is flat
CAST_MARGIN = 0.3  # channel-mean spread beyond both the photos' and the style's
SATURATION_FRACTION = 0.2  # output saturation below this fraction of both the photos' and the style's
COLOURFUL = 0.1  # ... when both of those are at least this saturated
RESUME_JUMP = 1.5  # first total after a resume over the total stored in the snapshot
STYLE_DROPPED = 0.5  # the style loss "has dropped" below this fraction of its first value
CONTENT_LOST = 0.9  # an output's content term against its own photo over that against another photo, above which
# it keeps nothing of its photo (BENCHMARKS.md "Health thresholds", 2026-12-05, scripts/bench_content_kept.py:
# a texture-only network 0.97; the zoo's networks 0.31-0.55, the real-time ones included, which the absolute
# comparison used before put at 0.71-1.11 of two unrelated photos' term)
CONTENT_SHARE = 0.02  # ... and the content term is below this fraction of the style term: gross imbalance
# (real VGG16 features, BENCHMARKS.md "Health thresholds": a style weight 100 times
# too high sat at 0.001-0.004; the ratio cannot tell a lost content from a kept one)
UNSTYLISED = 0.2  # late style term above this fraction of the photos' own: the photo barely changed
# (BENCHMARKS.md "Health thresholds": on 9 held-out photos the two demo networks that
# returned a tinted photo sat at 0.39 and 0.55 of it, a stylised network at 0.009)
UNSTYLISED_PHOTOS = 0.45  # the same, for loss.style_layer_norm=photos, whose style term gives every layer an
# equal share: the deep layers stay farther from the painting (2026-12-03, 16 training
# crops: stylised zoo networks 0.15-0.25, candy's 0.29 in training; photo almost
# unchanged 0.58-0.92)
LATE_STEP = 200  # "late in training": the second half, and not before this step (the untrained
# network's outputs are noisy, so TV starts high)
CHANNELS = ("r", "g", "b")


def colour_statistics(images: torch.Tensor) -> dict[str, float]:
    """Spatial std, per-channel mean/std, spread of the channel means, mean HSV saturation; images (N, 3, H, W) in [0, 1]."""
    images = images.detach().float().clamp(0, 1)
    channel_means = images.mean(dim=(0, 2, 3))
    brightest, darkest = images.amax(dim=1), images.amin(dim=1)
    saturation = torch.where(
        brightest > 1e-6, (brightest - darkest) / brightest.clamp_min(1e-6), torch.zeros_like(brightest)
    )
    stats = {
        "spatial_std": float(images.flatten(2).std(dim=-1).mean()),
        "channel_spread": float(channel_means.max() - channel_means.min()),
        "saturation": float(saturation.mean()),
    }
    for name, mean, std in zip(CHANNELS, channel_means.tolist(), images.std(dim=(0, 2, 3)).tolist()):
        stats[f"mean/{name}"], stats[f"std/{name}"] = mean, std
    return stats


@dataclass
class Alarm:
    name: str
    step: int
    message: str

    @property
    def is_failure(self) -> bool:
        return self.name in FAILURES


def unstylised_threshold(style_layer_norm: str) -> float:
    """How near the photos' own style term a stylised network may stay: it depends on how the loss weighs
    its layers (BENCHMARKS.md "Health thresholds")."""
    return UNSTYLISED_PHOTOS if style_layer_norm == "photos" else UNSTYLISED


class HealthMonitor:
    """Checks the last batch's output, the interval's losses and the network's outputs of the preview photos at every
    log interval.

    `photos` and `styles` are the reference colour statistics: a cast or a grey output is judged
    against what the network was given, so a blue style may give blue outputs. With several style
    images the most lenient of them counts (the largest channel spread, the least saturation).
    """

    def __init__(
        self,
        mode: str,
        run_log: RunLog,
        steps: int,
        photos: torch.Tensor,
        styles: torch.Tensor | Sequence[torch.Tensor],
        resumed_total: float | None = None,
        content_distances: Callable[[torch.Tensor, torch.Tensor], tuple[float, float]] | None = None,
        style_reference: float | None = None,
        unstylised: float = UNSTYLISED,
    ) -> None:
        """`content_distances(outputs, photos)`: the content term of the network's outputs of `photos` against their
        own photos and against other photos (PerceptualLoss.content_to_own_and_other); a network whose outputs stay
        about as near another photo as their own has lost the content.
        `style_reference`: the style term of the photos themselves (an output that changes nothing); a network
        whose style term stays above `unstylised` of it has not learned the style (unstylised_threshold)."""
        if mode not in MODES:
            raise ValueError(f"health must be one of {', '.join(MODES)}, got '{mode}'")
        self.mode, self.run_log, self.steps = mode, run_log, steps
        each = [
            colour_statistics(style.unsqueeze(0) if style.dim() == 3 else style)
            for style in ([styles] if isinstance(styles, torch.Tensor) else styles)
        ]
        self.photos, self.photo_batch = colour_statistics(photos), photos
        self.style = {
            "channel_spread": max(stats["channel_spread"] for stats in each),
            "saturation": min(stats["saturation"] for stats in each),
        }
        self.resumed_total = resumed_total
        self.content_distances, self.style_reference = content_distances, style_reference
        self.unstylised = unstylised
        self.first_style: float | None = None
        self.raised: dict[str, Alarm] = {}

    @property
    def wants_outputs_of_photos(self) -> bool:
        """Whether check() uses the network's outputs of the monitor's photos (content_lost)."""
        return self.mode != "off" and self.content_distances is not None

    def check(
        self, step: int, output: torch.Tensor, losses: Mapping[str, float], photo_outputs: torch.Tensor | None = None
    ) -> list[Alarm]:
        """Log every signal; return the alarms raised at this check (each kind is warned about once).
        `photo_outputs`: the network's outputs of the monitor's photos now (wants_outputs_of_photos)."""
        stats = colour_statistics(output)
        for name in CHANNELS:
            self.run_log.scalar(f"output/mean/{name}", stats[f"mean/{name}"], step)
            self.run_log.scalar(f"output/std/{name}", stats[f"std/{name}"], step)
        if self.mode == "off":
            return []
        signals = {
            "output_spatial_std": stats["spatial_std"],
            "channel_spread": stats["channel_spread"],
            "saturation": stats["saturation"],
            "content_over_style": losses["content"] / max(losses["style"], 1e-12),
            "tv_over_content": losses["tv"] / max(losses["content"], 1e-12),
        }
        if self.style_reference:
            signals["style_over_photos"] = losses["style"] / self.style_reference
        if photo_outputs is not None and self.content_distances is not None:
            own, other = self.content_distances(photo_outputs, self.photo_batch)
            signals["content_own_over_other"] = own / max(other, 1e-12)
        for name, value in signals.items():
            self.run_log.scalar(f"health/{name}", value, step)

        found = self._detect(step, stats, losses, signals)
        for name in (*FAILURES, *ADVICE):
            self.run_log.scalar(f"health/alarm/{name}", float(name in found), step)
        new = [alarm for name, alarm in found.items() if name not in self.raised]
        for alarm in new:
            self.raised[alarm.name] = alarm
            log.warning("health: %s at step %d: %s", alarm.name, alarm.step, alarm.message)
        return new

    def _detect(
        self, step: int, stats: dict[str, float], losses: Mapping[str, float], signals: dict[str, float]
    ) -> dict[str, Alarm]:
        found: dict[str, Alarm] = {}

        def alarm(name: str, message: str) -> None:
            found[name] = Alarm(name, step, message)

        if stats["spatial_std"] < FLAT_STD:
            alarm(
                "collapse",
                f"the outputs are flat (spatial std {stats['spatial_std']:.4f} < {FLAT_STD}; the photos' is "
                f"{self.photos['spatial_std']:.3f}): the network returns one colour whatever the input. "
                f"Lower lr, or raise loss.content_weight",
            )
        reference_spread = max(self.photos["channel_spread"], self.style["channel_spread"])
        if stats["channel_spread"] > reference_spread + CAST_MARGIN:
            means = ", ".join(f"{name} {stats[f'mean/{name}']:.2f}" for name in CHANNELS)
            alarm(
                "colour_cast",
                f"one channel dominates the outputs (channel means {means}; spread "
                f"{stats['channel_spread']:.2f} against at most {reference_spread:.2f} in the photos "
                f"and the style)",
            )
        least_colourful = min(self.photos["saturation"], self.style["saturation"])
        if least_colourful >= COLOURFUL and stats["saturation"] < SATURATION_FRACTION * least_colourful:
            alarm(
                "saturation_collapse",
                f"the outputs lost their colour (mean saturation {stats['saturation']:.3f}; "
                f"photos {self.photos['saturation']:.3f}, style {self.style['saturation']:.3f})",
            )
        if self.resumed_total is not None:
            if losses["total"] > RESUME_JUMP * self.resumed_total:
                alarm(
                    "resume_jump",
                    f"the loss jumped after resuming: {losses['total']:.4g} against "
                    f"{self.resumed_total:.4g} when the snapshot was written. Was the data, loss "
                    f"or optimizer changed?",
                )
            self.resumed_total = None  # only the first interval after a resume can show the jump

        late = step >= max(self.steps // 2, LATE_STEP)
        if self.first_style is None:
            self.first_style = losses["style"]
        kept = signals.get("content_own_over_other")
        if late and kept is not None and kept > CONTENT_LOST:
            alarm(
                "content_lost",
                f"late in training the outputs of the preview photos are about as near (content term "
                f"{kept:.2f} of it; networks that keep their photos stay under {CONTENT_LOST:g}) to another photo "
                f"as to their own: they keep nothing of their photos, only the style's texture. Raise "
                f"loss.content_weight or lower loss.style_weight",
            )
        if late and self.style_reference and losses["style"] > self.unstylised * self.style_reference:
            alarm(
                "unstylised",
                f"late in training the style loss ({losses['style']:.4g}) is still "
                f"{losses['style'] / self.style_reference:.2f} of the photos' own ({self.style_reference:.4g}; "
                f"stylised outputs reach under {self.unstylised:g}): the network returns its photos almost "
                f"unchanged. Raise loss.style_weight or train longer",
            )
        if losses["style"] < STYLE_DROPPED * self.first_style and losses["content"] < CONTENT_SHARE * losses["style"]:
            alarm(
                "content_below_style",
                f"the style loss has dropped but the content loss ({losses['content']:.4g}) is "
                f"under {CONTENT_SHARE:g} of it ({losses['style']:.4g}): the content hardly counts, "
                f"so too little of it is learned; raise loss.content_weight or lower "
                f"loss.style_weight",
            )
        if late and losses["tv"] > losses["content"]:
            alarm(
                "tv_above_content",
                f"late in training the TV loss ({losses['tv']:.4g}) exceeds the content loss "
                f"({losses['content']:.4g}; about half is healthy): neighbouring colours blur "
                f"together; lower loss.tv_weight",
            )
        return found


def watch_run(
    mode: str,
    run_log: RunLog,
    steps: int,
    photos: torch.Tensor,
    styles: Sequence[torch.Tensor],
    loss_fn: PerceptualLoss,
    style_layer_norm: str,
    resumed_total: float | None = None,
) -> HealthMonitor:
    """The monitor of the preview `photos`: the network's outputs of them against their own photos and other photos
    (content_lost, at each check), and what "changes nothing" costs, measured here (unstylised: the photos' own
    style term, over every style)."""
    unchanged = (
        sum(
            loss_fn.style_term(photos, torch.full((len(photos),), index, device=photos.device))
            for index in range(loss_fn.num_styles)
        )
        / loss_fn.num_styles
    )
    return HealthMonitor(
        mode,
        run_log,
        steps,
        photos,
        styles,
        resumed_total,
        content_distances=loss_fn.content_to_own_and_other if len(photos) > 1 else None,
        style_reference=unchanged,
        unstylised=unstylised_threshold(style_layer_norm),
    )
