"""python -m stylenet.train: train a transform network for one style (or several) against the frozen VGG loss.
The run's set-up lives in stylenet.training.setup, the loop in stylenet.training.loop, snapshots and resume in
stylenet.training.snapshots, the health monitor in stylenet.training.health."""

from __future__ import annotations

import logging
from contextlib import nullcontext
from dataclasses import asdict
from pathlib import Path

import hydra
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig

from stylenet.common.errors import StylenetError, exits_cleanly
from stylenet.common.runtime import Distributed, StopRequest, quiet_logging, seed_everything, start_distributed
from stylenet.config import cli
from stylenet.config.schema import TrainConfig, typed
from stylenet.data.photos import load_style_images
from stylenet.loss.perceptual import perceptual_loss
from stylenet.training.health import watch_run
from stylenet.training.loop import Batches, Plan, Reporting, TrainingDiverged, fit
from stylenet.training.monitor import RunLog
from stylenet.training.setup import (
    Length,
    Switches,
    build_network,
    for_training,
    network_file,
    open_data,
    publish,
    start_position,
)
from stylenet.training.snapshots import Snapshots, fingerprint, hold_run_folder, snapshot_writer

log = logging.getLogger("stylenet.train")


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
@exits_cleanly
def main(cfg: DictConfig) -> None:
    options = typed(cfg, TrainConfig)
    ranks, device = start_distributed(options.device)
    try:
        # Every rank uses rank 0's run folder (Hydra's ${now} may differ by a second between processes).
        run_dir = Path(str(ranks.from_main(HydraConfig.get().runtime.output_dir)))
        with hold_run_folder(run_dir) if ranks.is_main else nullcontext():
            train(options, ranks, device, run_dir)
        ranks.finished()
    finally:
        ranks.close()


def train(cfg: TrainConfig, ranks: Distributed, device: torch.device, run_dir: Path) -> None:
    """The run: the loss and the data, the network (new or resumed), fit, the network file."""
    if not ranks.is_main:
        quiet_logging()
    per_rank = f"; {ranks.world} ranks, {cfg.data.batch_size // ranks.world} images per rank" if ranks.world > 1 else ""
    log.info("run directory: %s; device: %s%s", run_dir, device, per_rank)
    seed_everything(cfg.seed)
    names, style_images = load_style_images(cfg.style)
    style_images = [[image.to(device) for image in sizes] for sizes in style_images]
    # Right after seeding: random VGG weights (tests) then come from the seed alone, as in precompute.
    loss_fn = perceptual_loss(cfg.loss, style_images)
    length = Length(cfg.steps, cfg.epochs, cfg.seed, list(cfg.preview.images), cfg.preview.count)
    data = open_data(cfg.data, length, loss_fn, ranks, device)
    network = build_network(asdict(cfg.model), names, cfg.style.name, cfg.add_style_to, cfg.init)
    network.model.to(device)
    if network.style_schedule is not None:
        log.info("%d styles in one network; training %s", network.model.num_styles, ", ".join(names))
    trainable = [parameter for parameter in network.model.parameters() if parameter.requires_grad]
    optimizer = instantiate(cfg.optimizer, params=trainable)
    current = fingerprint(asdict(cfg))
    position, resumed_total = start_position(
        cfg.resume, cfg.loss.style_layer_norm, run_dir, current, network, optimizer, loss_fn, data, ranks, device
    )
    snapshots = Snapshots(run_dir / "checkpoints", cfg.keep_checkpoints)
    save_snapshot = snapshot_writer(
        snapshots, network.model, optimizer, network.model_cfg, network.name, network.style_names, current, loss_fn
    )
    run_log = RunLog(run_dir, enabled=ranks.is_main)
    health = None
    if ranks.is_main:
        norm = cfg.loss.style_layer_norm
        health = watch_run(
            cfg.health,
            run_log,
            data.steps,
            data.preview_photos,
            [sizes[0] for sizes in style_images],
            loss_fn,
            norm,
            resumed_total,
        )
    switches = Switches(
        cfg.precision,
        cfg.channels_last,
        cfg.compile,
        cfg.distill.teacher,
        cfg.distill.weight,
        cfg.loss.equivariance_weight,
    )
    stepped, step_loss, settings = for_training(network, loss_fn, switches, ranks, device)
    max_seconds = None if cfg.max_minutes is None else cfg.max_minutes * 60
    plan = Plan(data.steps, cfg.log_interval, cfg.preview.interval, cfg.checkpoint_interval, max_seconds)
    batches = Batches(data.loader, data.sampler, position, data.steps, settings)
    try:
        with StopRequest() as stop:
            reporting = Reporting(run_log, data.preview_photos, save_snapshot, health, stop.event.is_set)
            summary = fit(stepped, step_loss, optimizer, batches, plan, reporting, settings)
        if not summary.stopped:
            choices = HydraConfig.get().runtime.choices
            run_log.hparams(cfg.hyperparameters(choices), summary.final_losses, summary.images_per_sec, summary.steps)
    except TrainingDiverged as error:
        last = snapshots.saved()
        kept = f"the last good snapshot is {last[-1]}" if last else "no snapshot had been written yet"
        raise StylenetError(f"{error}. Training stopped; {kept}. Try a lower lr (resume=<snapshot> lr=...)") from None
    finally:
        run_log.close()
    if summary.stopped_by_health:
        raise StylenetError(
            f"health=stop: training stopped at step {summary.steps} because of {summary.stopped_by_health}; snapshot "
            f"in {snapshots.folder} (continue with resume=auto, health=warn to go on regardless)"
        )
    if summary.stopped:
        log.info("stopped at step %d; snapshot in %s. Continue with resume=auto", summary.steps, snapshots.folder)
    elif ranks.is_main:
        payload = network_file(network, summary, asdict(cfg), loss_fn, device)
        publish(Path(cfg.checkpoint_dir), run_dir, network.name, payload)


if __name__ == "__main__":
    cli.run(main)
