"""Training speed from the image folder and from the precomputed cache: the real training step, same
model, loss and batch; writes Markdown tables.

    python scripts/bench_training.py                                  # generated COCO-like JPEGs; CPU, and CUDA when present
    python scripts/bench_training.py --images data/coco/train2014 --count 2000 --image-size 256
    python scripts/bench_training.py --smoke                          # tiny sizes: checks the script works
    python scripts/bench_training.py loss.content_layer=relu4_1 --workers 0   # loss overrides come first
    python scripts/bench_training.py --image-size 256 --switches      # each speed switch on and off

For each data source (the folder; the cache with content features; the images-only cache) and each
DataLoader worker count it runs stylenet.training.loop.fit for --warmup steps, then times --steps more, and
reports seconds per step, steps per second, the share of the step spent waiting for data, and the
speed-up over the folder with the same workers. It also times the pieces a cache removes: decoding
and cropping one batch, and the content images' VGG pass; and the precompute itself. The VGG has
random weights (timing does not depend on their values), so no download is needed.
"""

from __future__ import annotations

import argparse
import copy
import logging
import math
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from hydra.errors import HydraException
from omegaconf.errors import OmegaConfBaseException
from PIL import Image
from shelf import describe_machine, device_busy_share, median_seconds, parse_size, timed
from torch.utils.data import DataLoader
from torch.utils.flop_counter import FlopCounterMode

from stylenet.common.errors import StylenetError
from stylenet.common.images import list_images
from stylenet.common.runtime import seed_everything
from stylenet.config.compose import compose_options, model_config
from stylenet.config.schema import TrainConfig
from stylenet.data.photos import EpochSampler, ImageFolder, collate_skipping_unreadable
from stylenet.data.precomputed import (
    CachedImages,
    CacheWriter,
    array_bytes,
    fill,
    human_bytes,
    identity,
    new_manifest,
    pass_batch_through,
)
from stylenet.loss.perceptual import PerceptualLoss, perceptual_loss
from stylenet.nets.transformer import TransformerNet
from stylenet.training.loop import Batches, Plan, Reporting, RunSummary, StepSettings, fit
from stylenet.training.monitor import RunLog
from stylenet.training.snapshots import Position

SOURCES = ("folder", "cache", "cache, images only")


def generate_photos(folder: Path, count: int, width: int, height: int) -> None:
    """COCO-like JPEGs (COCO's median is 640x480): smooth colour fields with detail, quality 90."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:height, 0:width] / max(height, width)
    for index in range(count):
        phase = rng.uniform(0, 6, size=3)
        base = np.stack([np.sin(7 * x + phase[0]), np.cos(5 * y + phase[1]), np.sin(4 * (x + y) + phase[2])], -1)
        pixels = np.clip((base * 0.35 + 0.5 + rng.normal(0, 0.06, base.shape)) * 255, 0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(folder / f"photo_{index:05d}.jpg", quality=90)


def build_cache(
    folder: Path, dataset: ImageFolder, loss_fn: PerceptualLoss | None, device: torch.device, batch_size: int
) -> tuple[CachedImages, float]:
    """Precompute a cache the way python -m stylenet.precompute does; returns it and images per second."""
    encoder, layer = (loss_fn.encoder, loss_fn.content_layer) if loss_fn is not None else (None, None)
    files = [path.relative_to(dataset.root).as_posix() for path in dataset.files]
    writer = CacheWriter(folder, new_manifest(files, identity(dataset.root, dataset.image_size, encoder, layer)))
    started = time.perf_counter()
    fill(writer, dataset, encoder, layer, batch_size=batch_size, workers=0, device=device, amp=True, commit_interval=20)
    writer.finish()
    return CachedImages(folder), len(dataset) / (time.perf_counter() - started)


@dataclass(frozen=True)
class Switches:
    """The training speed switches of conf/train.yaml (and +optimizer.fused), as one benchmark row sets them."""

    bf16: bool = False
    channels_last: bool = False
    compile: str | None = None
    fused_adam: bool = False


SWITCH_ROWS = {
    "none (fp32)": Switches(),
    "precision=bf16": Switches(bf16=True),
    "channels_last=true": Switches(channels_last=True),
    "compile=true": Switches(compile="default"),
    "compile=reduce-overhead": Switches(compile="reduce-overhead"),
    "+optimizer.fused=true": Switches(fused_adam=True),
    "all four": Switches(True, True, "default", True),
    "all four, compile=reduce-overhead": Switches(True, True, "reduce-overhead", True),
}


def training_flops(loss_fn: PerceptualLoss, args: argparse.Namespace, device: torch.device) -> int:
    """Floating-point operations of one training step per image (network and loss, forward and backward,
    content features from the truncated VGG pass), counted by torch's FLOP counter at batch 1."""
    model = TransformerNet(**model_config(args.model)).to(device)
    image = torch.rand(1, 3, args.image_size, args.image_size, device=device)
    counter = FlopCounterMode(display=False)
    with counter:
        loss_fn(model(image), image)["total"].backward()
    return counter.get_total_flops()


def timed_training(
    dataset: ImageFolder | CachedImages,
    loss_fn: PerceptualLoss,
    args: argparse.Namespace,
    workers: int,
    device: torch.device,
    run_dir: Path,
    switches: Switches,
) -> dict[str, float]:
    """Seconds per step and data-wait share of `args.steps` training steps after `args.warmup` steps,
    set up as stylenet.train sets up a run with these switches."""
    seed_everything(0)
    memory_format = torch.channels_last if switches.channels_last else torch.contiguous_format
    model = TransformerNet(**model_config(args.model)).to(device, memory_format=memory_format)
    loss_fn = copy.deepcopy(loss_fn).to(memory_format=memory_format)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, fused=switches.fused_adam or None)
    trained, step_loss = model, loss_fn
    if switches.compile:
        trained, step_loss = torch.compile(model, mode=switches.compile), torch.compile(loss_fn, mode=switches.compile)
    sampler = EpochSampler(len(dataset), seed=0)
    collate = pass_batch_through if isinstance(dataset, CachedImages) else collate_skipping_unreadable
    loader = DataLoader(
        dataset,
        batch_size=args.batch_size,
        sampler=sampler,
        num_workers=workers,
        persistent_workers=workers > 0,
        pin_memory=device.type == "cuda",
        collate_fn=collate,
    )
    photo = torch.rand(1, 3, args.image_size, args.image_size, device=device)
    run_log, position = RunLog(run_dir), Position()

    def train_to(steps: int) -> RunSummary:
        settings = StepSettings(device, switches.bf16, memory_format)
        return fit(
            trained,
            step_loss,
            optimizer,
            Batches(loader, sampler, position, steps, settings),
            Plan(steps, 10**9, 10**9, 10**9),
            Reporting(run_log, photo, lambda *_: None),
            settings,
        )

    try:
        train_to(args.warmup)
        summary, seconds = timed(lambda: train_to(args.warmup + args.steps), device)
        busy = device_busy_share(lambda: train_to(args.warmup + args.steps + args.profile_steps), device)
    finally:
        run_log.close()
    return {"seconds": seconds / args.steps, "data_share": summary.data_wait_share, "busy": busy}


def duration(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h" if seconds >= 3600 else f"{seconds / 60:.1f} min"


def share(fraction: float) -> str:
    """A percentage, or n/a where it was not measured (GPU busy off CUDA)."""
    return "n/a" if math.isnan(fraction) else f"{fraction * 100:.0f}%"


def bench_switches(
    sources: dict[str, ImageFolder | CachedImages],
    loss_fn: PerceptualLoss,
    args: argparse.Namespace,
    device: torch.device,
    workdir: Path,
) -> None:
    """Each speed switch alone and all together, from the folder and from the cache: images/s and the
    time 160,000 training images (Johnson et al.'s 40,000 steps of 4) would take at this size."""
    workers = args.workers[0]
    print(
        "| switches | data | images/s | 160,000 images | vs none | data wait | GPU busy |\n"
        "| --- | --- | --- | --- | --- | --- | --- |",
        flush=True,
    )
    baseline = None
    for data in SOURCES:
        for name, switches in SWITCH_ROWS.items():
            result = timed_training(
                sources[data], loss_fn, args, workers, device, workdir / "runs" / f"switch_{data}_{len(name)}", switches
            )
            rate = args.batch_size / result["seconds"]
            baseline = baseline or rate
            print(
                f"| {name} | {data} | {rate:.2f} | {duration(160_000 / rate)} | {rate / baseline:.2f}x | "
                f"{result['data_share'] * 100:.1f}% | {share(result['busy'])} |",
                flush=True,
            )


def bench_device(
    device: torch.device, dataset: ImageFolder, cfg: TrainConfig, args: argparse.Namespace, workdir: Path
) -> None:
    workdir = Path(tempfile.mkdtemp(prefix=f"{device.type}_", dir=workdir))  # fresh caches, whatever --workdir holds
    print(f"\n### {device.type.upper()}: {describe_machine(device)}\n", flush=True)
    seed_everything(0)
    logging.getLogger("stylenet.vgg.encoder").setLevel(logging.ERROR)  # the random-weights warning: expected here
    loss_fn = perceptual_loss(cfg.loss, torch.rand(3, args.image_size, args.image_size, device=device))
    size = args.image_size
    print(
        f"{len(dataset)} images from {dataset.root}, {size}x{size} crops, batch {args.batch_size}, model "
        f"{args.model}, loss {args.loss} (content {loss_fn.content_layer}, style to "
        f"{list(loss_fn.style_layer_weights)[-1]}), {args.warmup} warm-up + {args.steps} timed steps\n",
        flush=True,
    )

    cached, rate = build_cache(workdir / "cache", dataset, loss_fn, device, args.precompute_batch)
    images_only, images_rate = build_cache(workdir / "cache_images", dataset, None, device, args.precompute_batch)
    sources = {"folder": dataset, "cache": cached, "cache, images only": images_only}

    batch = torch.rand(args.batch_size, 3, size, size, device=device)
    with torch.no_grad():
        content_pass = median_seconds(lambda: loss_fn.encoder(batch, [loss_fn.content_layer]), device, 1, args.repeats)
        full_pass = median_seconds(lambda: loss_fn.encoder(batch), device, 1, args.repeats)
    decode = median_seconds(
        lambda: [dataset[index] for index in range(args.batch_size)], torch.device("cpu"), 1, args.repeats
    )
    print("| piece (one batch) | median |\n| --- | --- |")
    print(f"| decode + crop {args.batch_size} JPEGs (one process) | {decode * 1000:.1f} ms |")
    print(
        f"| content VGG pass, no grad, to {loss_fn.content_layer} (what the cache removes) | {content_pass * 1000:.1f} ms |"
    )
    print(
        f"| content VGG pass, no grad, to the deepest loss layer (as the PyTorch example does) | {full_pass * 1000:.1f} ms |"
    )
    features_bytes = array_bytes(cached.manifest).get("features", 0) / len(dataset)
    flops = training_flops(loss_fn, args, device)
    print(
        f"\nwork per training image: {flops / 1e9:.1f} GFLOP (torch's FLOP counter; at 270 images/s that is "
        f"{flops * 270 / 1e12:.1f} TFLOP/s)"
    )
    print(
        f"\nprecompute: {rate:.1f} images/s with features ({human_bytes(features_bytes)} of features per image), "
        f"{images_rate:.1f} images/s images only\n",
        flush=True,
    )

    if args.switches:
        bench_switches(sources, loss_fn, args, device, workdir)
        return
    print(
        "| data | workers | s/step | steps/s | data wait | GPU busy | vs folder |\n"
        "| --- | --- | --- | --- | --- | --- | --- |",
        flush=True,
    )
    for workers in args.workers:
        baseline = None
        for name in SOURCES:
            result = timed_training(
                sources[name],
                loss_fn,
                args,
                workers,
                device,
                workdir / "runs" / f"{name}_{workers}",
                Switches(bf16=device.type == "cuda"),
            )
            baseline = baseline or result["seconds"]
            print(
                f"| {name} | {workers} | {result['seconds']:.3f} | {1 / result['seconds']:.2f} | "
                f"{result['data_share'] * 100:.1f}% | {share(result['busy'])} | {baseline / result['seconds']:.2f}x |",
                flush=True,
            )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=Path, help="a folder of photos (default: generate --count JPEGs)")
    parser.add_argument("--count", type=int, default=64, help="images to use")
    parser.add_argument("--photo-size", default="640x480", help="size of generated photos, WIDTHxHEIGHT")
    parser.add_argument("--image-size", type=int, default=128, help="training crop size")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--precompute-batch", type=int, default=16)
    parser.add_argument("--model", default="johnson")
    parser.add_argument("--loss", default="vgg16")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--profile-steps",
        type=int,
        default=5,
        help="steps after the timed ones run under the profiler for the GPU busy share (CUDA only)",
    )
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: torch's choice)")
    parser.add_argument("--device", choices=["cpu", "cuda", "all"], default="all")
    parser.add_argument("--workdir", type=Path, help="where images, caches and runs go (default: a temporary folder)")
    parser.add_argument(
        "--switches",
        action="store_true",
        help="instead of the data table: each speed switch (bf16, channels_last, compile, fused Adam) "
        "alone and together, from the folder and the cache, with the time for 160,000 images",
    )
    parser.add_argument("--smoke", action="store_true", help="tiny sizes and few steps: does the script work")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides of the loss, e.g. loss.content_layer=relu4_1")
    args = parser.parse_args()
    if args.smoke:
        args.count, args.photo_size, args.image_size, args.steps, args.warmup, args.repeats = 6, "64x48", 32, 2, 1, 1
        args.workers, args.model = [0], "tiny"
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.device == "cuda" and not torch.cuda.is_available():
        print("error: --device cuda but no CUDA device is available", file=sys.stderr)
        return 2
    try:
        width, height = parse_size(args.photo_size)
    except ValueError:
        print(f"error: --photo-size must look like 640x480, got '{args.photo_size}'", file=sys.stderr)
        return 2
    try:
        cfg = compose_options(
            "train", [f"model={args.model}", f"loss={args.loss}", "loss.pretrained=false", *args.overrides]
        )
    except (HydraException, OmegaConfBaseException, StylenetError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    devices = [torch.device("cpu")] if args.device in ("cpu", "all") else []
    if args.device in ("cuda", "all") and torch.cuda.is_available():
        devices.append(torch.device("cuda"))

    with tempfile.TemporaryDirectory(prefix="bench_training_") as temporary:
        workdir = args.workdir or Path(temporary)
        root = args.images
        if root is None:
            root = workdir / "photos"
            generate_photos(root, args.count, width, height)
        elif not root.is_dir():
            print(f"error: --images {root} is not a folder", file=sys.stderr)
            return 2
        files = [path.relative_to(root).as_posix() for path in list_images(root)[: args.count]]
        if len(files) < args.batch_size:
            print(f"error: need at least {args.batch_size} images in {root}, found {len(files)}", file=sys.stderr)
            return 2
        try:
            dataset = ImageFolder(root, args.image_size, files=files)
            for device in devices:
                bench_device(device, dataset, cfg, args, workdir)
        except StylenetError as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
