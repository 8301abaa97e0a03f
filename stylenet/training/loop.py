"""The training library behind python -m stylenet.train: the loop (fit), what it starts from (the
network, the data, the style schedule) and what it needs at step 0 (balanced style layers).

The method itself, per step: output = network(photos); loss = content + style + TV of the output
against the photos and the style's Gram matrices (PerceptualLoss); one optimiser step on the
network's weights (train_step). fit is three lines around it: the next batch (Batches, which also holds the
data position that makes resumes exact), train_step, and AfterStep (logging, health, previews, stopping,
snapshots).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from stylenet.common.errors import StylenetError
from stylenet.common.images import unit_float
from stylenet.common.runtime import Distributed
from stylenet.data.photos import (
    EpochSampler,
    TrainingBatch,
)
from stylenet.loss.equivariance import equivariance_loss, lattice_shift, moved
from stylenet.loss.perceptual import PER_IMAGE_STYLE
from stylenet.training.health import Alarm, HealthMonitor
from stylenet.training.monitor import RunLog, evaluating
from stylenet.training.snapshots import Position

log = logging.getLogger("stylenet.train")


class TrainingDiverged(StylenetError):
    """The loss or the weights became NaN or Inf: continuing would only write poisoned snapshots."""


@dataclass(frozen=True)
class StyleSchedule:
    """Which style each training image is for, in a network of several styles (Dumoulin et al. 2017).

    The styles take turns over the positions of the global batch: image g of the global batch at
    step s gets the loss's style (s * global batch + g) mod len(names). Every style gets an equal
    share of every step (to within one image), the choice depends on the position alone (so resumes
    are exact and all ranks agree), and the random data order decides which photo meets which style.
    The loss's style k is the network's style `network_styles[k]`: when styles are added to a trained
    network, only the new ones are trained.
    """

    names: tuple[str, ...]
    network_styles: tuple[int, ...]
    num_network_styles: int

    def assign(
        self, step: int, images: int, first: int, global_batch: int, device: torch.device
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The loss's style index (images,) and the network's one-hot style weights (images, styles)
        for `images` images starting at position `first` of the global batch of step `step`."""
        targets = (torch.arange(first, first + images) + step * global_batch) % len(self.names)
        weights = F.one_hot(torch.tensor(self.network_styles)[targets], self.num_network_styles).float()
        return targets.to(device), weights.to(device)

    def preview_weights(self, device: torch.device) -> torch.Tensor:
        """One-hot weights of each trained style, one row each."""
        return F.one_hot(torch.tensor(self.network_styles), self.num_network_styles).float().to(device)


@dataclass
class Interval:
    """Sums over the steps since the last log; kept as tensors so that the GPU is not waited for each step.
    Per-style sums and image counts too, for networks of several styles."""

    started: float = field(default_factory=time.perf_counter)
    steps: int = 0
    images: int = 0
    losses: dict[str, torch.Tensor] = field(default_factory=dict)
    grad_norm: torch.Tensor | float = 0.0
    style_sums: torch.Tensor | None = None
    style_counts: torch.Tensor | None = None

    def add(self, losses: dict[str, torch.Tensor], grad_norm: torch.Tensor, images: int) -> None:
        self.steps += 1
        self.images += images
        self.grad_norm = self.grad_norm + grad_norm.detach()
        for name, value in losses.items():
            self.losses[name] = self.losses.get(name, 0) + value.detach()

    def add_style_terms(self, per_image: torch.Tensor, style_index: torch.Tensor, num_styles: int) -> None:
        """Each image's style term, summed per style."""
        if self.style_sums is None or self.style_counts is None:
            self.style_sums = per_image.new_zeros(num_styles)
            self.style_counts = per_image.new_zeros(num_styles)
        self.style_sums.index_add_(0, style_index, per_image.detach().float())
        self.style_counts.index_add_(0, style_index, torch.ones_like(per_image, dtype=torch.float32))

    def style_means(self, names: Sequence[str], ranks: Distributed) -> dict[str, float]:
        """'per_style/<name>': the mean style term of the images given each style (over all ranks)."""
        if self.style_sums is None or self.style_counts is None:
            return {}
        sums, counts = ranks.mean(torch.stack([self.style_sums, self.style_counts])).tolist()
        return {f"per_style/{name}": total / count for name, total, count in zip(names, sums, counts) if count}


def unwrapped(model: nn.Module) -> nn.Module:
    """The network inside torch.compile's and DistributedDataParallel's wrappers."""
    model = getattr(model, "_orig_mod", model)
    return model.module if isinstance(model, DistributedDataParallel) else model


def finite_weights(model: nn.Module) -> bool:
    return bool(torch.stack([parameter.isfinite().all() for parameter in model.parameters()]).all())


@dataclass(frozen=True)
class Plan:
    """How far to train, and every how many steps to log, preview and write a snapshot."""

    steps: int
    log_interval: int
    preview_interval: int
    checkpoint_interval: int
    max_seconds: float | None = None  # max_minutes: end early, as at the last step, once the run has taken this long


@dataclass
class Reporting:
    """Where the loop reports: TensorBoard (with previews of fixed photos), snapshots, health, stop requests."""

    run_log: RunLog
    preview_photos: torch.Tensor
    save_snapshot: Callable[[Position, dict[str, float]], None]
    health: HealthMonitor | None = None
    should_stop: Callable[[], bool] = lambda: False


@dataclass(frozen=True)
class StepSettings:
    """How each step runs: device, bf16 autocast, memory format, ranks, the styles of a multi-style network, and
    the weight of the shift-equivariance term (stylenet.loss.equivariance)."""

    device: torch.device
    bf16: bool = False  # autocast to bfloat16 (common.precision.trains_in_bf16 of the `precision` option)
    memory_format: torch.memory_format = torch.contiguous_format
    ranks: Distributed = field(default_factory=Distributed)
    style_schedule: StyleSchedule | None = None
    equivariance_weight: float = 0.0


def train_step(
    model: nn.Module,
    loss_fn: Callable[..., dict[str, torch.Tensor]],
    optimizer: torch.optim.Optimizer,
    content: torch.Tensor,
    features: torch.Tensor | None,
    step: int,
    settings: StepSettings,
    interval: Interval,
) -> torch.Tensor:
    """One optimiser step on a batch of photos (float, [0, 1]); returns the output, adds the losses to `interval`."""
    ranks, schedule, equivariance = settings.ranks, settings.style_schedule, settings.equivariance_weight > 0
    shift = lattice_shift(step)
    # With the equivariance term the photos and the photos moved go through the network in one pass.
    photos = torch.cat([content, moved(content, shift)]) if equivariance else content
    with torch.autocast(settings.device.type, dtype=torch.bfloat16, enabled=settings.bf16):  # bf16: no loss scaling
        if schedule is None:
            pictures = model(photos)
            output = pictures[: len(content)]
            losses = loss_fn(output, content, content_features=features)
        else:
            style_index, style_weights = schedule.assign(
                step, len(content), ranks.rank * len(content), len(content) * ranks.world, settings.device
            )
            pictures = model(photos, style_weights.repeat(len(photos) // len(content), 1))
            output = pictures[: len(content)]
            losses = loss_fn(output, content, content_features=features, style_index=style_index)
            interval.add_style_terms(losses.pop(PER_IMAGE_STYLE), style_index, len(schedule.names))
        if equivariance:
            term = equivariance_loss(output, pictures[len(content) :], shift)
            losses["equivariance"] = settings.equivariance_weight * term
            losses["total"] = losses["total"] + losses["equivariance"]
    optimizer.zero_grad(set_to_none=True)
    losses["total"].backward()
    grad_norm = torch.nn.utils.get_total_norm([p.grad for p in model.parameters() if p.grad is not None])
    optimizer.step()
    interval.add(losses, grad_norm, len(content) * ranks.world)
    return output


class Batches:
    """The training batches and the run's place in its data (Position: step, epoch, offset), the one object a
    snapshot needs to resume exactly. Iterating yields (photos on the device, float in [0, 1]; precomputed
    content features or None) until `position.step`, which the loop advances, reaches `steps`. Unreadable
    images are skipped with one warning each; a whole pass that gives no batch is an error. Distributed: every
    rank skips a batch that is empty on any rank, so that all ranks step together."""

    def __init__(
        self,
        loader: Iterable[TrainingBatch],
        sampler: EpochSampler,
        position: Position,
        steps: int,
        settings: StepSettings,
    ) -> None:
        self.loader, self.sampler, self.position, self.steps, self.settings = loader, sampler, position, steps, settings
        self.unreadable: set[str] = set()
        self.waited = 0.0  # seconds spent waiting for the loader

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor | None]]:
        position, ranks, device = self.position, self.settings.ranks, self.settings.device
        while position.step < self.steps:
            if position.offset >= self.sampler.epoch_length:
                position.epoch, position.offset = position.epoch + 1, 0
            self.sampler.set_position(position.epoch, position.offset)
            whole_pass, stepped = position.offset == 0, False
            fetch_started = time.perf_counter()
            for batch, features, problems in self.loader:
                self.waited += time.perf_counter() - fetch_started
                position.offset += (len(batch) + len(problems)) * ranks.world
                for problem in sorted(set(problems) - self.unreadable):
                    self.unreadable.add(problem)
                    log.warning("skipped unreadable training image: %s", problem)
                if not ranks.any(batch.numel() == 0, device):
                    stepped = True
                    yield (
                        unit_float(batch.to(device, non_blocking=True)).contiguous(
                            memory_format=self.settings.memory_format
                        ),
                        None if features is None else features.to(device, non_blocking=True),
                    )
                    if position.step >= self.steps:
                        return
                fetch_started = time.perf_counter()
            if whole_pass and not stepped:
                raise StylenetError(
                    f"a whole pass over the data gave no usable batch ({len(self.unreadable)} unreadable images)"
                )


class AfterStep:
    """Everything the loop does after an optimiser step: the interval's mean losses to TensorBoard and the
    progress bar, health checks, previews, the ranks' joint decision to stop, snapshots. NaN or Inf in the
    loss or the weights raises TrainingDiverged before any snapshot of them is written."""

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        batches: Batches,
        plan: Plan,
        reporting: Reporting,
        settings: StepSettings,
    ) -> None:
        self.model, self.optimizer, self.batches, self.plan = model, optimizer, batches, plan
        self.reporting, self.settings = reporting, settings
        self.interval, self.waited_before = Interval(), 0.0
        self.last_losses: dict[str, float] = {}
        self.alarms: list[Alarm] = []
        self.stopped = False
        self.stopped_by: Alarm | None = None
        self.started, self.images = time.perf_counter(), 0
        self.progress = tqdm(
            total=plan.steps,
            initial=batches.position.step,
            desc="train",
            unit="step",
            dynamic_ncols=True,
            disable=not settings.ranks.is_main,
        )

    def __call__(self, output: torch.Tensor) -> bool:
        """Reports on the step just taken; True when the loop should end."""
        step, plan, ranks = self.batches.position.step, self.plan, self.settings.ranks
        last = step >= plan.steps
        if plan.max_seconds is not None and not last:
            last = ranks.any(time.perf_counter() - self.started >= plan.max_seconds, self.settings.device)
        self.images += len(output) * ranks.world
        if step % plan.log_interval == 0 or last:
            self.log(step, output)
        if step % plan.preview_interval == 0 or last:
            schedule = self.settings.style_schedule
            self.reporting.run_log.preview(
                unwrapped(self.model),
                self.reporting.preview_photos,
                step,
                None if schedule is None else schedule.preview_weights(self.settings.device),
            )
        self.stopped = ranks.any(self.reporting.should_stop() or self.stopped_by is not None, self.settings.device)
        if step % plan.checkpoint_interval == 0 or last or self.stopped:
            if not finite_weights(self.model):
                raise TrainingDiverged(f"the network's weights became NaN or Inf by step {step}")
            if ranks.is_main:
                self.reporting.save_snapshot(self.batches.position, self.last_losses)
        self.progress.update(1)
        return last or self.stopped

    def log(self, step: int, output: torch.Tensor) -> None:
        """The interval's mean losses (over ranks), speed and data wait to TensorBoard; then health."""
        interval, settings, run_log = self.interval, self.settings, self.reporting.run_log
        elapsed = max(time.perf_counter() - interval.started, 1e-9)
        names = list(interval.losses)
        sums = settings.ranks.mean(torch.stack([torch.as_tensor(interval.losses[name]) for name in names]))
        losses = {name: float(total) / interval.steps for name, total in zip(names, sums.tolist())}
        if settings.style_schedule is not None:
            losses.update(interval.style_means(settings.style_schedule.names, settings.ranks))
        if not all(math.isfinite(value) for value in losses.values()):
            raise TrainingDiverged(f"the loss became NaN or Inf by step {step}: {losses}")
        speed = interval.images / elapsed
        run_log.losses(losses, step)
        run_log.scalar("train/lr", self.optimizer.param_groups[0]["lr"], step)
        run_log.scalar("train/grad_norm", float(interval.grad_norm) / interval.steps, step)
        run_log.scalar("train/images_per_sec", speed, step)
        run_log.scalar("train/data_wait_share", (self.batches.waited - self.waited_before) / elapsed, step)
        self.progress.set_postfix(loss=f"{losses['total']:.4g}", img_s=f"{speed:.1f}")
        self.interval, self.waited_before, self.last_losses = Interval(), self.batches.waited, losses
        health = self.reporting.health
        if health is not None:
            raised = health.check(
                step, output, losses, self.outputs_of_photos() if health.wants_outputs_of_photos else None
            )
            self.alarms += raised
            failures = [alarm for alarm in raised if alarm.is_failure]
            if failures and health.mode == "stop":
                self.stopped_by = failures[0]

    def outputs_of_photos(self) -> torch.Tensor:
        """The network's outputs of the preview photos now, each in the next style of a network of several."""
        model, photos, schedule = unwrapped(self.model), self.reporting.preview_photos, self.settings.style_schedule
        with evaluating(model):
            if schedule is None:
                return model(photos).float()
            return model(photos, schedule.assign(0, len(photos), 0, len(photos), self.settings.device)[1]).float()

    def summary(self) -> RunSummary:
        self.progress.close()
        unreadable = self.batches.unreadable
        if unreadable:
            log.warning("%d unreadable training image(s) were skipped", len(unreadable))
        seconds = max(time.perf_counter() - self.started, 1e-9)
        stopped_by = self.stopped_by
        return RunSummary(
            steps=self.batches.position.step,
            images=self.images,
            seconds=round(seconds, 3),
            images_per_sec=round(self.images / seconds, 3),
            data_wait_share=round(self.batches.waited / seconds, 4),
            skipped_images=len(unreadable),
            final_losses=self.last_losses,
            health_alarms=[f"{alarm.name} at step {alarm.step}: {alarm.message}" for alarm in self.alarms],
            stopped_by_health=None if stopped_by is None else f"{stopped_by.name}: {stopped_by.message}",
            stopped=self.stopped,
        )


@dataclass
class RunSummary:
    """How a run went, as the network file records it (summary): where it ended, speed, the share of time spent
    waiting for data, the last interval's mean losses, health alarms, whether a stop was requested (SIGINT,
    SIGTERM) or the health monitor stopped the run."""

    steps: int
    images: int
    seconds: float
    images_per_sec: float
    data_wait_share: float
    skipped_images: int
    final_losses: dict[str, float]
    health_alarms: list[str]
    stopped_by_health: str | None
    stopped: bool


def fit(
    model: nn.Module,
    loss_fn: Callable[..., dict[str, torch.Tensor]],
    optimizer: torch.optim.Optimizer,
    batches: Batches,
    plan: Plan,
    reporting: Reporting,
    settings: StepSettings,
) -> RunSummary:
    """The training loop, from `batches.position` to `plan.steps`; returns how it went.

    Distributed (`settings.ranks.world` > 1, `model` wrapped in DistributedDataParallel): every rank runs this
    loop on its slice of each global batch; skipping a batch and stopping are decided by all ranks together;
    only rank 0 logs and saves."""
    model.train()
    after = AfterStep(model, optimizer, batches, plan, reporting, settings)
    for content, features in batches:
        output = train_step(
            model, loss_fn, optimizer, content, features, batches.position.step, settings, after.interval
        )
        batches.position.step += 1
        if after(output):
            break
    return after.summary()
