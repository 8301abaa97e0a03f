"""Quality parity of the model variants: same training budget, same data, same loss; held-out losses.

    python scripts/eval_quality.py --train-root photos/ --heldout-root heldout/ --style-image starry.jpg \
        --steps 2000 [--variants johnson fast] [hydra overrides such as loss.weights=/path/vgg16.pth]

Each variant is trained with `python -m stylenet.train` (same seed, so the same data order), then
its outputs on the held-out photos are scored with the same PerceptualLoss. Prints a Markdown
table: each variant's total held-out loss relative to the first variant's, and its CPU latency on
one --speed-size x --speed-size image (fp32, median of 3), measured in the same run as the others'.
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime
from pathlib import Path

import torch
from shelf import describe_machine, median_seconds, train_network

import stylenet
from stylenet.common.errors import StylenetError
from stylenet.common.runtime import seed_everything
from stylenet.config.compose import compose_options
from stylenet.data.photos import ImageFolder, load_style_image, readable_batch
from stylenet.loss.perceptual import perceptual_loss
from stylenet.loss.scores import heldout_losses

VARIANTS = ["johnson", "separable", "resize", "fast"]


def train(variant: str, args: argparse.Namespace, workdir: Path) -> Path:
    overrides = [
        f"model={variant}",
        "data=folder",
        f"data.root={args.train_root}",
        "style=custom",
        f"style.image={args.style_image}",
        f"style.name={variant}",
        f"style.size={args.style_size}",
        f"steps={args.steps}",
        f"data.image_size={args.image_size}",
        f"data.batch_size={args.batch_size}",
        f"data.workers={args.workers}",
        f"seed={args.seed}",
        f"lr={args.lr}",
        f"log_interval={max(1, args.steps // 20)}",
        f"preview.interval={args.steps}",
        f"checkpoint_interval={args.steps}",
        f"hydra.run.dir={workdir / variant}",
        f"checkpoint_dir={workdir / 'checkpoints'}",
        *args.overrides,
    ]
    train_network(variant, overrides)
    return workdir / "checkpoints" / f"{variant}.pt"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train-root", type=Path, required=True)
    parser.add_argument("--heldout-root", type=Path, required=True)
    parser.add_argument("--style-image", required=True)
    parser.add_argument("--variants", nargs="+", default=VARIANTS)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--image-size", type=int, default=256, help="training crop size")
    parser.add_argument("--eval-size", type=int, default=256, help="held-out photos are scored at this size")
    parser.add_argument("--style-size", type=int, default=512)
    parser.add_argument("--speed-size", type=int, default=1000, help="latency is measured on a square of this size")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument(
        "--workdir", type=Path, default=Path("outputs/eval_quality") / f"{datetime.now():%Y-%m-%d_%H-%M-%S}"
    )
    parser.add_argument(
        "--score-only",
        action="store_true",
        help="score the networks already in --workdir/checkpoints (same arguments) without training",
    )
    parser.add_argument("overrides", nargs="*", help="Hydra overrides for training and scoring, e.g. loss=vgg19")
    args = parser.parse_args()

    try:
        checkpoints = {}
        for variant in args.variants:
            if args.score_only:
                checkpoints[variant] = args.workdir / "checkpoints" / f"{variant}.pt"
                if not checkpoints[variant].is_file():
                    raise StylenetError(
                        f"--score-only: no trained {variant} network at {checkpoints[variant]}; "
                        f"run once without --score-only (same --workdir) to train it"
                    )
                continue
            print(f"training {variant} ({args.steps} steps) ...", flush=True)
            checkpoints[variant] = train(variant, args, args.workdir)
        loss_options = compose_options("train", args.overrides).loss
        seed_everything(args.seed)  # random VGG weights (tests) come out the same in every scoring run
        loss_fn = perceptual_loss(loss_options, load_style_image("style", args.style_image, args.style_size))
        photos = readable_batch(ImageFolder(args.heldout_root, args.eval_size))
    except StylenetError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2

    print(
        f"\n{describe_machine(torch.device('cpu'))}; {len(photos)} held-out photos at {args.eval_size} px; "
        f"{args.steps} steps of {args.batch_size} at {args.image_size} px per variant; loss weights: "
        f"{loss_fn.encoder.weights_id}; latency on one {args.speed_size} px square\n"
    )
    print("| variant | training s | content | style | tv | total | total vs first | ms | speed vs first |")
    print("|" + " --- |" * 9)
    reference = speed = None
    square = torch.rand(1, 3, args.speed_size, args.speed_size)
    for variant, path in checkpoints.items():
        try:
            stylizer = stylenet.load(path, device="cpu")
        except StylenetError as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
        losses = heldout_losses(stylizer.model, loss_fn, photos)
        seconds = median_seconds(lambda: stylizer(square), torch.device("cpu"), warmup=1, repeats=3)
        reference, speed = reference or losses["total"], speed or seconds
        print(
            f"| {variant} | {stylizer.summary['seconds']:.0f} | {losses['content']:.4g} | {losses['style']:.4g} | "
            f"{losses['tv']:.4g} | {losses['total']:.4g} | {losses['total'] / reference:.3f} | {seconds * 1e3:.0f} | "
            f"{speed / seconds:.2f}x |",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
