"""python -m stylenet.train: train a transform network for one style against the frozen VGG loss."""

from __future__ import annotations

import logging
import math
import platform
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Sequence

import hydra
import torch
import torch.nn.functional as F
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader
from tqdm import tqdm

from stylenet.cache import CachedImages, pass_batch_through
from stylenet.checkpoint import (atomic_save, build_model, differences, inference_payload, latest_training_checkpoint,
                                 load_checkpoint, style_names, training_payload)
from stylenet.configs import require_whole_numbers
from stylenet.data import (EpochSampler, ImageFolder, center_crop_resized, collate_skipping_unreadable,
                           load_style_images, readable_batch)
from stylenet.errors import StylenetError, exits_cleanly
from stylenet.health import MODES, Alarm, HealthMonitor
from stylenet.images import pil_to_tensor, read_image
from stylenet.losses import PER_IMAGE_STYLE, STYLE_LAYER_NORMS, PerceptualLoss, perceptual_loss_from_config
from stylenet.models import TransformerNet
from stylenet.monitor import RunLog
from stylenet.runtime import Distributed, StopRequest, quiet_logging, seed_everything, start_distributed

log = logging.getLogger("stylenet.train")


@dataclass
class Position:
    """Where training is: steps taken, and items of the current epoch's order already used."""

    step: int = 0
    epoch: int = 0
    offset: int = 0


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

    def assign(self, step: int, images: int, first: int, global_batch: int,
               device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
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
    data_seconds: float = 0.0
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

    def add_styles(self, per_image: torch.Tensor, style_index: torch.Tensor, num_styles: int) -> None:
        """Each image's style term, summed per style."""
        if self.style_sums is None:
            self.style_sums = per_image.new_zeros(num_styles)
            self.style_counts = per_image.new_zeros(num_styles)
        self.style_sums.index_add_(0, style_index, per_image.detach().float())
        self.style_counts.index_add_(0, style_index, torch.ones_like(per_image, dtype=torch.float32))

    def style_means(self, names: Sequence[str], ranks: Distributed) -> dict[str, float]:
        """'per_style/<name>': the mean style term of the images given each style (over all ranks)."""
        if self.style_sums is None:
            return {}
        sums, counts = ranks.mean(torch.stack([self.style_sums, self.style_counts])).tolist()
        return {f"per_style/{name}": total / count for name, total, count in zip(names, sums, counts) if count}


def unwrapped(model: nn.Module) -> nn.Module:
    """The network inside torch.compile's and DistributedDataParallel's wrappers."""
    model = getattr(model, "_orig_mod", model)
    return model.module if isinstance(model, DistributedDataParallel) else model


def finite_weights(model: nn.Module) -> bool:
    return bool(torch.stack([parameter.isfinite().all() for parameter in model.parameters()]).all())


def fit(model: nn.Module, loss_fn: Callable[..., dict[str, torch.Tensor]], loader: DataLoader, sampler: EpochSampler,
        optimizer: torch.optim.Optimizer, *, position: Position, steps: int, device: torch.device,
        run_log: RunLog, preview_photos: torch.Tensor, log_interval: int, preview_interval: int,
        checkpoint_interval: int, save_checkpoint: Callable[[Position, dict[str, float]], None], amp: bool,
        memory_format: torch.memory_format = torch.contiguous_format,
        should_stop: Callable[[], bool] = lambda: False, health: HealthMonitor | None = None,
        ranks: Distributed = Distributed(), styles: StyleSchedule | None = None) -> dict[str, Any]:
    """The training loop, from `position` to `steps`; returns a summary (final losses averaged over the
    last log interval, speed, the share of time spent waiting for data, health alarms, and whether a
    stop was requested or the health monitor stopped the run).

    `loader` yields data.TrainingBatch tuples: with precomputed content features the loss skips the
    content images' VGG pass. `styles`: a network of several styles gives each image the style
    StyleSchedule assigns it, and the loss of each style is logged (loss/per_style/<name>). NaN or
    Inf in the loss or the weights raises TrainingDiverged before any checkpoint of them is
    written, so the last snapshot on disk stays a good one.

    Distributed (`ranks.world` > 1, `model` wrapped in DistributedDataParallel): every rank runs this
    loop on its slice of each global batch; logged losses are averaged over the ranks; skipping a
    step and stopping are decided by all ranks together; only rank 0 logs and saves."""
    model.train()
    images_seen, data_seconds = 0, 0.0
    interval = Interval()
    last_losses: dict[str, float] = {}
    unreadable: set[str] = set()
    alarms: list[Alarm] = []
    stopped, stopped_by = False, None
    started = time.perf_counter()
    progress = tqdm(total=steps, initial=position.step, desc="train", unit="step", dynamic_ncols=True,
                    disable=not ranks.is_main)
    while position.step < steps and not stopped:
        if position.offset >= sampler.epoch_length:
            position.epoch, position.offset = position.epoch + 1, 0
        sampler.set_position(position.epoch, position.offset)
        steps_before_epoch, whole_epoch = position.step, position.offset == 0
        fetch_started = time.perf_counter()
        for batch, features, problems in loader:
            interval.data_seconds += time.perf_counter() - fetch_started
            position.offset += (len(batch) + len(problems)) * ranks.world
            for problem in problems:
                if problem not in unreadable:
                    unreadable.add(problem)
                    log.warning("skipped unreadable training image: %s", problem)
            if ranks.any(batch.numel() == 0, device):  # every rank steps, or none
                fetch_started = time.perf_counter()
                continue
            content = batch.to(device, non_blocking=True).float().div_(255.0).contiguous(memory_format=memory_format)
            if features is not None:
                features = features.to(device, non_blocking=True)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):  # bf16: no loss scaling needed
                if styles is None:
                    output = model(content)
                    losses = loss_fn(output, content, content_features=features)
                else:
                    style_index, style_weights = styles.assign(position.step, len(content), ranks.rank * len(content),
                                                               len(content) * ranks.world, device)
                    output = model(content, style_weights)
                    losses = loss_fn(output, content, content_features=features, style_index=style_index)
                    interval.add_styles(losses.pop(PER_IMAGE_STYLE), style_index, len(styles.names))
            optimizer.zero_grad(set_to_none=True)
            losses["total"].backward()
            grad_norm = torch.nn.utils.get_total_norm([p.grad for p in model.parameters() if p.grad is not None])
            optimizer.step()
            position.step += 1
            step = position.step
            images_seen += len(content) * ranks.world
            interval.add(losses, grad_norm, len(content) * ranks.world)

            if step % log_interval == 0 or step == steps:
                elapsed = time.perf_counter() - interval.started
                names = list(interval.losses)
                sums = ranks.mean(torch.stack([torch.as_tensor(interval.losses[name]) for name in names]))
                last_losses = {name: float(total) / interval.steps for name, total in zip(names, sums.tolist())}
                if styles is not None:
                    last_losses.update(interval.style_means(styles.names, ranks))
                if not all(math.isfinite(value) for value in last_losses.values()):
                    raise TrainingDiverged(f"the loss became NaN or Inf by step {step}: {last_losses}")
                speed = interval.images / max(elapsed, 1e-9)
                run_log.losses(last_losses, step)
                run_log.scalar("train/lr", optimizer.param_groups[0]["lr"], step)
                run_log.scalar("train/grad_norm", float(interval.grad_norm) / interval.steps, step)
                run_log.scalar("train/images_per_sec", speed, step)
                run_log.scalar("train/data_wait_share", interval.data_seconds / max(elapsed, 1e-9), step)
                progress.set_postfix(loss=f"{last_losses['total']:.4g}", img_s=f"{speed:.1f}")
                data_seconds += interval.data_seconds
                interval = Interval()
                if health is not None:
                    raised = health.check(step, output, last_losses)
                    alarms += raised
                    failures = [alarm for alarm in raised if alarm.is_failure]
                    if failures and health.mode == "stop":
                        stopped_by = failures[0]
            if step % preview_interval == 0 or step == steps:
                run_log.preview(unwrapped(model), preview_photos, step,
                                None if styles is None else styles.preview_weights(device))
            stopped = ranks.any(should_stop() or stopped_by is not None, device)
            if step % checkpoint_interval == 0 or step == steps or stopped:
                if not finite_weights(model):
                    raise TrainingDiverged(f"the network's weights became NaN or Inf by step {step}")
                if ranks.is_main:
                    save_checkpoint(position, last_losses)
            progress.update(1)
            if step >= steps or stopped:
                break
            fetch_started = time.perf_counter()
        else:
            if whole_epoch and position.step == steps_before_epoch:
                raise StylenetError(f"a whole pass over the data gave no usable batch ({len(unreadable)} unreadable images)")
    progress.close()
    if unreadable:
        log.warning("%d unreadable training image(s) were skipped", len(unreadable))
    seconds = time.perf_counter() - started
    data_seconds += interval.data_seconds
    return {
        "steps": position.step,
        "images": images_seen,
        "seconds": round(seconds, 3),
        "images_per_sec": round(images_seen / max(seconds, 1e-9), 3),
        "data_wait_share": round(data_seconds / max(seconds, 1e-9), 4),
        "skipped_images": len(unreadable),
        "final_losses": last_losses,
        "health_alarms": [f"{alarm.name} at step {alarm.step}: {alarm.message}" for alarm in alarms],
        "stopped_by_health": None if stopped_by is None else f"{stopped_by.name}: {stopped_by.message}",
        "stopped": stopped,
    }


def preview_batch(dataset: ImageFolder, paths: list[str], count: int) -> torch.Tensor:
    """Fixed photos for previews: the given paths, else the first `count` readable training images."""
    if paths:
        try:
            photos = [pil_to_tensor(center_crop_resized(read_image(path), dataset.image_size)) for path in paths]
        except StylenetError as error:
            raise StylenetError(f"preview.images: {error}") from None
        return torch.stack(photos)
    return readable_batch(dataset, count)


POSITIVE_OPTIONS = ("data.image_size", "data.batch_size", "style.size", "log_interval", "preview.interval",
                    "preview.count", "checkpoint_interval", "keep_checkpoints")


def open_training_data(data_cfg: DictConfig, loss_cfg: DictConfig) -> tuple[ImageFolder | CachedImages, Callable]:
    """The cache in data.cache (refused unless made for this config), else the images in data.root;
    with the collate_fn that goes with it."""
    if not data_cfg.cache:
        dataset = ImageFolder(data_cfg.root, data_cfg.image_size)
        log.info("%d training images in %s", len(dataset), dataset.root)
        return dataset, collate_skipping_unreadable
    cached = CachedImages(data_cfg.cache)
    cached.require(image_size=data_cfg.image_size, network=loss_cfg.network, pooling=loss_cfg.pooling,
                   content_layer=loss_cfg.content_layer)
    what = f"and {loss_cfg.content_layer} features (no content VGG pass)" if cached.has_features else "(images only)"
    log.info("%d training images from the cache in %s %s", len(cached), cached.root, what)
    return cached, pass_batch_through


def total_steps(cfg: DictConfig, batches_per_epoch: int) -> int:
    steps = cfg.epochs * batches_per_epoch if cfg.epochs else cfg.steps
    if steps < 1:
        raise StylenetError(f"nothing to train: steps={cfg.steps}, epochs={cfg.epochs}")
    return int(steps)


def fingerprint(cfg: DictConfig) -> dict[str, Any]:
    """What must match for a checkpoint to continue this run: not steps, intervals or workers."""
    resolved: dict[str, Any] = OmegaConf.to_container(cfg, resolve=True)  # type: ignore[assignment]
    kept = {key: resolved[key] for key in ("style", "model", "loss", "seed", "optimizer", "add_style_to")}
    data = resolved["data"]
    kept["data"] = {"source": data["cache"] or data["root"], "image_size": data["image_size"],
                    "batch_size": data["batch_size"]}
    return kept


def find_resume(resume: str | None, run_dir: Path, current: dict[str, Any]) -> tuple[Path, dict[str, Any]] | None:
    """resume=auto: the newest checkpoint of a run with this config next to this run; resume=<path>: that file."""
    if not resume:
        return None
    if resume == "auto":
        found = latest_training_checkpoint(run_dir.parent, current)
        if found is None:
            log.info("resume=auto: no earlier run of this config in %s; starting from step 0", run_dir.parent)
        return found
    payload = load_checkpoint(resume, kind="training")
    mismatches = differences(payload.get("fingerprint", {}), current)
    if mismatches:
        raise StylenetError(f"cannot resume from {resume}: its run had another config: " + "; ".join(mismatches))
    return Path(resume), payload


def restore(payload: dict[str, Any], model: nn.Module, optimizer: torch.optim.Optimizer,
            loss_fn: PerceptualLoss) -> Position:
    """Put a training snapshot back: weights, optimizer, generators, style layer weights, data position."""
    model.load_state_dict(payload["model"])
    optimizer.load_state_dict(payload["optimizer"])
    torch.set_rng_state(payload["rng"]["torch"])
    if payload["rng"]["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(payload["rng"]["cuda"])
    loss_fn.style_layer_weights = dict(payload.get("style_layer_weights", loss_fn.style_layer_weights))
    return Position(payload["step"], payload["epoch"], payload["offset"])


def balance_style_layers(loss_fn: PerceptualLoss, model: nn.Module, loader: DataLoader, device: torch.device,
                         ranks: Distributed, styles: StyleSchedule | None) -> None:
    """loss.style_layer_norm=auto: weigh the style layers by the untrained network's first (global) training
    batch, each image against the style the schedule gives it at step 0."""
    batch, _, _ = next(batch for batch in loader if batch[0].numel() > 0)
    content = batch.to(device).float().div_(255.0)
    with torch.no_grad():
        if styles is None:
            raw = loss_fn.style_layer_losses(model(content))
        else:
            style_index, style_weights = styles.assign(0, len(content), ranks.rank * len(content),
                                                       len(content) * ranks.world, device)
            raw = loss_fn.style_layer_losses(model(content, style_weights), style_index)
    averaged = ranks.mean(torch.tensor(list(raw.values()), dtype=torch.float64, device=device)).tolist()
    before = dict(loss_fn.style_layer_weights)
    after = loss_fn.balance_style_layers(dict(zip(raw, averaged)))
    log.info("style_layer_norm=auto: style layer weights %s (were %s)",
             {name: f"{value:.4g}" for name, value in after.items()}, before)


def hyperparameters(cfg: DictConfig) -> dict[str, Any]:
    """What TensorBoard's HParams tab compares runs by: the config choices and the numbers people tune."""
    choices = HydraConfig.get().runtime.choices
    return {
        "style": str(cfg.style.name), "model": choices.get("model"), "loss": choices.get("loss"),
        "content_layer": str(cfg.loss.content_layer), "content_weight": float(cfg.loss.content_weight),
        "style_weight": float(cfg.loss.style_weight), "tv_weight": float(cfg.loss.tv_weight),
        "style_layer_norm": str(cfg.loss.style_layer_norm), "lr": float(cfg.lr), "batch_size": int(cfg.data.batch_size),
        "image_size": int(cfg.data.image_size), "style_size": int(cfg.style.size), "seed": int(cfg.seed),
        "add_style_to": str(cfg.add_style_to),
        "optimizer": str(cfg.optimizer._target_),
    }


@dataclass
class TrainingNetwork:
    """What training starts from: the network, its constructor config, the names of all its styles,
    the name it is published under, and the style schedule (None for a network of one style)."""

    model: TransformerNet
    model_cfg: dict[str, Any]
    style_names: list[str]
    name: str
    styles: StyleSchedule | None


def build_network(cfg: DictConfig, names: list[str]) -> TrainingNetwork:
    """A new network with one style per style image; or, with add_style_to, that trained network grown
    by these styles, everything but the new styles' normalisation parameters frozen (so the styles it
    had stay bit for bit the same), published as '<its name>+<style.name>'."""
    if cfg.add_style_to:
        payload = load_checkpoint(cfg.add_style_to, kind="inference")
        existing = style_names(payload)
        clashes = [name for name in names if name in existing]
        if clashes:
            raise StylenetError(f"{cfg.add_style_to} already has style(s) {', '.join(clashes)} "
                                f"(it has {', '.join(existing)}): name the new one with style.name=...")
        model = build_model(payload, cfg.add_style_to)
        if not model.norms():
            raise StylenetError(f"{cfg.add_style_to} has no instance norm (model_cfg {payload['model_cfg']}), "
                                f"where added styles would live")
        trained = model.add_styles(len(names))
        model.requires_grad_(False)
        for parameter in model.style_parameters(trained):
            parameter.requires_grad_(True)
        log.info("adding style(s) %s to %s (styles %s): only their normalisation parameters are trained; "
                 "the network comes from that file, model options are not used", names, cfg.add_style_to, existing)
        model_cfg = {**payload["model_cfg"], "num_styles": model.num_styles}
        all_names, published = existing + names, f"{payload['style']}+{cfg.style.name}"
    else:
        model_cfg = OmegaConf.to_container(cfg.model, resolve=True)  # type: ignore[assignment]
        requested = model_cfg.get("num_styles")
        if requested is not None and requested != len(names):
            raise StylenetError(f"model.num_styles={requested}, but style '{cfg.style.name}' has {len(names)} image(s); "
                                f"leave model.num_styles=null to have one style per image")
        model_cfg["num_styles"] = len(names)
        try:
            model = TransformerNet(**model_cfg)
        except (TypeError, ValueError) as error:
            raise StylenetError(f"model config {model_cfg}: {error}") from None
        trained, all_names, published = list(range(len(names))), names, str(cfg.style.name)
    schedule = None if model.num_styles == 1 else StyleSchedule(tuple(names), tuple(trained), model.num_styles)
    return TrainingNetwork(model, model_cfg, all_names, published, schedule)


PRECISIONS = ("auto", "bf16", "fp32")
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


def compile_mode(setting: bool | str) -> str | None:
    """conf/train.yaml's `compile`: false, true (torch.compile's default mode) or a mode's name."""
    if setting is False:
        return None
    if setting is True:
        return "default"
    if setting not in COMPILE_MODES:
        raise StylenetError(f"compile must be true, false or one of {', '.join(COMPILE_MODES)}, got '{setting}'")
    return setting


def check_choices(cfg: DictConfig) -> None:
    if cfg.precision not in PRECISIONS:
        raise StylenetError(f"precision must be one of {', '.join(PRECISIONS)}, got '{cfg.precision}'")
    compile_mode(cfg.compile)
    if cfg.health not in MODES:
        raise StylenetError(f"health must be one of {', '.join(MODES)}, got '{cfg.health}'")
    if cfg.loss.style_layer_norm not in STYLE_LAYER_NORMS:
        raise StylenetError(f"loss.style_layer_norm must be one of {', '.join(STYLE_LAYER_NORMS)}, "
                            f"got '{cfg.loss.style_layer_norm}'")


@hydra.main(version_base="1.3", config_path="../conf", config_name="train")
@exits_cleanly
def main(cfg: DictConfig) -> None:
    ranks, device = start_distributed(cfg.device)
    try:
        train(cfg, ranks, device)
    finally:
        ranks.close()


def train(cfg: DictConfig, ranks: Distributed, device: torch.device) -> None:
    if not ranks.is_main:
        quiet_logging()
    # Every rank uses rank 0's run folder (Hydra's ${now} may differ by a second between processes).
    run_dir = Path(str(ranks.from_main(HydraConfig.get().runtime.output_dir)))
    seed_everything(cfg.seed)
    bf16 = cfg.precision == "bf16" or (cfg.precision == "auto" and device.type == "cuda")
    log.info("run directory: %s; device: %s%s", run_dir, device,
             f"; {ranks.world} ranks, {cfg.data.batch_size // ranks.world} images per rank" if ranks.world > 1 else "")

    # Cheap checks that can fail come first: options, data and style image, before any network is built.
    require_whole_numbers(cfg, positive=POSITIVE_OPTIONS, non_negative=("data.workers",))
    check_choices(cfg)
    if cfg.data.batch_size % ranks.world:
        raise StylenetError(f"data.batch_size={cfg.data.batch_size} is the global batch: it must divide evenly "
                            f"between the {ranks.world} ranks")
    dataset, collate = open_training_data(cfg.data, cfg.loss)
    names, style_images = load_style_images(cfg.style)
    style_images = [image.to(device) for image in style_images]
    preview_photos = preview_batch(dataset, list(cfg.preview.images), cfg.preview.count).to(device)
    current = fingerprint(cfg)
    resume_from = find_resume(cfg.resume, run_dir, current)

    # The loss first: with random VGG weights (tests), its weights then come from the seed alone, as in precompute.
    loss_fn = perceptual_loss_from_config(cfg.loss, style_images)
    if isinstance(dataset, CachedImages):
        dataset.require(digest=loss_fn.encoder.digest(loss_fn.content_layer), weights=loss_fn.encoder.weights_id)
    network = build_network(cfg, names)
    model, model_cfg, styles, style_name = network.model.to(device), network.model_cfg, network.styles, network.name
    if styles is not None:
        log.info("%d styles in one network; training %s", model.num_styles, ", ".join(styles.names))
    optimizer = instantiate(cfg.optimizer, params=[parameter for parameter in model.parameters() if parameter.requires_grad])
    per_rank = cfg.data.batch_size // ranks.world
    sampler = EpochSampler(len(dataset), cfg.seed, ranks.rank, ranks.world, per_rank)
    loader = DataLoader(dataset, batch_size=per_rank, sampler=sampler, num_workers=cfg.data.workers,
                        persistent_workers=cfg.data.workers > 0, pin_memory=device.type == "cuda",
                        collate_fn=collate)
    steps = total_steps(cfg, len(loader))

    position, resumed_total = Position(), None
    if resume_from is not None:
        path, payload = resume_from
        position = restore(payload, model, optimizer, loss_fn)
        resumed_total = payload.get("last_losses", {}).get("total")
        log.info("resuming from step %d of %s", position.step, path)
    elif cfg.loss.style_layer_norm == "auto":
        balance_style_layers(loss_fn, model, loader, device, ranks, styles)

    checkpoint_folder = run_dir / "checkpoints"

    def save_training_checkpoint(at: Position, last_losses: dict[str, float]) -> None:
        atomic_save(training_payload(model, optimizer, model_cfg, style_name, current, at.step, at.epoch, at.offset,
                                     last_losses=last_losses, style_layer_weights=loss_fn.style_layer_weights),
                    checkpoint_folder / f"step_{at.step:07d}.pt")
        for old in sorted(checkpoint_folder.glob("step_*.pt"))[: -cfg.keep_checkpoints]:
            old.unlink()

    run_log = RunLog(run_dir, enabled=ranks.is_main)
    # What "keeps nothing of the photo" costs (health: content_lost): the content term of each preview photo
    # against another one, an output with a photo's statistics but none of this photo's content.
    unrelated = (loss_fn.content_term(preview_photos.roll(1, 0), preview_photos) if len(preview_photos) > 1
                 else None)
    health = HealthMonitor(cfg.health, run_log, steps, preview_photos, style_images, resumed_total,
                           balanced_layers=cfg.loss.style_layer_norm == "auto",
                           content_reference=unrelated) if ranks.is_main else None
    memory_format = torch.channels_last if cfg.channels_last else torch.contiguous_format
    model.to(memory_format=memory_format)
    loss_fn.to(memory_format=memory_format)
    trained = model if ranks.world == 1 else DistributedDataParallel(
        model, device_ids=[device.index] if device.type == "cuda" else None)
    step_loss: Callable[..., dict[str, torch.Tensor]] = loss_fn
    mode = compile_mode(cfg.compile)
    if mode is not None:
        trained, step_loss = torch.compile(trained, mode=mode), torch.compile(loss_fn, mode=mode)
    try:
        with StopRequest() as stop:
            summary = fit(trained, step_loss, loader, sampler, optimizer, position=position, steps=steps, device=device,
                          run_log=run_log, preview_photos=preview_photos, log_interval=cfg.log_interval,
                          preview_interval=cfg.preview.interval, checkpoint_interval=cfg.checkpoint_interval,
                          save_checkpoint=save_training_checkpoint, amp=bf16, memory_format=memory_format,
                          should_stop=stop.event.is_set, health=health, ranks=ranks, styles=styles)
        if not summary["stopped"]:
            run_log.hparams(hyperparameters(cfg), summary["final_losses"], summary["images_per_sec"], position.step)
    except TrainingDiverged as error:
        last = sorted(checkpoint_folder.glob("step_*.pt"))
        kept = f"the last good snapshot is {last[-1]}" if last else "no snapshot had been written yet"
        raise StylenetError(f"{error}. Training stopped; {kept}. Try a lower lr (resume=<snapshot> lr=...)") from None
    finally:
        run_log.close()
    if summary["stopped_by_health"]:
        raise StylenetError(f"health=stop: training stopped at step {position.step} because of "
                            f"{summary['stopped_by_health']}; snapshot in {checkpoint_folder} "
                            f"(continue with resume=auto, health=warn to go on regardless)")
    if summary["stopped"]:
        log.info("stopped at step %d; checkpoint in %s. Continue with resume=auto", position.step, checkpoint_folder)
        return
    if not ranks.is_main:
        return

    summary.update({
        "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "device": str(device),
        "torch": str(torch.__version__),
        "python": platform.python_version(),
        "loss_weights": loss_fn.encoder.weights_id,
        "style_layer_weights": loss_fn.style_layer_weights,
        "config": OmegaConf.to_container(cfg, resolve=True),
    })
    # The run directory keeps its own copy, so a later run that replaces checkpoints/<style>.pt loses nothing.
    payload = inference_payload(model, model_cfg, style_name, summary, network.style_names)
    run_copy, published = run_dir / f"{style_name}.pt", Path(cfg.checkpoint_dir) / f"{style_name}.pt"
    atomic_save(payload, run_copy)
    atomic_save(payload, published)
    log.info("final losses: %s", {name: f"{value:.4g}" for name, value in summary["final_losses"].items()})
    if summary["health_alarms"]:
        log.warning("health alarms during this run: %s", "; ".join(summary["health_alarms"]))
    log.info("wrote %s (a copy stays in %s)", published, run_copy)


if __name__ == "__main__":
    main()
