"""python -m stylenet.optimize: the optimisation of Gatys et al. (stylenet.gatys) — the pixels of one
image optimised against the same PerceptualLoss and conf/loss configs that training uses.

Slow, but the reference for quality, and much cheaper than training a network per setting: try
loss layers and weights here first (`-m loss.style_weight=1e9,1e10` gives a contact sheet).
"""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path
from typing import Any

import hydra
import torch
import yaml
from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig
from PIL import Image, ImageDraw

from stylenet.data import load_style_image, read_scaled, style_entries
from stylenet.errors import StylenetError, exits_cleanly
from stylenet.images import read_image, resize_to_long_side, save_image
from stylenet.gatys import optimize_image
from stylenet.losses import perceptual_loss_from_config
from stylenet.monitor import RunLog
from stylenet.options import check_options
from stylenet.runtime import pick_device, seed_everything

log = logging.getLogger("stylenet.optimize")


def numbered(path: Path, number: int) -> Path:
    return path.with_name(f"{path.stem}_{number}{path.suffix}")


@hydra.main(version_base="1.3", config_path="conf", config_name="optimize")
@exits_cleanly
def main(cfg: DictConfig) -> None:
    hydra_cfg = HydraConfig.get()
    run_dir = Path(hydra_cfg.runtime.output_dir)
    check_options(cfg, "optimize")
    seed_everything(cfg.seed)
    device = pick_device(cfg.device)
    content = read_scaled(cfg.content, cfg.image_size, "content image").unsqueeze(0).to(device)
    entries = style_entries(cfg.style)
    if len(entries) > 1:
        raise StylenetError(f"optimisation takes one style image; style '{cfg.style.name}' has {len(entries)}: "
                            f"pick one with style=<name> or style=custom style.image=...")
    style_image = load_style_image(*entries[0]).to(device)
    loss_fn = perceptual_loss_from_config(cfg.loss, style_image)
    log.info("optimising %s (%dx%d) towards %s: %s, %d iterations, from the %s",
             cfg.content, content.shape[-1], content.shape[-2], cfg.style.name, cfg.method, cfg.iterations, cfg.init)

    run_log = RunLog(run_dir)

    def on_iteration(iteration: int, image: torch.Tensor, losses: dict[str, float]) -> None:
        run_log.losses(losses, iteration)
        if cfg.save_every and (iteration % cfg.save_every == 0 or iteration == cfg.iterations):
            save_image(image[0], run_dir / "iterations" / f"iter_{iteration:05d}.png")
            run_log.writer.add_image("result", image[0].clamp(0, 1).cpu(), iteration)

    started = time.perf_counter()
    try:
        result, history = optimize_image(loss_fn, content, iterations=cfg.iterations, method=cfg.method,
                                         init=cfg.init, lr=cfg.lr, on_iteration=on_iteration)
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
    log.info("total loss %.4g -> %.4g in %.1f s (%.2f s per iteration); wrote %s", first, last, seconds,
             seconds / cfg.iterations, ", ".join(map(str, written)))


def short(override: str) -> str:
    """'loss.style_weight=10000000000.0' -> 'loss.style_weight=1e+10': labels that fit under a picture."""
    key, _, value = override.partition("=")
    try:
        return f"{key}={float(value):g}"
    except ValueError:
        return override


class ContactSheet(Callback):
    """After a sweep (python -m stylenet.optimize -m ...): every job's result on one sheet, labelled
    with the overrides that differ between jobs, in <sweep dir>/contact_sheet.png."""

    def __init__(self, cell: int = 256) -> None:
        self.cell = cell

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        jobs = []
        for result in sorted(sweep_dir.glob("*/result.png"), key=lambda path: path.parent.name):
            overrides_file = result.parent / ".hydra" / "overrides.yaml"
            overrides = yaml.safe_load(overrides_file.read_text()) if overrides_file.exists() else []
            jobs.append((result, overrides))
        if not jobs:
            return
        shared = set.intersection(*(set(overrides) for _, overrides in jobs))
        cells = [(read_image(path), "  ".join(short(o) for o in overrides if o not in shared) or path.parent.name)
                 for path, overrides in jobs]
        sheet = self.compose(cells)
        save_image(sheet, sweep_dir / "contact_sheet.png")
        log.info("contact sheet of %d results: %s", len(cells), sweep_dir / "contact_sheet.png")

    def compose(self, cells: list[tuple[Image.Image, str]]) -> Image.Image:
        label_height = 18
        columns = math.ceil(math.sqrt(len(cells)))
        rows = math.ceil(len(cells) / columns)
        sheet = Image.new("RGB", (columns * self.cell, rows * (self.cell + label_height)), "white")
        draw = ImageDraw.Draw(sheet)
        for index, (picture, label) in enumerate(cells):
            x, y = (index % columns) * self.cell, (index // columns) * (self.cell + label_height)
            thumbnail = resize_to_long_side(picture, self.cell)
            sheet.paste(thumbnail, (x + (self.cell - thumbnail.width) // 2, y + (self.cell - thumbnail.height) // 2))
            draw.text((x + 4, y + self.cell + 3), label, fill="black")
        return sheet


if __name__ == "__main__":
    main()
