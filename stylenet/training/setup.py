"""The training run's set-up, for python -m stylenet.train: the data and its loader, the network (new, or grown by
styles), the style layers' weights at step 0, the network wrapped for the step (bf16, memory format, DDP,
distillation, compile), and at the end the network file. The loop itself is stylenet.training.loop."""

from __future__ import annotations

import inspect
import logging
import platform
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader

from stylenet.common.errors import StylenetError
from stylenet.common.images import pil_to_tensor, read_image, unit_float
from stylenet.common.precision import trains_in_bf16
from stylenet.common.runtime import Distributed, data_workers, leave_stopping_to_the_main_process
from stylenet.data.photos import (
    DataOptions,
    EpochSampler,
    ImageFolder,
    Photos,
    TrainingBatch,
    center_crop_resized,
    collate_skipping_unreadable,
    readable_batch,
)
from stylenet.data.precomputed import CachedImages, DeviceBatches, pass_batch_through
from stylenet.loss.perceptual import Distilled, PerceptualLoss
from stylenet.nets.network_file import (
    atomic_save,
    build_model,
    inference_payload,
    load_network_file,
    model_config,
    style_names,
)
from stylenet.nets.transformer import TransformerNet
from stylenet.training.loop import RunSummary, StepSettings, StyleSchedule
from stylenet.training.snapshots import Position, find_resume, restore

log = logging.getLogger("stylenet.train")


@dataclass
class TrainingData:
    """The photos, their order (the sampler, which makes resumes exact), the loader, how many steps the run takes
    and the fixed photos of the previews."""

    dataset: ImageFolder | CachedImages
    sampler: EpochSampler
    loader: DataLoader | DeviceBatches
    steps: int
    preview_photos: torch.Tensor


@dataclass(frozen=True)
class Length:
    """How long a run is (the options steps, epochs, seed) and which photos its previews show (preview.*)."""

    steps: int
    epochs: int | None
    seed: int
    preview_images: list[str]
    preview_count: int


def open_data(
    data: DataOptions, length: Length, loss_fn: PerceptualLoss, ranks: Distributed, device: torch.device
) -> TrainingData:
    """data.batch_size is the global batch: each rank loads its share."""
    if data.batch_size % ranks.world:
        raise StylenetError(
            f"data.batch_size={data.batch_size} is the global batch: it must divide evenly "
            f"between the {ranks.world} ranks"
        )
    dataset, collate = open_training_data(data, loss_fn)
    previews = preview_batch(dataset, length.preview_images, length.preview_count).to(device)
    per_rank = data.batch_size // ranks.world
    sampler = EpochSampler(len(dataset), length.seed, ranks.rank, ranks.world, per_rank)
    workers = data_workers(data.workers)
    loader = make_loader(dataset, collate, sampler, per_rank, workers, data.cache_on_device, device)
    return TrainingData(dataset, sampler, loader, total_steps(length.steps, length.epochs, len(loader)), previews)


def preview_batch(dataset: Photos, paths: list[str], count: int) -> torch.Tensor:
    """Fixed photos for previews: the given paths, else the first `count` readable training images; each the
    central square at the scale the network learns to paint (data.photo_size where set)."""
    size = getattr(dataset, "photo_size", None) or dataset.image_size
    if paths or size != dataset.image_size:
        paths = paths or [str(path) for path in getattr(dataset, "files", [])[:count]]
        try:
            photos = [pil_to_tensor(center_crop_resized(read_image(path), size)) for path in paths]
        except StylenetError as error:
            raise StylenetError(f"preview.images: {error}") from None
        return torch.stack(photos)
    return readable_batch(dataset, count)


def open_training_data(data: DataOptions, loss_fn: PerceptualLoss) -> tuple[ImageFolder | CachedImages, Callable]:
    """The cache in data.cache (refused unless made for this loss and crop size), else the images in
    data.root; with the collate_fn that goes with it."""
    if not data.cache:
        if data.root is None:
            raise StylenetError("data.root: give the folder of training photos (or data.cache, a precomputed cache)")
        dataset = ImageFolder(data.root, data.image_size, photo_size=data.photo_size)
        log.info("%d training images in %s", len(dataset), dataset.root)
        return dataset, collate_skipping_unreadable
    cached = CachedImages(data.cache)
    cached.require_for(loss_fn.encoder, loss_fn.content_layer, data.image_size)
    layer = loss_fn.content_layer
    what = f"and {layer} features (no content VGG pass)" if cached.has_features else "(images only)"
    log.info("%d training images from the cache in %s %s", len(cached), cached.root, what)
    return cached, pass_batch_through


def make_loader(
    dataset: ImageFolder | CachedImages,
    collate: Callable,
    sampler: EpochSampler,
    batch_size: int,
    workers: int,
    on_device: bool,
    device: torch.device,
) -> DataLoader | DeviceBatches:
    """Batches of the sampler's order: a DataLoader (worker processes decode or read the cache), or with
    data.cache_on_device the whole cache in the device's memory (cache.DeviceBatches)."""
    if on_device:
        if not isinstance(dataset, CachedImages):
            raise StylenetError(
                "data.cache_on_device=true needs data.cache=<folder>, a cache made by python -m stylenet.precompute"
            )
        log.info("the cache is held in %s memory: batches are indexed there", device)
        return DeviceBatches(dataset, sampler, batch_size, device)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=workers,
        persistent_workers=workers > 0,
        pin_memory=device.type == "cuda",
        collate_fn=collate,
        worker_init_fn=leave_stopping_to_the_main_process,
    )


def total_steps(steps: int, epochs: int | None, batches_per_epoch: int) -> int:
    """`steps`, or with `epochs` that many passes over the data."""
    total = epochs * batches_per_epoch if epochs else steps
    if total < 1:
        raise StylenetError(f"nothing to train: steps={steps}, epochs={epochs}")
    return int(total)


def weigh_style_layers(
    loss_fn: PerceptualLoss,
    model: nn.Module,
    loader: Iterable[TrainingBatch],
    device: torch.device,
    ranks: Distributed,
    style_schedule: StyleSchedule | None,
    mode: str,
) -> None:
    """loss.style_layer_norm=auto: weigh the style layers by the untrained network's output on the first
    (global) training batch; =photos: by the batch's photos themselves (PerceptualLoss.relative_to_photos).
    Each image is measured against the style the schedule gives it at step 0."""
    batch, _, _ = next(batch for batch in loader if batch[0].numel() > 0)
    content = unit_float(batch.to(device))
    with torch.no_grad():
        if style_schedule is None:
            raw = loss_fn.style_layer_losses(content if mode == "photos" else model(content))
        else:
            style_index, style_weights = style_schedule.assign(
                0, len(content), ranks.rank * len(content), len(content) * ranks.world, device
            )
            raw = loss_fn.style_layer_losses(
                content if mode == "photos" else model(content, style_weights), style_index
            )
    averaged = dict(zip(raw, ranks.mean(torch.tensor(list(raw.values()), dtype=torch.float64, device=device)).tolist()))
    before = dict(loss_fn.style_layer_weights)
    after = loss_fn.normalise_style_layers(mode, averaged)
    log.info(
        "style_layer_norm=%s: style layer weights %s (were %s)",
        mode,
        {name: f"{value:.4g}" for name, value in after.items()},
        before,
    )


@dataclass
class TrainingNetwork:
    """What training starts from: the network, its constructor config, the names of all its styles,
    the name it is published under, and the style schedule (None for a network of one style)."""

    model: TransformerNet
    model_cfg: dict[str, Any]
    style_names: list[str]
    name: str
    style_schedule: StyleSchedule | None


def build_network(
    model_options: Mapping[str, Any],
    names: list[str],
    style_name: str,
    add_style_to: str | None = None,
    init: str | None = None,
) -> TrainingNetwork:
    """A new network (TransformerNet(**model_options)) with one style per style image, published as
    `style_name`; or, with add_style_to, that trained network grown by these styles, everything but the new
    styles' normalisation parameters frozen (so the styles it had stay bit for bit the same), published as
    '<its name>+<style_name>'."""
    if add_style_to:
        payload = load_network_file(add_style_to)
        existing = style_names(payload)
        clashes = [name for name in names if name in existing]
        if clashes:
            raise StylenetError(
                f"{add_style_to} already has style(s) {', '.join(clashes)} "
                f"(it has {', '.join(existing)}): name the new one with style.name=..."
            )
        model = build_model(payload, add_style_to)
        if not model.norms():
            raise StylenetError(
                f"{add_style_to} has no instance norm (model_cfg {payload['model_cfg']}), where added styles would live"
            )
        trained = model.add_styles(len(names))
        model.requires_grad_(False)
        for parameter in model.style_parameters(trained):
            parameter.requires_grad_(True)
        log.info(
            "adding style(s) %s to %s (styles %s): only their normalisation parameters are trained; "
            "the network comes from that file, model options are not used",
            names,
            add_style_to,
            existing,
        )
        model_cfg = {**payload["model_cfg"], "num_styles": model.num_styles}
        all_names, published = existing + names, f"{payload['style']}+{style_name}"
    else:
        model_cfg = dict(model_options)
        requested = model_cfg.get("num_styles")
        if requested is not None and requested != len(names):
            raise StylenetError(
                f"model.num_styles={requested}, but style '{style_name}' has {len(names)} image(s); "
                f"leave model.num_styles=null to have one style per image"
            )
        model_cfg["num_styles"] = len(names)
        try:
            model = TransformerNet(**model_cfg)
        except (TypeError, ValueError) as error:
            raise StylenetError(f"model config {model_cfg}: {error}") from None
        if init:
            start_from(model, model_cfg, init)
        trained, all_names, published = list(range(len(names))), names, style_name
    schedule = None if model.num_styles == 1 else StyleSchedule(tuple(names), tuple(trained), model.num_styles)
    return TrainingNetwork(model, model_cfg, all_names, published, schedule)


def start_from(model: TransformerNet, model_cfg: Mapping[str, Any], init: str) -> None:
    """Fine-tuning: the weights of the network file `init`, which must be the network the model options build
    (a zoo network trained further with another loss or style image)."""
    payload = load_network_file(init)
    defaults = {
        name: parameter.default
        for name, parameter in inspect.signature(TransformerNet).parameters.items()
        if parameter.default is not inspect.Parameter.empty
    }
    theirs, mine = {**defaults, **model_config(payload["model_cfg"])}, {**defaults, **model_cfg}
    differ = sorted(key for key in {*theirs, *mine} if theirs.get(key) != mine.get(key))
    if differ:
        settings = ", ".join(f"model.{key}={theirs.get(key)} (not {mine.get(key)})" for key in differ)
        raise StylenetError(f"init={init} is another network than this run builds: pass {settings}")
    model.load_state_dict(build_model(payload, init).state_dict())
    log.info("starting from the weights of %s (style %s)", init, payload.get("style"))


COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


def load_teacher(name: str, model: TransformerNet, device: torch.device) -> torch.nn.Module:
    """The network whose pictures distillation learns (stylenet.loss.perceptual.Distilled): one style, like the student."""
    payload = load_network_file(name)
    teacher = build_model(payload, name)
    if teacher.num_styles > 1 or model.num_styles > 1:
        raise StylenetError(
            f"distill.teacher={name}: distillation trains one style from a network of one style "
            f"(the teacher has {teacher.num_styles}, the trained network {model.num_styles})"
        )
    log.info("distillation: learning the pictures of %s (style %s) as well as the loss", name, payload["style"])
    return teacher.to(device)


def compile_mode(setting: bool | str) -> str | None:
    """conf/train.yaml's `compile`: false, true (torch.compile's default mode) or a mode's name."""
    if setting is False:
        return None
    if setting is True:
        return "default"
    return setting  # one of COMPILE_MODES: config.schema.TrainConfig checks it


def publish(checkpoint_dir: Path, run_dir: Path, name: str, payload: dict[str, Any]) -> None:
    """The inference file in checkpoint_dir, and a copy in the run folder that a later run cannot replace."""
    run_copy, published = run_dir / f"{name}.pt", checkpoint_dir / f"{name}.pt"
    atomic_save(payload, run_copy)
    try:
        atomic_save(payload, published)
    except StylenetError as error:
        raise StylenetError(f"{error}; the trained network is safe in {run_copy}") from None
    summary = payload["summary"]  # RunSummary as a dict, with the run's provenance
    log.info("final losses: %s", {key: f"{value:.4g}" for key, value in summary["final_losses"].items()})
    if summary["health_alarms"]:
        log.warning("health alarms during this run: %s", "; ".join(summary["health_alarms"]))
    log.info("wrote %s (a copy stays in %s)", published, run_copy)


def start_position(
    resume: str | None,
    style_layer_norm: str,
    run_dir: Path,
    current: dict[str, Any],
    network: TrainingNetwork,
    optimizer: torch.optim.Optimizer,
    loss_fn: PerceptualLoss,
    data: TrainingData,
    ranks: Distributed,
    device: torch.device,
) -> tuple[Position, float | None]:
    """Where the run starts: a snapshot's position, weights, optimiser and style layer weights (resume), else
    step 0 with the style layers weighed (loss.style_layer_norm). Also the resumed run's last total loss."""
    resume_from = find_resume(resume, run_dir, current)
    if resume_from is not None:
        path, payload = resume_from
        position = restore(payload, network.model, optimizer, loss_fn)
        log.info("resuming from step %d of %s", position.step, path)
        return position, payload.get("last_losses", {}).get("total")
    if style_layer_norm != "none":
        schedule = network.style_schedule
        weigh_style_layers(loss_fn, network.model, data.loader, device, ranks, schedule, style_layer_norm)
    return Position(), None


@dataclass(frozen=True)
class Switches:
    """How each step runs (the options precision, channels_last, compile) and what it learns besides the
    perceptual loss (distill.teacher, distill.weight; loss.equivariance_weight)."""

    precision: str
    channels_last: bool
    compile: bool | str
    teacher: str | None
    teacher_weight: float
    equivariance_weight: float = 0.0


def for_training(
    network: TrainingNetwork, loss_fn: PerceptualLoss, switches: Switches, ranks: Distributed, device: torch.device
) -> tuple[nn.Module, Callable[..., dict[str, torch.Tensor]], StepSettings]:
    """The network and the loss as each step calls them: memory format, DistributedDataParallel over several
    ranks, the teacher's pictures (distill.teacher), torch.compile; and the step's settings."""
    settings = StepSettings(
        device,
        trains_in_bf16(switches.precision, device),
        torch.channels_last if switches.channels_last else torch.contiguous_format,
        ranks,
        network.style_schedule,
        switches.equivariance_weight,
    )
    network.model.to(memory_format=settings.memory_format)
    loss_fn.to(memory_format=settings.memory_format)
    stepped: nn.Module = network.model
    if ranks.world > 1:
        stepped = DistributedDataParallel(stepped, device_ids=[device.index] if device.type == "cuda" else None)
    step_loss: Callable[..., dict[str, torch.Tensor]] = loss_fn
    if switches.teacher is not None:
        teacher = load_teacher(switches.teacher, network.model, device)
        step_loss = Distilled(loss_fn, teacher, switches.teacher_weight)
    mode = compile_mode(switches.compile)
    if mode is not None:
        stepped = torch.compile(stepped, mode=mode)  # type: ignore[assignment]  # an OptimizedModule
        step_loss = torch.compile(step_loss, mode=mode)
    return stepped, step_loss, settings


def network_file(
    network: TrainingNetwork, summary: RunSummary, config: dict[str, Any], loss_fn: PerceptualLoss, device: torch.device
) -> dict[str, Any]:
    """What inference loads: the weights, and how they were made (the run's summary, config and provenance)."""
    provenance = {
        "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "device": str(device),
        "torch": str(torch.__version__),
        "python": platform.python_version(),
        "loss_weights": loss_fn.encoder.weights_id,
        "style_layer_weights": loss_fn.style_layer_weights,
        "config": config,
    }
    record = {**asdict(summary), **provenance}
    return inference_payload(network.model, network.model_cfg, network.name, record, network.style_names)
