"""Crops at 100% of 1280x720 frames, several networks beside other tools' pictures: what a user sees up close (a
thumbnail hides a hatch, a weave or a blob). A row per photo, a column per method.

    python scripts/make_crops.py --photos <held-out photos>/amber.jpg <held-out photos>/in16.png \
        --methods "zoo=zoo:starry_night" "new=outputs/new/starry_night.pt" "peer=outputs/peer720/starry_night" \
        --box 500,200,820,440 --out docs/gallery/grain/starry_night.jpg

Each photo is scaled and cropped to --frame (ImageOps.fit, Lanczos), as the 720p benchmarks make their frames. A
method is LABEL=NETWORK (a zoo name or a network file, run here on the default path) or LABEL=FOLDER (pictures
made elsewhere, named like the photos, scaled to the frame). --box is the crop, in pixels of the frame.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from PIL import Image, ImageOps
from shelf import parse_size

import stylenet
from stylenet.common.atomic import atomic_write
from stylenet.common.errors import StylenetError
from stylenet.common.images import labelled_sheet, read_image


def picture(method: str, photo: Path, frame: Image.Image) -> Image.Image:
    """The method's 1280x720 picture of the photo."""
    if Path(method).is_dir():
        found = sorted(Path(method).glob(f"{photo.stem}.*"))
        if not found:
            raise StylenetError(f"{method} holds no picture named {photo.stem}.<ext>")
        return read_image(found[0]).resize(frame.size, Image.Resampling.LANCZOS)
    return stylenet.load(method, device="cpu")(frame)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", nargs="+", type=Path, required=True)
    parser.add_argument("--methods", nargs="+", required=True, help="LABEL=NETWORK or LABEL=FOLDER")
    parser.add_argument("--frame", default="1280x720", help="WIDTHxHEIGHT the photos are made into")
    parser.add_argument("--box", default="500,200,820,440", help="left,top,right,bottom of the crop")
    parser.add_argument("--out", type=Path, required=True, help="the sheet (.jpg or .png)")
    args = parser.parse_args()
    try:
        make_sheet(args)
    except StylenetError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


def make_sheet(args: argparse.Namespace) -> None:
    try:
        box = tuple(int(value) for value in args.box.split(","))
    except ValueError:
        box = ()
    if len(box) != 4:
        raise StylenetError(f"--box is left,top,right,bottom in pixels, got '{args.box}'")
    methods = [method.split("=", 1) for method in args.methods]
    if any(len(method) != 2 for method in methods):
        raise StylenetError(f"each of --methods is LABEL=NETWORK or LABEL=FOLDER, got {args.methods}")
    rows = []
    for photo in args.photos:
        frame = ImageOps.fit(read_image(photo), parse_size(args.frame), Image.Resampling.LANCZOS)
        row = [(frame.crop(box), f"{photo.stem}: photo")]
        row += [(picture(source, photo, frame).crop(box), label) for label, source in methods]
        rows.append(row)
    sheet = labelled_sheet(rows, cell=max(box[2] - box[0], box[3] - box[1]) + 4)
    kind = "JPEG" if args.out.suffix.lower() in (".jpg", ".jpeg") else "PNG"
    atomic_write(args.out, lambda stream: sheet.save(stream, kind, quality=90))
    print(f"{args.out}: {len(rows)} photos x {len(methods) + 1} columns, crops {box} of {args.frame} frames")


if __name__ == "__main__":
    sys.exit(main())
