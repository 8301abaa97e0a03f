"""python -m stylenet.train: train a transform network for one style against the frozen VGG loss."""

from __future__ import annotations

import logging
import math
import platform
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import hydra
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from stylenet.cache import CachedImages, pass_batch_through
from stylenet.checkpoint import (atomic_save, differences, inference_payload, latest_training_checkpoint,
                                 load_checkpoint, training_payload)
from stylenet.configs import require_whole_numbers
from stylenet.data import (EpochSampler, ImageFolder, center_crop_resized, collate_skipping_unreadable,
                           load_style_image, readable_batch)
from stylenet.errors import StylenetError, exits_cleanly
from stylenet.images import pil_to_tensor, read_image
from stylenet.losses import PerceptualLoss, perceptual_loss_from_config
from stylenet.models import TransformerNet
from stylenet.monitor import RunLog
from stylenet.runtime import StopRequest, pick_device, seed_everything

log = logging.getLogger("stylenet.train")


@dataclass
class Position:
    """Where training is: steps taken, and items of the current epoch's order already used."""

    step: int = 0
    epoch: int = 0
    offset: int = 0


def fit(model: nn.Module, loss_fn: PerceptualLoss, loader: DataLoader, sampler: EpochSampler,
        optimizer: torch.optim.Optimizer, *, position: Position, steps: int, device: torch.device,
        run_log: RunLog, preview_photos: torch.Tensor, log_interval: int, preview_interval: int,
        checkpoint_interval: int, save_checkpoint: Callable[[Position], None], amp: bool,
        should_stop: Callable[[], bool] = lambda: False) -> dict[str, Any]:
    """The training loop, from `position` to `steps`; returns a summary (final losses averaged over the
    last log interval, speed, the share of time spent waiting for data, and whether a stop was requested).

    `loader` yields data.TrainingBatch tuples: with precomputed content features the loss skips the
    content images' VGG pass."""
    use_amp = amp and device.type == "cuda"  # bf16 autocast: no loss scaling needed, unlike fp16
    model.train()
    images_seen, interval_images, interval_steps = 0, 0, 0
    data_seconds = interval_data_seconds = 0.0
    interval_sums: dict[str, torch.Tensor] = {}
    last_losses: dict[str, float] = {}
    unreadable: set[str] = set()
    stopped = False
    started = interval_started = time.perf_counter()
    progress = tqdm(total=steps, initial=position.step, desc="train", unit="step", dynamic_ncols=True)
    while position.step < steps and not stopped:
        if position.offset >= sampler.num_items:
            position.epoch, position.offset = position.epoch + 1, 0
        sampler.set_position(position.epoch, position.offset)
        steps_before_epoch, whole_epoch = position.step, position.offset == 0
        fetch_started = time.perf_counter()
        for batch, features, problems in loader:
            data_seconds += time.perf_counter() - fetch_started
            position.offset += len(batch) + len(problems)
            for problem in problems:
                if problem not in unreadable:
                    unreadable.add(problem)
                    log.warning("skipped unreadable training image: %s", problem)
            if batch.numel() == 0:
                fetch_started = time.perf_counter()
                continue
            content = batch.to(device, non_blocking=True).float().div_(255.0)
            if features is not None:
                features = features.to(device, non_blocking=True)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
                losses = loss_fn(model(content), content, content_features=features)
            optimizer.zero_grad(set_to_none=True)
            losses["total"].backward()
            optimizer.step()
            position.step += 1
            step = position.step
            images_seen += len(content)
            interval_images += len(content)
            interval_steps += 1
            for name, value in losses.items():
                interval_sums[name] = interval_sums.get(name, 0) + value.detach()

            if step % log_interval == 0 or step == steps:
                elapsed = time.perf_counter() - interval_started
                last_losses = {name: float(total) / interval_steps for name, total in interval_sums.items()}
                if not all(math.isfinite(value) for value in last_losses.values()):
                    raise StylenetError(f"loss became NaN or Inf at step {step}: {last_losses}; try a lower lr")
                speed = interval_images / max(elapsed, 1e-9)
                run_log.losses(last_losses, step)
                run_log.scalar("train/lr", optimizer.param_groups[0]["lr"], step)
                run_log.scalar("train/images_per_sec", speed, step)
                run_log.scalar("train/data_wait_share", (data_seconds - interval_data_seconds) / max(elapsed, 1e-9), step)
                interval_data_seconds = data_seconds
                progress.set_postfix(loss=f"{last_losses['total']:.4g}", img_s=f"{speed:.1f}")
                interval_sums, interval_steps, interval_images = {}, 0, 0
                interval_started = time.perf_counter()
            if step % preview_interval == 0 or step == steps:
                run_log.preview(model, preview_photos, step)
            stopped = should_stop()
            if step % checkpoint_interval == 0 or step == steps or stopped:
                save_checkpoint(position)
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
    return {
        "steps": position.step,
        "images": images_seen,
        "seconds": round(seconds, 3),
        "images_per_sec": round(images_seen / max(seconds, 1e-9), 3),
        "data_wait_share": round(data_seconds / max(seconds, 1e-9), 4),
        "skipped_images": len(unreadable),
        "final_losses": last_losses,
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
    kept = {key: resolved[key] for key in ("style", "model", "loss", "seed", "optimizer")}
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


@hydra.main(version_base="1.3", config_path="../conf", config_name="train")
@exits_cleanly
def main(cfg: DictConfig) -> None:
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    seed_everything(cfg.seed)
    device = pick_device(cfg.device)
    style_name = str(cfg.style.name)
    log.info("run directory: %s; device: %s", run_dir, device)

    # Cheap checks that can fail come first: options, data and style image, before any network is built.
    require_whole_numbers(cfg, positive=POSITIVE_OPTIONS, non_negative=("data.workers",))
    dataset, collate = open_training_data(cfg.data, cfg.loss)
    style_image = load_style_image(style_name, cfg.style.image, cfg.style.size)
    preview_photos = preview_batch(dataset, list(cfg.preview.images), cfg.preview.count).to(device)
    current = fingerprint(cfg)
    resume_from = find_resume(cfg.resume, run_dir, current)

    loss_fn = perceptual_loss_from_config(cfg.loss, style_image.to(device))
    if isinstance(dataset, CachedImages):
        dataset.require(digest=loss_fn.encoder.digest(loss_fn.content_layer), weights=loss_fn.encoder.weights_id)
    model_cfg = current["model"]
    try:
        model = TransformerNet(**model_cfg).to(device)
    except (TypeError, ValueError) as error:
        raise StylenetError(f"model config {model_cfg}: {error}") from None
    optimizer = instantiate(cfg.optimizer, params=model.parameters())
    sampler = EpochSampler(len(dataset), cfg.seed)
    loader = DataLoader(dataset, batch_size=cfg.data.batch_size, sampler=sampler, num_workers=cfg.data.workers,
                        persistent_workers=cfg.data.workers > 0, pin_memory=device.type == "cuda",
                        collate_fn=collate)
    steps = total_steps(cfg, len(loader))

    position = Position()
    if resume_from is not None:
        path, payload = resume_from
        model.load_state_dict(payload["model"])
        optimizer.load_state_dict(payload["optimizer"])
        torch.set_rng_state(payload["rng"]["torch"])
        if payload["rng"]["cuda"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(payload["rng"]["cuda"])
        position = Position(payload["step"], payload["epoch"], payload["offset"])
        log.info("resuming from step %d of %s", position.step, path)

    checkpoint_folder = run_dir / "checkpoints"

    def save_training_checkpoint(at: Position) -> None:
        atomic_save(training_payload(model, optimizer, model_cfg, style_name, current, at.step, at.epoch, at.offset),
                    checkpoint_folder / f"step_{at.step:07d}.pt")
        for old in sorted(checkpoint_folder.glob("step_*.pt"))[: -cfg.keep_checkpoints]:
            old.unlink()

    run_log = RunLog(run_dir)
    try:
        with StopRequest() as stop:
            summary = fit(model, loss_fn, loader, sampler, optimizer, position=position, steps=steps, device=device,
                          run_log=run_log, preview_photos=preview_photos, log_interval=cfg.log_interval,
                          preview_interval=cfg.preview.interval, checkpoint_interval=cfg.checkpoint_interval,
                          save_checkpoint=save_training_checkpoint, amp=cfg.amp, should_stop=stop.event.is_set)
    finally:
        run_log.close()
    if summary["stopped"]:
        log.info("stopped at step %d; checkpoint in %s. Continue with resume=auto", position.step, checkpoint_folder)
        return

    summary.update({
        "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "device": str(device),
        "torch": str(torch.__version__),
        "python": platform.python_version(),
        "loss_weights": loss_fn.encoder.weights_id,
        "config": OmegaConf.to_container(cfg, resolve=True),
    })
    # The run directory keeps its own copy, so a later run that replaces checkpoints/<style>.pt loses nothing.
    payload = inference_payload(model, model_cfg, style_name, summary)
    run_copy, published = run_dir / f"{style_name}.pt", Path(cfg.checkpoint_dir) / f"{style_name}.pt"
    atomic_save(payload, run_copy)
    atomic_save(payload, published)
    log.info("final losses: %s", {name: f"{value:.4g}" for name, value in summary["final_losses"].items()})
    log.info("wrote %s (a copy stays in %s)", published, run_copy)


if __name__ == "__main__":
    main()
