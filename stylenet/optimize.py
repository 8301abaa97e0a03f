"""python -m stylenet.optimize: the optimisation of Gatys et al. — the pixels of one image optimised
against the same PerceptualLoss and conf/loss configs that training uses.

Slow, but the reference for quality, and much cheaper than training a network per setting: try
loss layers and weights here first (`-m loss.style_weight=1e9,1e10` gives a contact sheet).
"""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path
from typing import Any, Callable

import hydra
import torch
import yaml
from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig
from PIL import Image, ImageDraw
from tqdm import tqdm

from stylenet.configs import require_whole_numbers
from stylenet.data import load_style_image, read_scaled, style_entries
from stylenet.errors import StylenetError, exits_cleanly
from stylenet.images import read_image, resize_to_long_side, save_image
from stylenet.losses import PerceptualLoss, perceptual_loss_from_config
from stylenet.monitor import RunLog
from stylenet.runtime import pick_device, seed_everything

log = logging.getLogger("stylenet.optimize")
METHODS = ("lbfgs", "adam")
INITS = ("content", "noise")
DEFAULT_LR = {"lbfgs": 1.0, "adam": 0.02}


class _InRange(torch.autograd.Function):
    """Clamp to [0, 1] on the way forward. On the way back a pixel inside the range gets its gradient; one
    outside gets only the part that leads back into the range (none that would push it further out)."""

    @staticmethod
    def forward(ctx: Any, image: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(image)
        return image.clamp(0, 1)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        (image,) = ctx.saved_tensors
        return torch.where(image < 0, grad.clamp(max=0), torch.where(image > 1, grad.clamp(min=0), grad))


# The strong-Wolfe line search's evaluations per iteration (torch's own limit when it has the budget).
LINE_SEARCH_EVALUATIONS = 25


def optimize_image(loss_fn: PerceptualLoss, content: torch.Tensor, *, iterations: int, method: str = "lbfgs",
                   init: str = "content", lr: float | None = None,
                   on_iteration: Callable[[int, torch.Tensor, dict[str, float]], None] | None = None,
                   progress: bool = True) -> tuple[torch.Tensor, list[dict[str, float]]]:
    """Optimise the pixels of an image (1, 3, H, W) in [0, 1] for `iterations` iterations.

    Returns the image and the loss terms of the image after each iteration (history[i]: after i
    iterations, so history[0] is the starting image's). Iterations are counted as Johnson et al. count
    them: one L-BFGS iteration is one new direction and its line search, which may evaluate the
    loss several times.

    The loss is always the loss of the image clamped to [0, 1], the picture a user gets; a pixel that
    leaves the range still gets the gradient that brings it back (_InRange). A plain clamp inside the
    graph gives such pixels no gradient, so they stay out for good (on a dark photo most of the black
    background did); passing the whole gradient through lets pixels run off outside the range, and
    L-BFGS then stalled on directions that cannot lower the loss; clamping the pixels in place between
    evaluations breaks L-BFGS's curvature pairs and costs 1.7-2.2 times the time; no clamp at all lets the
    optimiser use values the written picture cannot have. BENCHMARKS.md has the comparison.

    One torch LBFGS step() per iteration keeps per-iteration progress; it needs an explicit
    max_eval, because torch's default (max_iter * 5 // 4) is 1 for max_iter=1, which leaves the
    line search no evaluation: a first trial step that does not lower the loss becomes a step of 0,
    and every later step() repeats it (the optimisation stalls). Each step() also starts by
    evaluating the point the previous one accepted; that evaluation is served from the last one made
    when the point is the same (it usually is), so an iteration costs what it would in one long step().
    """
    if method not in METHODS:
        raise StylenetError(f"method must be one of {', '.join(METHODS)}, got '{method}'")
    if init not in INITS:
        raise StylenetError(f"init must be one of {', '.join(INITS)}, got '{init}'")
    with torch.no_grad():
        content_features = loss_fn.encoder(content, [loss_fn.content_layer])[loss_fn.content_layer]
    content = content.contiguous()  # L-BFGS flattens the gradient with view()
    start = content.clone() if init == "content" else torch.rand_like(content)
    image = start.requires_grad_(True)
    lr = DEFAULT_LR[method] if lr is None else float(lr)
    if method == "lbfgs":
        optimizer: torch.optim.Optimizer = torch.optim.LBFGS(
            [image], lr=lr, max_iter=1, max_eval=1 + LINE_SEARCH_EVALUATIONS, history_size=50,
            line_search_fn="strong_wolfe")
    else:
        optimizer = torch.optim.Adam([image], lr=lr)
    last: dict[str, Any] = {}  # the latest evaluation: where, its gradient, its loss terms

    def closure() -> torch.Tensor:
        if last and torch.equal(image, last["at"]):
            image.grad = last["grad"].clone()
            return last["total"]
        optimizer.zero_grad(set_to_none=True)
        losses = loss_fn(_InRange.apply(image), content_features=content_features)
        losses["total"].backward()
        last.update(at=image.detach().clone(), grad=image.grad.detach().clone(), total=losses["total"].detach(),
                    terms={name: float(value.detach()) for name, value in losses.items()})
        return losses["total"]

    def terms_now() -> dict[str, float]:
        closure()  # usually served from the line search's last evaluation; else its gradient serves the next step
        return dict(last["terms"])

    history = [terms_now()]
    for iteration in tqdm(range(1, iterations + 1), desc=method, unit="it", disable=not progress, dynamic_ncols=True):
        before = image.detach().clone()
        optimizer.step(closure)
        if method == "lbfgs" and torch.equal(image, before):
            optimizer.state.clear()  # the line search found no step: drop the curvature memory, start again downhill
        losses = terms_now()
        if not math.isfinite(losses["total"]):
            raise StylenetError(f"the loss became NaN or Inf at iteration {iteration}; try a lower lr")
        history.append(losses)
        if on_iteration is not None:
            on_iteration(iteration, image.detach().clamp(0, 1), losses)
    return image.detach().clamp(0, 1), history


def numbered(path: Path, number: int) -> Path:
    return path.with_name(f"{path.stem}_{number}{path.suffix}")


@hydra.main(version_base="1.3", config_path="../conf", config_name="optimize")
@exits_cleanly
def main(cfg: DictConfig) -> None:
    hydra_cfg = HydraConfig.get()
    run_dir = Path(hydra_cfg.runtime.output_dir)
    require_whole_numbers(cfg, positive=("iterations", "image_size", "style.size"), non_negative=("save_every",))
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
