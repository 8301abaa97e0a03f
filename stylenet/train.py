"""python -m stylenet.train: train a transform network for one style against the frozen VGG loss."""

from __future__ import annotations

import logging
import math
import platform
import time
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

from stylenet.checkpoint import FORMAT_VERSION, atomic_save, inference_payload
from stylenet.data import ImageFolder, center_crop_resized, collate_skipping_unreadable, load_style_image, readable_batch
from stylenet.errors import StylenetError, exits_cleanly
from stylenet.images import pil_to_tensor, read_image
from stylenet.losses import PerceptualLoss, perceptual_loss_from_config
from stylenet.models import TransformerNet
from stylenet.monitor import RunLog
from stylenet.runtime import pick_device, seed_everything

log = logging.getLogger("stylenet.train")


def fit(model: nn.Module, loss_fn: PerceptualLoss, loader: DataLoader, optimizer: torch.optim.Optimizer, *,
        steps: int, device: torch.device, run_log: RunLog, preview_photos: torch.Tensor,
        log_interval: int, preview_interval: int, checkpoint_interval: int,
        save_checkpoint: Callable[[int], None], amp: bool) -> dict[str, Any]:
    """The training loop; returns a summary (final losses averaged over the last log interval, speed)."""
    use_amp = amp and device.type == "cuda"  # bf16 autocast: no loss scaling needed, unlike fp16
    model.train()
    step, images_seen, interval_images = 0, 0, 0
    interval_sums: dict[str, torch.Tensor] = {}
    interval_steps = 0
    last_losses: dict[str, float] = {}
    unreadable: set[str] = set()
    started = interval_started = time.perf_counter()
    progress = tqdm(total=steps, desc="train", unit="step", dynamic_ncols=True)
    while step < steps:
        steps_before_epoch = step
        for batch, problems in loader:
            for problem in problems:
                if problem not in unreadable:
                    unreadable.add(problem)
                    log.warning("skipped unreadable training image: %s", problem)
            if batch.numel() == 0:
                continue
            content = batch.to(device, non_blocking=True).float().div_(255.0)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
                losses = loss_fn(model(content), content)
            optimizer.zero_grad(set_to_none=True)
            losses["total"].backward()
            optimizer.step()
            step += 1
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
                progress.set_postfix(loss=f"{last_losses['total']:.4g}", img_s=f"{speed:.1f}")
                interval_sums, interval_steps, interval_images = {}, 0, 0
                interval_started = time.perf_counter()
            if step % preview_interval == 0 or step == steps:
                run_log.preview(model, preview_photos, step)
            if step % checkpoint_interval == 0 and step != steps:
                save_checkpoint(step)
            progress.update(1)
            if step >= steps:
                break
        if step == steps_before_epoch:
            raise StylenetError(f"a whole pass over the data gave no usable batch ({len(unreadable)} unreadable images)")
    progress.close()
    if unreadable:
        log.warning("%d unreadable training image(s) were skipped", len(unreadable))
    seconds = time.perf_counter() - started
    return {
        "steps": step,
        "images": images_seen,
        "seconds": round(seconds, 3),
        "images_per_sec": round(images_seen / max(seconds, 1e-9), 3),
        "skipped_images": len(unreadable),
        "final_losses": last_losses,
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


def check_options(cfg: DictConfig) -> None:
    """Refuse nonsensical numbers before anything is built, naming the option."""
    for key in POSITIVE_OPTIONS:
        value = OmegaConf.select(cfg, key)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise StylenetError(f"{key} must be a positive whole number, got {value}")
    if not isinstance(cfg.data.workers, int) or cfg.data.workers < 0:
        raise StylenetError(f"data.workers must be 0 or more, got {cfg.data.workers}")


def total_steps(cfg: DictConfig, batches_per_epoch: int) -> int:
    steps = cfg.epochs * batches_per_epoch if cfg.epochs else cfg.steps
    if steps < 1:
        raise StylenetError(f"nothing to train: steps={cfg.steps}, epochs={cfg.epochs}")
    return int(steps)


@hydra.main(version_base="1.3", config_path="../conf", config_name="train")
@exits_cleanly
def main(cfg: DictConfig) -> None:
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    generator = seed_everything(cfg.seed)
    device = pick_device(cfg.device)
    style_name = str(cfg.style.name)
    log.info("run directory: %s; device: %s", run_dir, device)

    # Cheap checks that can fail come first: options, data and style image, before any network is built.
    check_options(cfg)
    dataset = ImageFolder(cfg.data.root, cfg.data.image_size)
    log.info("%d training images in %s", len(dataset), dataset.root)
    style_image = load_style_image(style_name, cfg.style.image, cfg.style.size)
    preview_photos = preview_batch(dataset, list(cfg.preview.images), cfg.preview.count).to(device)

    loss_fn = perceptual_loss_from_config(cfg.loss, style_image.to(device))
    model_cfg = OmegaConf.to_container(cfg.model, resolve=True)
    try:
        model = TransformerNet(**model_cfg).to(device)
    except (TypeError, ValueError) as error:
        raise StylenetError(f"model config {model_cfg}: {error}") from None
    optimizer = instantiate(cfg.optimizer, params=model.parameters())
    loader = DataLoader(dataset, batch_size=cfg.data.batch_size, shuffle=True, generator=generator,
                        num_workers=cfg.data.workers, persistent_workers=cfg.data.workers > 0,
                        pin_memory=device.type == "cuda", collate_fn=collate_skipping_unreadable)
    steps = total_steps(cfg, len(loader))

    checkpoint_folder = run_dir / "checkpoints"

    def save_training_checkpoint(step: int) -> None:
        atomic_save({"kind": "training", "format_version": FORMAT_VERSION, "step": step,
                     "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                     "model_cfg": model_cfg, "style": style_name}, checkpoint_folder / f"step_{step:07d}.pt")
        for old in sorted(checkpoint_folder.glob("step_*.pt"))[: -cfg.keep_checkpoints]:
            old.unlink()

    run_log = RunLog(run_dir)
    try:
        summary = fit(model, loss_fn, loader, optimizer, steps=steps, device=device, run_log=run_log,
                      preview_photos=preview_photos, log_interval=cfg.log_interval,
                      preview_interval=cfg.preview.interval, checkpoint_interval=cfg.checkpoint_interval,
                      save_checkpoint=save_training_checkpoint, amp=cfg.amp)
    finally:
        run_log.close()

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
