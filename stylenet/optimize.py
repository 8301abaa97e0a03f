"""python -m stylenet.optimize: the optimisation of Gatys et al. (stylenet.loss.gatys) — the pixels of one
image optimised against the same PerceptualLoss and conf/loss configs that training uses.

Slow, but the reference for quality, and much cheaper than training a network per setting: try
loss layers and weights here first (`-m loss.style_weight=1e9,1e10` gives a contact sheet).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import hydra
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from stylenet.common.errors import StylenetError, exits_cleanly
from stylenet.common.images import save_image
from stylenet.common.runtime import pick_device, seed_everything
from stylenet.config import cli
from stylenet.config.schema import OptimizeConfig, typed
from stylenet.data.photos import load_painting, read_scaled
from stylenet.loss.gatys import optimize_image
from stylenet.loss.perceptual import perceptual_loss
from stylenet.training.monitor import RunLog

log = logging.getLogger("stylenet.optimize")


def numbered(path: Path, number: int) -> Path:
    return path.with_name(f"{path.stem}_{number}{path.suffix}")


@hydra.main(version_base="1.3", config_path="conf", config_name="optimize")
@exits_cleanly
def main(config: DictConfig) -> None:
    cfg = typed(config, OptimizeConfig)
    hydra_cfg = HydraConfig.get()
    run_dir = Path(hydra_cfg.runtime.output_dir)
    seed_everything(cfg.seed)
    device = pick_device(cfg.device)
    content = read_scaled(cfg.content, cfg.image_size, "content image").unsqueeze(0).to(device)
    entries = cfg.style.entries()
    if len(entries) > 1:
        raise StylenetError(
            f"optimisation takes one style image; style '{cfg.style.name}' has {len(entries)}: "
            f"pick one with style=<name> or style=custom style.image=..."
        )
    loss_fn = perceptual_loss(cfg.loss, [[image.to(device) for image in load_painting(cfg.style, *entries[0])]])
    if cfg.loss.style_layer_norm != "none":  # as training does at step 0, on the photo it starts from
        with torch.no_grad():
            loss_fn.normalise_style_layers(cfg.loss.style_layer_norm, loss_fn.style_layer_losses(content))
    log.info(
        "optimising %s (%dx%d) towards %s: %s, %d iterations, from the %s",
        cfg.content,
        content.shape[-1],
        content.shape[-2],
        cfg.style.name,
        cfg.method,
        cfg.iterations,
        cfg.init,
    )

    run_log = RunLog(run_dir)

    def on_iteration(iteration: int, image: torch.Tensor, losses: dict[str, float]) -> None:
        run_log.losses(losses, iteration)
        if cfg.save_every and (iteration % cfg.save_every == 0 or iteration == cfg.iterations):
            save_image(image[0], run_dir / "iterations" / f"iter_{iteration:05d}.png")
            run_log.image("result", image[0].clamp(0, 1).cpu(), iteration)

    started = time.perf_counter()
    try:
        result, history = optimize_image(
            loss_fn,
            content,
            iterations=cfg.iterations,
            method=cfg.method,
            init=cfg.init,
            lr=cfg.lr,
            on_iteration=on_iteration,
        )
    finally:
        run_log.close()
    seconds = time.perf_counter() - started
    save_image(result[0], run_dir / "result.png")
    written = [run_dir / "result.png"]
    if cfg.output:
        output = Path(cfg.output)
        if hydra_cfg.mode == RunMode.MULTIRUN:
            output = numbered(output, hydra_cfg.job.num)  # one file per job of a sweep, not one overwritten
        save_image(result[0], output)
        written.append(output)
    first, last = history[0]["total"], history[-1]["total"]
    log.info(
        "total loss %.4g -> %.4g in %.1f s (%.2f s per iteration); wrote %s",
        first,
        last,
        seconds,
        seconds / cfg.iterations,
        ", ".join(map(str, written)),
    )


if __name__ == "__main__":
    cli.run(main)
