"""python -m stylenet.evaluate: trained networks against the optimisation they approximate.

For each held-out photo: the loss of the network's output, and the loss L-BFGS reaches after 50,
100, 200, 300 iterations on the same photo with the same loss at the same size (Johnson et al.'s
comparison); how many iterations the network is worth; seconds per image for both; and a
side-by-side image content | network | optimisation. Several networks trained with the same loss
(variants, budgets) share one optimisation run per photo, the expensive part.
"""

from __future__ import annotations

import logging
import statistics
from dataclasses import asdict
from functools import partial
from pathlib import Path
from typing import Any

import hydra
import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from stylenet.common.atomic import atomic_write
from stylenet.common.errors import StylenetError, exits_cleanly
from stylenet.common.images import image_grid, save_image, unit_float
from stylenet.common.options import all_different
from stylenet.common.runtime import pick_device, seed_everything, timed
from stylenet.config import cli
from stylenet.config.schema import EvaluateConfig, typed
from stylenet.data.photos import ImageFolder
from stylenet.inference.stylizer import style_weights
from stylenet.loss.gatys import optimize_image
from stylenet.loss.perceptual import trained_loss
from stylenet.loss.scores import TERMS, equivalent_iterations, report
from stylenet.nets.network_file import build_model, load_network_file, reference_label, style_names

log = logging.getLogger("stylenet.evaluate")


class Network:
    """One trained network under evaluation: its label, inference file, style and loss."""

    def __init__(self, checkpoint: str, cfg: EvaluateConfig, device: torch.device) -> None:
        self.payload = load_network_file(checkpoint)
        self.label = reference_label(checkpoint)  # two styles of one file are two networks here
        model = build_model(self.payload, checkpoint).to(device).eval().requires_grad_(False)
        names = style_names(self.payload)
        weights = style_weights(names, cfg.style_name, cfg.style_index)
        self.style = names[int(weights.argmax())] if weights is not None else None
        self.stylise = partial(model, style=weights.to(device)) if weights is not None else model
        self.loss_fn = trained_loss(self.payload, checkpoint, device, self.style, cfg.style_image, asdict(cfg.loss))


def checkpoints(value: Any) -> list[str]:
    """`checkpoint=` as a list: one inference file, or several trained with the same loss."""
    given = [str(item) for item in value] if isinstance(value, list) else [str(value)]
    if not given:
        raise StylenetError("checkpoint: give one inference file or a list of them")
    return given


@hydra.main(version_base="1.3", config_path="conf", config_name="evaluate")
@exits_cleanly
def main(config: DictConfig) -> None:
    cfg = typed(config, EvaluateConfig)
    iterations = sorted(cfg.iterations)
    device = pick_device(cfg.device)
    output = Path(cfg.output) if cfg.output else Path(HydraConfig.get().runtime.output_dir)
    networks = []
    for path in checkpoints(cfg.checkpoint):
        seed_everything(cfg.seed)  # random VGG weights (tests) come out the same for every network
        networks.append(Network(path, cfg, device))
    loss_fn = networks[0].loss_fn
    for other in networks[1:]:
        if not loss_fn.same_objective(other.loss_fn):
            raise StylenetError(
                f"{other.label} was trained with another loss than {networks[0].label} (VGG weights, "
                f"layers, weights or style image differ): evaluate them one at a time"
            )
    labels = ["network"] if len(networks) == 1 else [network.label for network in networks]
    all_different(labels, "two networks would have one label in the report (rename a file)")
    photos = ImageFolder(cfg.photos, cfg.image_size)

    rows_per_photo: list[dict[str, dict[str, float]]] = []
    seconds: dict[str, list[float]] = {label: [] for label in [*labels, "optimisation"]}
    equivalents: dict[str, list[int | None]] = {label: [] for label in labels}
    for index, photo_path in enumerate(photos.files):
        image, problem = photos[index]
        if image is None:
            log.warning("skipped unreadable photo: %s", problem)
            continue
        photo = unit_float(image.unsqueeze(0).to(device))
        rows: dict[str, dict[str, float]] = {}
        outputs = [photo]
        for label, network in zip(labels, networks):
            with torch.no_grad():
                network.stylise(photo)  # warm-up: the first call pays for allocation
                stylised, network_seconds = timed(lambda: network.stylise(photo), device)
                rows[label] = {name: float(value) for name, value in loss_fn(stylised, photo).items()}
            seconds[label].append(network_seconds)
            outputs.append(stylised)
        (optimised, history), optimisation_seconds = timed(
            lambda: optimize_image(
                loss_fn, photo, iterations=iterations[-1], method="lbfgs", init=cfg.init, progress=False
            ),
            device,
        )
        seconds["optimisation"].append(optimisation_seconds)
        rows.update({f"L-BFGS {n}": history[n] for n in iterations})
        rows_per_photo.append(rows)
        for label in labels:
            equivalents[label].append(equivalent_iterations(history, rows[label]["total"]))
        grid = image_grid(torch.cat([*outputs, optimised]).cpu(), columns=len(outputs) + 1)
        save_image(
            grid, output / f"{photo_path.relative_to(photos.root).with_suffix('').as_posix().replace('/', '_')}.png"
        )
        log.info(
            "%s: %s; L-BFGS %d: %.4g",
            photo_path.name,
            ", ".join(
                f"{label} {rows[label]['total']:.4g} (equal after {found if found is not None else f'>{iterations[-1]}'} "
                f"iterations)"
                for label in labels
                for found in [equivalents[label][-1]]
            ),
            iterations[-1],
            history[-1]["total"],
        )
    if not rows_per_photo:
        raise StylenetError(f"none of the photos in {photos.root} could be read")
    write_report(cfg, networks, labels, rows_per_photo, seconds, equivalents, photos.root, output, device)


def write_report(
    cfg: EvaluateConfig,
    networks: list[Network],
    labels: list[str],
    rows_per_photo: list[dict[str, dict[str, float]]],
    seconds: dict[str, list[float]],
    equivalents: dict[str, list[int | None]],
    root: Path,
    output: Path,
    device: torch.device,
) -> None:
    """report.md: the mean losses over the photos, seconds per image, the L-BFGS iterations each network equals."""
    iterations = sorted(cfg.iterations)
    means = {
        name: {term: statistics.fmean(rows[name][term] for rows in rows_per_photo) for term in TERMS}
        for name in rows_per_photo[0]
    }
    per_image = {label: statistics.median(seconds[label]) for label in labels}
    optimisation = statistics.median(seconds["optimisation"])
    per_image.update({f"L-BFGS {n}": optimisation * n / iterations[-1] for n in iterations})
    names = ", ".join(
        f"{Path(str(path)).name} ({network.payload['style']}{f': {network.style}' if network.style else ''})"
        for path, network in zip(checkpoints(cfg.checkpoint), networks)
    )
    header = (
        f"{names} on {len(rows_per_photo)} photos from {root} at {cfg.image_size} px, {device}; VGG "
        f"weights {networks[0].loss_fn.encoder.weights_id}; L-BFGS from the {cfg.init}. Losses are means over the "
        f"photos; L-BFGS seconds are the {iterations[-1]}-iteration run's, pro rata."
    )
    text = report(means, per_image, equivalents, iterations, header)
    atomic_write(output / "report.md", lambda stream: stream.write(text.encode() + b"\n"))
    print(text)
    log.info(
        "side-by-side images (content | %s | L-BFGS %d) and report.md in %s", " | ".join(labels), iterations[-1], output
    )


if __name__ == "__main__":
    cli.run(main)
