"""Adding a style to a trained multi-style network against training a one-style network from scratch.

    python scripts/bench_add_style.py --train-root photos/ --heldout-root heldout/ \
        --base-styles starry.jpg mosaic.jpg --new-style scream.jpg --base-steps 2000 --steps 1000 --eval-every 100

1. A network of the base styles is trained with `python -m stylenet.train style=multi` (or
   --base-checkpoint names a trained inference file to add to instead).
2. The new style is added to it with `add_style_to=` (only the new style's normalisation parameters
   train, with --add-lr, default --lr).
3. A one-style network of the new style is trained from scratch, with the same data, seed and loss.
Every `--eval-every` steps both runs write a training snapshot; each snapshot's outputs on the
held-out photos are scored with the new style's loss. Prints the held-out style loss per step and,
for each run's final value, the step at which the other run first reaches it.

Every run and the scoring use the same VGG weights: `--vgg-weights`, or (without ImageNet weights)
randomly initialised VGG16 features saved once into the work folder. Random weights make the
numbers a check of the mechanics, not of style quality.
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime
from pathlib import Path

import torch
import torch.nn.functional as F
from shelf import describe_machine, train_network

from stylenet.common.errors import StylenetError
from stylenet.config.compose import compose_options
from stylenet.data.photos import ImageFolder, load_style_image, readable_batch
from stylenet.loss.perceptual import perceptual_loss
from stylenet.loss.scores import heldout_losses
from stylenet.nets.network_file import build_model, load_network_file
from stylenet.training.snapshots import load_snapshot
from stylenet.vgg.encoder import layer_names


def train(name: str, overrides: list[str], args: argparse.Namespace, steps: int, lr: float | None = None) -> Path:
    """One `python -m stylenet.train` run (or, with --score-only, the one already in the work folder); returns its run folder."""
    run_dir = args.workdir / name
    if args.score_only:
        if not (run_dir / "checkpoints").is_dir():
            raise StylenetError(f"--score-only: no run {run_dir} to score")
        return run_dir
    common = [
        f"model={args.model}",
        "data=folder",
        f"data.root={args.train_root}",
        f"steps={steps}",
        f"data.image_size={args.image_size}",
        f"data.batch_size={args.batch_size}",
        f"data.workers={args.workers}",
        f"seed={args.seed}",
        f"lr={lr or args.lr}",
        f"loss.weights={args.vgg_weights}",
        f"style.size={args.style_size}",
        f"log_interval={args.eval_every}",
        f"preview.interval={steps}",
        f"checkpoint_interval={args.eval_every}",
        f"keep_checkpoints={steps // args.eval_every + 1}",
        f"hydra.run.dir={run_dir}",
        f"checkpoint_dir={args.workdir / 'checkpoints'}",
        *overrides,
        *args.overrides,
    ]
    print(f"training {name} ({steps} steps) ...", flush=True)
    train_network(name, common)
    return run_dir


def style_curve(run_dir: Path, loss_fn, photos: torch.Tensor, style_index: int | None) -> dict[int, float]:
    """Held-out style loss of every training snapshot of a run, by step."""
    curve = {}
    for path in sorted((run_dir / "checkpoints").glob("step_*.pt")):
        payload = load_snapshot(path)
        model = build_model(payload, path)
        weights = None if style_index is None else F.one_hot(torch.tensor(style_index), model.num_styles).float()
        curve[payload["step"]] = heldout_losses(model, loss_fn, photos, style=weights)["style"]
    return curve


def first_reaching(curve: dict[int, float], target: float) -> str:
    return next((str(step) for step, value in sorted(curve.items()) if value <= target), f"not within {max(curve)}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train-root", type=Path, required=True)
    parser.add_argument("--heldout-root", type=Path, required=True)
    parser.add_argument("--base-styles", nargs="+", default=[], help="style images of the network to train first")
    parser.add_argument(
        "--base-checkpoint",
        type=Path,
        default=None,
        help="a trained inference file to add the style to, instead of training one",
    )
    parser.add_argument("--new-style", required=True, help="the style image to add")
    parser.add_argument("--base-steps", type=int, default=2000)
    parser.add_argument("--steps", type=int, default=1000, help="steps of the added style and of the scratch run")
    parser.add_argument("--eval-every", type=int, default=100)
    parser.add_argument("--model", default="johnson")
    parser.add_argument("--image-size", type=int, default=256)
    parser.add_argument("--eval-size", type=int, default=256)
    parser.add_argument("--style-size", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--add-lr", type=float, default=None, help="learning rate of the added style (default --lr)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument(
        "--vgg-weights",
        default=None,
        help="loss.weights for every run: a weights file, or a named source such as hed_bsds500 "
        "(pass loss=vgg16_hed with it); default: random weights",
    )
    parser.add_argument(
        "--workdir", type=Path, default=Path("outputs/bench_add_style") / f"{datetime.now():%Y-%m-%d_%H-%M-%S}"
    )
    parser.add_argument(
        "--score-only",
        action="store_true",
        help="score the runs already in --workdir (same arguments) instead of training them again",
    )
    parser.add_argument("overrides", nargs="*", help="Hydra overrides for every run and the scoring, e.g. lr=2e-3")
    args = parser.parse_args()
    if bool(args.base_styles) == bool(args.base_checkpoint):
        parser.error("give --base-styles (a network to train first) or --base-checkpoint (a trained one), not both")
    args.workdir.mkdir(parents=True, exist_ok=True)
    weights_id = f"from {args.vgg_weights}" if args.vgg_weights else "random"
    if args.vgg_weights is None:
        args.vgg_weights = args.workdir / "vgg16_random.pth"
    if weights_id == "random" and not args.score_only:
        torch.manual_seed(args.seed)
        encoder = compose_options("train", ["loss.pretrained=false"]).loss.encoder([layer_names("vgg16")[-1]])
        torch.save(encoder.features.state_dict(), args.vgg_weights)

    try:
        base = args.base_checkpoint
        if base is None:
            images = "{" + ", ".join(f"base{index}: {path}" for index, path in enumerate(args.base_styles)) + "}"
            train("base", ["style=multi", f"style.images={images}", "style.name=base"], args, args.base_steps)
            base = args.workdir / "checkpoints" / "base.pt"
        base_styles = load_network_file(base).get("styles") or ["one"]
        new = ["style=custom", f"style.image={args.new_style}", "style.name=new"]
        added = train("added", [*new, f"add_style_to={base}"], args, args.steps, args.add_lr)
        scratch = train("scratch", new, args, args.steps)
        loss_options = compose_options("train", [f"loss.weights={args.vgg_weights}", *args.overrides]).loss
        loss_fn = perceptual_loss(loss_options, load_style_image("new", args.new_style, args.style_size))
        photos = readable_batch(ImageFolder(args.heldout_root, args.eval_size))
        curves = {
            "added": style_curve(added, loss_fn, photos, len(base_styles)),
            "scratch": style_curve(scratch, loss_fn, photos, None),
        }
    except StylenetError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2

    print(
        f"\n{describe_machine(torch.device('cpu'))}; model {args.model}; VGG16 weights "
        f"{weights_id}; base network: {len(base_styles)} styles, "
        f"{f'{args.base_steps} steps' if args.base_checkpoint is None else base}; lr {args.lr}, added style's lr "
        f"{args.add_lr or args.lr}; batch {args.batch_size} at {args.image_size} px; {len(photos)} held-out "
        f"photos at {args.eval_size} px\n"
    )
    print("| step | held-out style loss, added style | from scratch |")
    print("| --- | --- | --- |")
    for step in sorted(curves["scratch"]):
        print(f"| {step} | {curves['added'][step]:.4g} | {curves['scratch'][step]:.4g} |")
    for name, other in (("added", "scratch"), ("scratch", "added")):
        final = curves[name][max(curves[name])]
        print(
            f"\n{name}'s final held-out style loss {final:.4g}: reached by {name} at step "
            f"{first_reaching(curves[name], final)}, by {other} at step {first_reaching(curves[other], final)}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
