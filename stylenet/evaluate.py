"""python -m stylenet.evaluate: a trained network against the optimisation it approximates.

For each held-out photo: the loss of the network's output, and the loss L-BFGS reaches after 50,
100, 200, 300 iterations on the same photo with the same loss at the same size (Johnson et al.'s
comparison); how many iterations the network is worth; seconds per image for both; and a
side-by-side image content | network | optimisation. Also home of heldout_losses, the measure the
comparison scripts share.
"""

from __future__ import annotations

import logging
import statistics
from functools import partial
from pathlib import Path

import hydra
import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf
from torch import nn
from torchvision.utils import make_grid

from stylenet.atomic import atomic_write
from stylenet.benchmarking import timed
from stylenet.checkpoint import build_model, load_checkpoint, style_names
from stylenet.data import ImageFolder
from stylenet.errors import StylenetError, exits_cleanly
from stylenet.images import save_image
from stylenet.losses import PerceptualLoss, trained_loss
from stylenet.optimize import optimize_image
from stylenet.runtime import pick_device, seed_everything
from stylenet.stylizer import style_weights

log = logging.getLogger("stylenet.evaluate")
TERMS = ("content", "style", "tv", "total")


@torch.no_grad()
def heldout_losses(model: nn.Module, loss_fn: PerceptualLoss, photos: torch.Tensor, batch_size: int = 4,
                   style: torch.Tensor | None = None) -> dict[str, float]:
    """Every loss term of the model's outputs on `photos` (float NCHW in [0, 1]), averaged per photo;
    `style`: the weights of the style to run a network of several styles with."""
    model.eval()
    sums: dict[str, float] = {}
    for start in range(0, len(photos), batch_size):
        batch = photos[start : start + batch_size]
        output = model(batch) if style is None else model(batch, style)
        for name, value in loss_fn(output, batch).items():
            sums[name] = sums.get(name, 0.0) + float(value) * len(batch)
    return {name: total / len(photos) for name, total in sums.items()}


def equivalent_iterations(history: list[dict[str, float]], network_total: float) -> int | None:
    """The first iteration at which the optimisation's total loss is at or below the network's."""
    return next((iteration for iteration, losses in enumerate(history) if losses["total"] <= network_total), None)


def report(rows: dict[str, dict[str, float]], seconds: dict[str, float], equivalents: list[int | None],
           iterations: list[int], header: str) -> str:
    lines = [header, "", "| method | " + " | ".join(TERMS) + " | s/image |", "|" + " --- |" * (len(TERMS) + 2)]
    for name, losses in rows.items():
        lines.append(f"| {name} | " + " | ".join(f"{losses[term]:.4g}" for term in TERMS) + f" | {seconds[name]:.3f} |")
    reached = [value for value in equivalents if value is not None]
    last = max(iterations)
    per_photo = ", ".join(str(value) if value is not None else f">{last}" for value in equivalents)
    if len(reached) == len(equivalents):
        summary = f"The network's loss equals L-BFGS after **{statistics.median(reached):g}** iterations (median)"
    else:
        summary = f"On {len(equivalents) - len(reached)} of {len(equivalents)} photos L-BFGS did not reach the network's loss in {last} iterations"
    lines += ["", f"{summary}; per photo: {per_photo} (0: the unchanged photo already scores as well)."]
    return "\n".join(lines)


@hydra.main(version_base="1.3", config_path="../conf", config_name="evaluate")
@exits_cleanly
def main(cfg: DictConfig) -> None:
    iterations = sorted(int(value) for value in cfg.iterations)
    if not iterations or iterations[0] < 1:
        raise StylenetError(f"iterations must be positive whole numbers, got {list(cfg.iterations)}")
    seed_everything(cfg.seed)
    device = pick_device(cfg.device)
    output = Path(cfg.output) if cfg.output else Path(HydraConfig.get().runtime.output_dir)
    payload = load_checkpoint(cfg.checkpoint, kind="inference")
    model = build_model(payload, cfg.checkpoint).to(device).eval().requires_grad_(False)
    names = style_names(payload)
    weights = style_weights(names, cfg.style_name, cfg.style_index)
    photos = ImageFolder(cfg.photos, cfg.image_size)
    if weights is not None:
        chosen = names[int(weights.argmax())]
        stylise = partial(model, style=weights.to(device))
    else:
        chosen, stylise = None, model
    loss_fn = trained_loss(payload, cfg.checkpoint, device, chosen, cfg.style_image,
                           OmegaConf.to_container(cfg.loss))  # type: ignore[arg-type]

    rows_per_photo: list[dict[str, dict[str, float]]] = []
    seconds: dict[str, list[float]] = {"network": [], "optimisation": []}
    equivalents: list[int | None] = []
    for index, path in enumerate(photos.files):
        image, problem = photos[index]
        if image is None:
            log.warning("skipped unreadable photo: %s", problem)
            continue
        photo = image.unsqueeze(0).to(device).float().div_(255.0)
        with torch.no_grad():
            stylise(photo)  # warm-up: the first call pays for allocation
            stylised, network_seconds = timed(lambda: stylise(photo), device)
            network = {name: float(value) for name, value in loss_fn(stylised, photo).items()}
        (optimised, history), optimisation_seconds = timed(
            lambda: optimize_image(loss_fn, photo, iterations=iterations[-1], method="lbfgs", init=cfg.init,
                                   progress=False), device)
        seconds["network"].append(network_seconds)
        seconds["optimisation"].append(optimisation_seconds)
        rows = {"network": network, **{f"L-BFGS {n}": history[n] for n in iterations}}
        rows_per_photo.append(rows)
        equivalents.append(equivalent_iterations(history, network["total"]))
        grid = make_grid(torch.cat([photo, stylised, optimised]).cpu(), nrow=3, padding=2, pad_value=1.0)
        save_image(grid, output / f"{path.relative_to(photos.root).with_suffix('').as_posix().replace('/', '_')}.png")
        log.info("%s: network %.4g, L-BFGS %d: %.4g (equal after %s iterations)", path.name, network["total"],
                 iterations[-1], history[-1]["total"], equivalents[-1] if equivalents[-1] is not None else f">{iterations[-1]}")
    if not rows_per_photo:
        raise StylenetError(f"none of the photos in {photos.root} could be read")

    means = {name: {term: statistics.fmean(rows[name][term] for rows in rows_per_photo) for term in TERMS}
             for name in rows_per_photo[0]}
    per_image = {"network": statistics.median(seconds["network"])}
    optimisation = statistics.median(seconds["optimisation"])
    per_image.update({f"L-BFGS {n}": optimisation * n / iterations[-1] for n in iterations})
    header = (f"{Path(cfg.checkpoint).name} ({payload['style']}{f': {chosen}' if chosen else ''}) on {len(rows_per_photo)} photos from {photos.root} at "
              f"{cfg.image_size} px, {device}; VGG weights {loss_fn.encoder.weights_id}; L-BFGS from the {cfg.init}. "
              f"Losses are means over the photos; L-BFGS seconds are the {iterations[-1]}-iteration run's, pro rata.")
    text = report(means, per_image, equivalents, iterations, header)
    atomic_write(output / "report.md", lambda stream: stream.write(text.encode() + b"\n"))
    print(text)
    log.info("side-by-side images (content | network | L-BFGS %d) and report.md in %s", iterations[-1], output)


if __name__ == "__main__":
    main()
