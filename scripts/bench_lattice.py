"""Whether a real-time network's fine regular pattern (the `grain` score's peaks) is locked to its own pixel
lattice: each network paints the frames at its working size (no scaling up), and the script reports the
strongest peaks of the fine band (periods of 2-8 px) in units of 1/8 cycle per pixel, and the share of the band's
energy within one bin of the lattice frequencies k/8 on both axes against the share of the band's area they
cover. A network that paints through two stride-2 stages and back draws on a 4 px grid; peaks at 2/8 (period
4 px) or 1/8 (period 8 px) are that grid, not the painting's strokes (BENCHMARKS.md "The weave is the lattice").

    python scripts/bench_lattice.py --frames <folder of frames> --networks starry_night_realtime mosaic_realtime \
        --pictures <the peer's pictures of the frames> <the frames themselves>

A folder given to --pictures holds pictures already painted (another tool's, or the photos themselves), measured
the same way after scaling them to the working size: the yardstick for a network's share.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image

import stylenet
from stylenet.common.errors import StylenetError, exits_cleanly
from stylenet.common.images import IMAGE_EXTENSIONS, list_images, read_image, resize_to_long_side

LATTICE = 8  # harmonics of a 4 px grid and of its 8 px pairs


def lattice_energy(gray: np.ndarray) -> tuple[float, float, float, list[tuple[float, float]]]:
    """(energy on the lattice, energy of the band, the lattice's share of the band's area, the 4 top peaks)."""
    height, width = gray.shape
    window = np.outer(np.hanning(height), np.hanning(width))
    power = np.abs(np.fft.rfft2((gray - gray.mean()) * window)) ** 2
    fy = np.abs(np.fft.fftfreq(height))[:, None]
    fx = np.fft.rfftfreq(width)[None, :]
    band = (np.hypot(fy, fx) >= 1 / 8) & (np.hypot(fy, fx) <= 1 / 2)
    near_y = np.abs(fy * LATTICE - np.round(fy * LATTICE)) * height / LATTICE <= 1.0
    near_x = np.abs(fx * LATTICE - np.round(fx * LATTICE)) * width / LATTICE <= 1.0
    on = band & near_y & near_x
    rows, columns = np.nonzero(band)
    top = np.argsort(power[band])[::-1][:4]
    peaks = [(round(float(fy[rows[i], 0] * LATTICE), 2), round(float(fx[0, columns[i]] * LATTICE), 2)) for i in top]
    return float(power[on].sum()), float(power[band].sum()), float(on.sum() / band.sum()), peaks


@exits_cleanly
def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=Path, help="a folder of photos or frames the networks paint (searched below)")
    parser.add_argument("--networks", nargs="+", default=[], help="real-time network files or zoo names")
    parser.add_argument("--pictures", nargs="+", type=Path, default=[], help="folders of pictures already painted")
    parser.add_argument("--working-size", type=int, default=384, help="the networks' working size (longer side)")
    args = parser.parse_args()
    report(args.frames, args.networks, args.pictures, args.working_size)
    return 0


def images_in(folder: Path, working_size: int) -> list[Image.Image]:
    """The folder's images, each scaled to the working size; a folder without any is one line, exit 2."""
    found = list_images(folder) if folder.is_dir() else []
    if not found:
        raise StylenetError(f"no images in {folder}: pass a folder of images ({', '.join(IMAGE_EXTENSIONS)})")
    return [resize_to_long_side(read_image(path), working_size) for path in found]


def row(name: str, pictures: list[Image.Image]) -> str:
    found = [lattice_energy(np.asarray(picture.convert("L"), dtype=np.float64)) for picture in pictures]
    on, total = sum(each[0] for each in found), sum(each[1] for each in found)
    area = sum(each[2] for each in found) / len(found)
    return f"| {name} | {found[0][3]} | {on / total:.3f} | {area:.3f} |"


def report(folder: Path | None, networks: list[str], painted: list[Path], working_size: int) -> None:
    """A table row per network and per folder of pictures: the first picture's peaks, and the lattice's share of
    all pictures' band energy."""
    if not networks and not painted:
        raise StylenetError("nothing to measure: pass --networks, --pictures or both")
    if networks and folder is None:
        raise StylenetError("--networks paint the frames: pass --frames <a folder of photos or frames>")
    frames = images_in(folder, working_size) if networks and folder is not None else []
    done = [images_in(each, working_size) for each in painted]  # every folder checked before any network runs
    print(
        "| network | strongest fine-band peaks, first frame (fy, fx) x 1/8 cycle/px | band energy on the lattice "
        "| lattice's share of the band's area |"
    )
    print("| --- | --- | --- | --- |")
    for name in networks:
        paint = stylenet.load(name)
        print(row(name, [paint(frame) for frame in frames]))
    for path, pictures in zip(painted, done, strict=True):
        print(row(str(path), pictures))


if __name__ == "__main__":
    sys.exit(main())
