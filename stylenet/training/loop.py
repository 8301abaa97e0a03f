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
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader
from tqdm import tqdm

from stylenet.common.errors import StylenetError
from stylenet.common.images import pil_to_tensor, read_image, unit_float
from stylenet.common.runtime import Distributed
from stylenet.data.photos import (
    DataOptions,
    EpochSampler,
    ImageFolder,
    Photos,
    TrainingBatch,
    center_crop_resized,
    collate_skipping_unreadable,
    readable_batch,
)
from stylenet.data.precomputed import CachedImages, DeviceBatches, pass_batch_through
from stylenet.loss.perceptual import PER_IMAGE_STYLE, PerceptualLoss
from stylenet.nets.network_file import atomic_save, build_model, load_network_file, style_names
from stylenet.nets.transformer import TransformerNet
from stylenet.training.health import Alarm, HealthMonitor
from stylenet.training.monitor import RunLog
from stylenet.training.snapshots import Position

log = logging.getLogger("stylenet.train")


class TrainingDiverged(StylenetError):
    """The loss or the weights became NaN or Inf: continuing would only write poisoned checkpoints."""


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
    save_checkpoint: Callable[[Position, dict[str, float]], None]
    health: HealthMonitor | None = None
    should_stop: Callable[[], bool] = lambda: False


@dataclass(frozen=True)
class StepSettings:
    """How each step runs: device, bf16 autocast, memory format, ranks, and the styles of a multi-style network."""

    device: torch.device
    amp: bool = False
    memory_format: torch.memory_format = torch.contiguous_format
    ranks: Distributed = field(default_factory=Distributed)
    style_schedule: StyleSchedule | None = None


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
    ranks, schedule = settings.ranks, settings.style_schedule
    with torch.autocast(settings.device.type, dtype=torch.bfloat16, enabled=settings.amp):  # bf16: no loss scaling
        if schedule is None:
            output = model(content)
            losses = loss_fn(output, content, content_features=features)
        else:
            style_index, style_weights = schedule.assign(
                step, len(content), ranks.rank * len(content), len(content) * ranks.world, settings.device
            )
            output = model(content, style_weights)
            losses = loss_fn(output, content, content_features=features, style_index=style_index)
            interval.add_style_terms(losses.pop(PER_IMAGE_STYLE), style_index, len(schedule.names))
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
                self.reporting.save_checkpoint(self.batches.position, self.last_losses)
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
            raised = health.check(step, output, losses)
            self.alarms += raised
            failures = [alarm for alarm in raised if alarm.is_failure]
            if failures and health.mode == "stop":
                self.stopped_by = failures[0]

    def summary(self) -> dict[str, Any]:
        """Final losses (the last log interval's means), speed, the share of time spent waiting for data,
        health alarms, and whether a stop was requested or the health monitor stopped the run."""
        self.progress.close()
        unreadable = self.batches.unreadable
        if unreadable:
            log.warning("%d unreadable training image(s) were skipped", len(unreadable))
        seconds = max(time.perf_counter() - self.started, 1e-9)
        stopped_by = self.stopped_by
        return {
            "steps": self.batches.position.step,
            "images": self.images,
            "seconds": round(seconds, 3),
            "images_per_sec": round(self.images / seconds, 3),
            "data_wait_share": round(self.batches.waited / seconds, 4),
            "skipped_images": len(unreadable),
            "final_losses": self.last_losses,
            "health_alarms": [f"{alarm.name} at step {alarm.step}: {alarm.message}" for alarm in self.alarms],
            "stopped_by_health": None if stopped_by is None else f"{stopped_by.name}: {stopped_by.message}",
            "stopped": self.stopped,
        }


def fit(
    model: nn.Module,
    loss_fn: Callable[..., dict[str, torch.Tensor]],
    optimizer: torch.optim.Optimizer,
    batches: Batches,
    plan: Plan,
    reporting: Reporting,
    settings: StepSettings,
) -> dict[str, Any]:
    """The training loop, from `batches.position` to `plan.steps`; returns AfterStep.summary().

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


def preview_batch(dataset: Photos, paths: list[str], count: int) -> torch.Tensor:
    """Fixed photos for previews: the given paths, else the first `count` readable training images; each the
    central square at the scale the network learns to paint (data.photo_size where set)."""
    size = getattr(dataset, "photo_size", None) or dataset.image_size
    if paths or size != dataset.image_size:
        paths = paths or [str(path) for path in getattr(dataset, "files", [])[:count]]
        try:
            photos = [pil_to_tensor(center_crop_resized(read_image(path), size)) for path in paths]
        except StylenetError as error:
            raise StylenetError(f"preview.images: {error}") from None
        return torch.stack(photos)
    return readable_batch(dataset, count)


def open_training_data(data: DataOptions, loss_fn: PerceptualLoss) -> tuple[ImageFolder | CachedImages, Callable]:
    """The cache in data.cache (refused unless made for this loss and crop size), else the images in
    data.root; with the collate_fn that goes with it."""
    if not data.cache:
        if data.root is None:
            raise StylenetError("data.root: give the folder of training photos (or data.cache, a precomputed cache)")
        dataset = ImageFolder(data.root, data.image_size, photo_size=data.photo_size)
        log.info("%d training images in %s", len(dataset), dataset.root)
        return dataset, collate_skipping_unreadable
    cached = CachedImages(data.cache)
    cached.require_for(loss_fn.encoder, loss_fn.content_layer, data.image_size)
    layer = loss_fn.content_layer
    what = f"and {layer} features (no content VGG pass)" if cached.has_features else "(images only)"
    log.info("%d training images from the cache in %s %s", len(cached), cached.root, what)
    return cached, pass_batch_through


def make_loader(
    dataset: ImageFolder | CachedImages,
    collate: Callable,
    sampler: EpochSampler,
    batch_size: int,
    workers: int,
    on_device: bool,
    device: torch.device,
) -> DataLoader | DeviceBatches:
    """Batches of the sampler's order: a DataLoader (worker processes decode or read the cache), or with
    data.cache_on_device the whole cache in the device's memory (cache.DeviceBatches)."""
    if on_device:
        if not isinstance(dataset, CachedImages):
            raise StylenetError(
                "data.cache_on_device=true needs data.cache=<folder>, a cache made by python -m stylenet.precompute"
            )
        log.info("the cache is held in %s memory: batches are indexed there", device)
        return DeviceBatches(dataset, sampler, batch_size, device)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=workers,
        persistent_workers=workers > 0,
        pin_memory=device.type == "cuda",
        collate_fn=collate,
    )


def total_steps(steps: int, epochs: int | None, batches_per_epoch: int) -> int:
    """`steps`, or with `epochs` that many passes over the data."""
    total = epochs * batches_per_epoch if epochs else steps
    if total < 1:
        raise StylenetError(f"nothing to train: steps={steps}, epochs={epochs}")
    return int(total)


def balance_style_layers(
    loss_fn: PerceptualLoss,
    model: nn.Module,
    loader: Iterable[TrainingBatch],
    device: torch.device,
    ranks: Distributed,
    style_schedule: StyleSchedule | None,
    mode: str,
) -> None:
    """loss.style_layer_norm=auto: weigh the style layers by the untrained network's output on the first
    (global) training batch; =photos: by the batch's photos themselves (PerceptualLoss.relative_to_photos).
    Each image is measured against the style the schedule gives it at step 0."""
    batch, _, _ = next(batch for batch in loader if batch[0].numel() > 0)
    content = unit_float(batch.to(device))
    with torch.no_grad():
        if style_schedule is None:
            raw = loss_fn.style_layer_losses(content if mode == "photos" else model(content))
        else:
            style_index, style_weights = style_schedule.assign(
                0, len(content), ranks.rank * len(content), len(content) * ranks.world, device
            )
            raw = loss_fn.style_layer_losses(
                content if mode == "photos" else model(content, style_weights), style_index
            )
    averaged = dict(zip(raw, ranks.mean(torch.tensor(list(raw.values()), dtype=torch.float64, device=device)).tolist()))
    before = dict(loss_fn.style_layer_weights)
    after = loss_fn.normalise_style_layers(mode, averaged)
    log.info(
        "style_layer_norm=%s: style layer weights %s (were %s)",
        mode,
        {name: f"{value:.4g}" for name, value in after.items()},
        before,
    )


@dataclass
class TrainingNetwork:
    """What training starts from: the network, its constructor config, the names of all its styles,
    the name it is published under, and the style schedule (None for a network of one style)."""

    model: TransformerNet
    model_cfg: dict[str, Any]
    style_names: list[str]
    name: str
    style_schedule: StyleSchedule | None


def build_network(
    model_options: Mapping[str, Any], names: list[str], style_name: str, add_style_to: str | None = None
) -> TrainingNetwork:
    """A new network (TransformerNet(**model_options)) with one style per style image, published as
    `style_name`; or, with add_style_to, that trained network grown by these styles, everything but the new
    styles' normalisation parameters frozen (so the styles it had stay bit for bit the same), published as
    '<its name>+<style_name>'."""
    if add_style_to:
        payload = load_network_file(add_style_to)
        existing = style_names(payload)
        clashes = [name for name in names if name in existing]
        if clashes:
            raise StylenetError(
                f"{add_style_to} already has style(s) {', '.join(clashes)} "
                f"(it has {', '.join(existing)}): name the new one with style.name=..."
            )
        model = build_model(payload, add_style_to)
        if not model.norms():
            raise StylenetError(
                f"{add_style_to} has no instance norm (model_cfg {payload['model_cfg']}), where added styles would live"
            )
        trained = model.add_styles(len(names))
        model.requires_grad_(False)
        for parameter in model.style_parameters(trained):
            parameter.requires_grad_(True)
        log.info(
            "adding style(s) %s to %s (styles %s): only their normalisation parameters are trained; "
            "the network comes from that file, model options are not used",
            names,
            add_style_to,
            existing,
        )
        model_cfg = {**payload["model_cfg"], "num_styles": model.num_styles}
        all_names, published = existing + names, f"{payload['style']}+{style_name}"
    else:
        model_cfg = dict(model_options)
        requested = model_cfg.get("num_styles")
        if requested is not None and requested != len(names):
            raise StylenetError(
                f"model.num_styles={requested}, but style '{style_name}' has {len(names)} image(s); "
                f"leave model.num_styles=null to have one style per image"
            )
        model_cfg["num_styles"] = len(names)
        try:
            model = TransformerNet(**model_cfg)
        except (TypeError, ValueError) as error:
            raise StylenetError(f"model config {model_cfg}: {error}") from None
        trained, all_names, published = list(range(len(names))), names, style_name
    schedule = None if model.num_styles == 1 else StyleSchedule(tuple(names), tuple(trained), model.num_styles)
    return TrainingNetwork(model, model_cfg, all_names, published, schedule)


COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


def load_teacher(name: str, model: TransformerNet, device: torch.device) -> torch.nn.Module:
    """The network whose pictures distillation learns (stylenet.loss.perceptual.Distilled): one style, like the student."""
    payload = load_network_file(name)
    teacher = build_model(payload, name)
    if teacher.num_styles > 1 or model.num_styles > 1:
        raise StylenetError(
            f"distill.teacher={name}: distillation trains one style from a network of one style "
            f"(the teacher has {teacher.num_styles}, the trained network {model.num_styles})"
        )
    log.info("distillation: learning the pictures of %s (style %s) as well as the loss", name, payload["style"])
    return teacher.to(device)


def compile_mode(setting: bool | str) -> str | None:
    """conf/train.yaml's `compile`: false, true (torch.compile's default mode) or a mode's name."""
    if setting is False:
        return None
    if setting is True:
        return "default"
    if setting not in COMPILE_MODES:
        raise StylenetError(f"compile must be true, false or one of {', '.join(COMPILE_MODES)}, got '{setting}'")
    return setting


def publish(checkpoint_dir: Path, run_dir: Path, name: str, payload: dict[str, Any]) -> None:
    """The inference file in checkpoint_dir, and a copy in the run folder that a later run cannot replace."""
    run_copy, published = run_dir / f"{name}.pt", checkpoint_dir / f"{name}.pt"
    atomic_save(payload, run_copy)
    try:
        atomic_save(payload, published)
    except StylenetError as error:
        raise StylenetError(f"{error}; the trained network is safe in {run_copy}") from None
    summary = payload["summary"]
    log.info("final losses: %s", {key: f"{value:.4g}" for key, value in summary["final_losses"].items()})
    if summary["health_alarms"]:
        log.warning("health alarms during this run: %s", "; ".join(summary["health_alarms"]))
    log.info("wrote %s (a copy stays in %s)", published, run_copy)
