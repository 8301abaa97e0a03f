"""A gallery per style: photo | each trained network | the Gatys optimisation with the same loss, each
cell labelled with its seconds per image.

    python scripts/make_gallery.py --styles starry_night mosaic --networks fast=checkpoints/demo/{style}.pt \
        [johnson=outputs/johnson/{style}.pt] --photos ../shared/data/photos/amber.jpg ../shared/data/photos/in3.png \
        [--size 320] [--iterations 100] [--out docs/gallery] \
        [--beside "PyTorch example=../shared/data/reference/pytorch_example_{photo}_{style}.jpg"]

Writes <out>/<style>.jpg (small JPEGs for the README). The Gatys column optimises from the photo with
L-BFGS (stylenet.loss.gatys) against the loss the first network was trained with, read from its
inference file (layers, weights, style image), at the size of the photo cell. --beside adds a column of
pictures made elsewhere (e.g. another project's published outputs), where the file exists for that
photo ({photo}: its name without extension) and style; the cell stays empty elsewhere.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from PIL import Image
from shelf import describe_machine, median_seconds

import stylenet
from stylenet.common.images import labelled_sheet, pil_to_tensor, read_image, resize_to_long_side, tensor_to_pil
from stylenet.inference.stylizer import stylize_picture
from stylenet.loss.gatys import optimize_image
from stylenet.loss.perceptual import PerceptualLoss, trained_loss
from stylenet.nets.network_file import load_network_file


def timed_network(path: str, photo: Image.Image) -> tuple[Image.Image, float]:
    """The network's picture and its median seconds over 5 runs after a warm-up (one run varied 2x here)."""
    stylizer = stylenet.load(path, device="cpu")
    result = stylize_picture(stylizer, photo)
    return result, median_seconds(lambda: stylize_picture(stylizer, photo), torch.device("cpu"), warmup=0, repeats=5)


def timed_gatys(loss_fn: PerceptualLoss, photo: Image.Image, iterations: int) -> tuple[Image.Image, float]:
    started = time.perf_counter()
    image, _ = optimize_image(loss_fn, pil_to_tensor(photo).unsqueeze(0), iterations=iterations, progress=False)
    return tensor_to_pil(image), time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--styles", nargs="+", required=True)
    parser.add_argument(
        "--networks",
        nargs="+",
        required=True,
        metavar="LABEL=PATH",
        help="columns; {style} in PATH is replaced by each style's name",
    )
    parser.add_argument("--photos", nargs="+", type=Path, required=True)
    parser.add_argument("--size", type=int, default=320, help="longer side of each photo, in pixels")
    parser.add_argument(
        "--iterations", type=int, default=100, help="L-BFGS iterations of the Gatys column (0: no Gatys column)"
    )
    parser.add_argument("--cell", type=int, default=240, help="pixels per cell in the written sheet")
    parser.add_argument("--out", type=Path, default=Path("docs/gallery"))
    parser.add_argument(
        "--beside",
        nargs="*",
        default=[],
        metavar="LABEL=PATH",
        help="columns of existing pictures; {style} and {photo} in PATH are replaced",
    )
    args = parser.parse_args()
    torch.manual_seed(0)
    networks = [entry.split("=", 1) for entry in args.networks]
    beside = [entry.split("=", 1) for entry in args.beside]
    photos = {path.name: resize_to_long_side(read_image(path), args.size) for path in args.photos}
    print(
        f"{describe_machine(torch.device('cpu'))}; photos at {args.size} px; Gatys: L-BFGS {args.iterations} "
        f"iterations from the photo\n"
    )
    gatys = " Gatys s |" if args.iterations else ""
    print("| style | photo | " + " | ".join(f"{label} s" for label, _ in networks) + f" |{gatys}")
    print("|" + " --- |" * (len(networks) + 2 + bool(args.iterations)))
    args.out.mkdir(parents=True, exist_ok=True)
    for style in args.styles:
        paths = [(label, template.format(style=style)) for label, template in networks]
        loss_fn = (
            trained_loss(load_network_file(paths[0][1]), paths[0][1], torch.device("cpu")) if args.iterations else None
        )
        rows = []
        for name, photo in photos.items():
            cells = [(photo, name)]
            seconds = []
            for label, path in paths:
                result, spent = timed_network(path, photo)
                cells.append((result, f"{label} {spent:.3f} s"))
                seconds.append(spent)
            spent = 0.0
            if loss_fn is not None:
                result, spent = timed_gatys(loss_fn, photo, args.iterations)
                cells.append((result, f"Gatys {args.iterations} it. {spent:.0f} s"))
            for label, template in beside:
                found = Path(template.format(style=style, photo=Path(name).stem))
                blank = Image.new("RGB", photo.size, "white")
                cells.append((read_image(found), label) if found.is_file() else (blank, ""))
            rows.append(cells)
            print(
                f"| {style} | {name} | "
                + " | ".join(f"{value:.3f}" for value in seconds)
                + " |"
                + (f" {spent:.1f} |" if args.iterations else "")
            )
        labelled_sheet(rows, args.cell).save(args.out / f"{style}.jpg", quality=80, optimize=True)
    print(f"\nwrote {', '.join(str(args.out / f'{style}.jpg') for style in args.styles)}")


if __name__ == "__main__":
    main()
