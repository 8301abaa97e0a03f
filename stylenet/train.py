"""python -m stylenet.train: train a transform network for one style (or several) against the frozen
VGG loss. The loop and what it is built from live in stylenet.training.loop; resume in stylenet.training.snapshots."""

from __future__ import annotations

import logging
import platform
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path

import hydra
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig
from torch.nn.parallel import DistributedDataParallel

from stylenet.common.errors import StylenetError, exits_cleanly
from stylenet.common.precision import training_autocast
from stylenet.common.runtime import (
    Distributed,
    StopRequest,
    data_workers,
    quiet_logging,
    seed_everything,
    start_distributed,
)
from stylenet.config import cli
from stylenet.config.schema import TrainConfig, typed
from stylenet.data.photos import EpochSampler, load_style_images
from stylenet.loss.perceptual import Distilled, perceptual_loss
from stylenet.nets.network_file import inference_payload
from stylenet.training.health import HealthMonitor, unstylised_threshold
from stylenet.training.loop import (
    Batches,
    Plan,
    Reporting,
    StepSettings,
    TrainingDiverged,
    balance_style_layers,
    build_network,
    compile_mode,
    fit,
    load_teacher,
    make_loader,
    open_training_data,
    preview_batch,
    publish,
    total_steps,
)
from stylenet.training.monitor import RunLog
from stylenet.training.snapshots import (
    Position,
    Snapshots,
    find_resume,
    fingerprint,
    hold_run_folder,
    restore,
    training_payload,
)

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
    finally:
        ranks.close()


def train(cfg: TrainConfig, ranks: Distributed, device: torch.device, run_dir: Path) -> None:
    if not ranks.is_main:
        quiet_logging()
    if cfg.data.batch_size % ranks.world:
        raise StylenetError(
            f"data.batch_size={cfg.data.batch_size} is the global batch: it must divide evenly "
            f"between the {ranks.world} ranks"
        )
    log.info(
        "run directory: %s; device: %s%s",
        run_dir,
        device,
        f"; {ranks.world} ranks, {cfg.data.batch_size // ranks.world} images per rank" if ranks.world > 1 else "",
    )
    seed_everything(cfg.seed)
    names, style_images = load_style_images(cfg.style)
    style_images = [image.to(device) for image in style_images]
    # Right after seeding: random VGG weights (tests) then come from the seed alone, as in precompute.
    loss_fn = perceptual_loss(cfg.loss, style_images)
    dataset, collate = open_training_data(cfg.data, loss_fn)
    preview_photos = preview_batch(dataset, list(cfg.preview.images), cfg.preview.count).to(device)
    current = fingerprint(asdict(cfg))
    resume_from = find_resume(cfg.resume, run_dir, current)
    network = build_network(asdict(cfg.model), names, cfg.style.name, cfg.add_style_to)
    model, style_schedule = network.model.to(device), network.style_schedule
    if style_schedule is not None:
        log.info("%d styles in one network; training %s", model.num_styles, ", ".join(style_schedule.names))
    optimizer = instantiate(
        cfg.optimizer, params=[parameter for parameter in model.parameters() if parameter.requires_grad]
    )
    per_rank = cfg.data.batch_size // ranks.world
    sampler = EpochSampler(len(dataset), cfg.seed, ranks.rank, ranks.world, per_rank)
    loader = make_loader(
        dataset, collate, sampler, per_rank, data_workers(cfg.data.workers), cfg.data.cache_on_device, device
    )
    steps = total_steps(cfg.steps, cfg.epochs, len(loader))

    position, resumed_total = Position(), None
    if resume_from is not None:
        path, payload = resume_from
        position = restore(payload, model, optimizer, loss_fn)
        resumed_total = payload.get("last_losses", {}).get("total")
        log.info("resuming from step %d of %s", position.step, path)
    elif cfg.loss.style_layer_norm != "none":
        balance_style_layers(loss_fn, model, loader, device, ranks, style_schedule, cfg.loss.style_layer_norm)

    snapshots = Snapshots(run_dir / "checkpoints", cfg.keep_checkpoints)

    def save_snapshot(at: Position, last_losses: dict[str, float]) -> None:
        snapshots.save(
            training_payload(
                model,
                optimizer,
                network.model_cfg,
                network.name,
                current,
                at.step,
                at.epoch,
                at.offset,
                last_losses=last_losses,
                style_layer_weights=loss_fn.style_layer_weights,
            ),
            at.step,
        )

    run_log = RunLog(run_dir, enabled=ranks.is_main)
    # What "keeps nothing of the photo" costs (health: content_lost): the content term of each preview photo
    # against another one, an output with a photo's statistics but none of this photo's content.
    unrelated = loss_fn.content_term(preview_photos.roll(1, 0), preview_photos) if len(preview_photos) > 1 else None
    # ... and what "changes nothing" costs (health: unstylised): the photos' own style term, over every style.
    unchanged = (
        sum(
            loss_fn.style_term(preview_photos, torch.full((len(preview_photos),), index, device=device))
            for index in range(loss_fn.num_styles)
        )
        / loss_fn.num_styles
        if ranks.is_main
        else None
    )
    health = (
        HealthMonitor(
            cfg.health,
            run_log,
            steps,
            preview_photos,
            style_images,
            resumed_total,
            content_reference=unrelated,
            style_reference=unchanged,
            unstylised=unstylised_threshold(cfg.loss.style_layer_norm),
        )
        if ranks.is_main
        else None
    )
    settings = StepSettings(
        device,
        training_autocast(cfg.precision, device),
        torch.channels_last if cfg.channels_last else torch.contiguous_format,
        ranks,
        style_schedule,
    )
    model.to(memory_format=settings.memory_format)
    loss_fn.to(memory_format=settings.memory_format)
    trained = (
        model
        if ranks.world == 1
        else DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    )
    step_loss: Callable[..., dict[str, torch.Tensor]] = loss_fn
    if cfg.distill.teacher is not None:
        step_loss = Distilled(loss_fn, load_teacher(str(cfg.distill.teacher), model, device), cfg.distill.weight)
    mode = compile_mode(cfg.compile)
    if mode is not None:
        trained = torch.compile(trained, mode=mode)  # type: ignore[assignment]  # an OptimizedModule
        step_loss = torch.compile(step_loss, mode=mode)
    max_seconds = None if cfg.max_minutes is None else cfg.max_minutes * 60
    plan = Plan(steps, cfg.log_interval, cfg.preview.interval, cfg.checkpoint_interval, max_seconds)
    try:
        with StopRequest() as stop:
            reporting = Reporting(run_log, preview_photos, save_snapshot, health, stop.event.is_set)
            summary = fit(
                trained,
                step_loss,
                optimizer,
                Batches(loader, sampler, position, steps, settings),
                plan,
                reporting,
                settings,
            )
        if not summary["stopped"]:
            run_log.hparams(
                cfg.hyperparameters(HydraConfig.get().runtime.choices),
                summary["final_losses"],
                summary["images_per_sec"],
                position.step,
            )
    except TrainingDiverged as error:
        last = snapshots.saved()
        kept = f"the last good snapshot is {last[-1]}" if last else "no snapshot had been written yet"
        raise StylenetError(f"{error}. Training stopped; {kept}. Try a lower lr (resume=<snapshot> lr=...)") from None
    finally:
        run_log.close()
    if summary["stopped_by_health"]:
        raise StylenetError(
            f"health=stop: training stopped at step {position.step} because of "
            f"{summary['stopped_by_health']}; snapshot in {snapshots.folder} "
            f"(continue with resume=auto, health=warn to go on regardless)"
        )
    if summary["stopped"]:
        log.info("stopped at step %d; checkpoint in %s. Continue with resume=auto", position.step, snapshots.folder)
        return
    if ranks.is_main:
        publish(
            Path(cfg.checkpoint_dir),
            run_dir,
            network.name,
            inference_payload(
                model,
                network.model_cfg,
                network.name,
                {
                    **summary,
                    "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                    "device": str(device),
                    "torch": str(torch.__version__),
                    "python": platform.python_version(),
                    "loss_weights": loss_fn.encoder.weights_id,
                    "style_layer_weights": loss_fn.style_layer_weights,
                    "config": asdict(cfg),
                },
                network.style_names,
            ),
        )


if __name__ == "__main__":
    cli.run(main)
