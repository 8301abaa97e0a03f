"""What a network paints where a photo has almost nothing to paint: its answer to a flat field, to faint white
noise, to a smooth ramp and to the ramp with the noise, the inputs of a sky, a wall, a dark room. A network's
texture there is all it draws from the photo's faintest detail; a clean grating answering the ramp is the regular
weave of its real pictures (BENCHMARKS.md "Where the weave comes from").

    python scripts/bench_response.py --out outputs/response --networks starry_night_realtime
    python scripts/peer_pictures.py --photos outputs/response/inputs --styles <styles>/starry_night.jpg \
        --out outputs/response/peer                              # another tool's answers to the same inputs
    python scripts/bench_response.py --out outputs/response --networks starry_night_realtime \
        --pictures outputs/response/peer/starry_night

It writes the inputs to OUT/inputs (384x256 px, the working size of the real-time networks), prints a table of
each answer's `grain` (the score's share of the fine band in peaks: a grating near 1) and contrast, and draws
OUT/response.png: a row per network or folder, a column per input, each labelled.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

import stylenet
from stylenet.common.errors import StylenetError, exits_cleanly
from stylenet.common.images import labelled_sheet, read_image, save_image
from stylenet.loss.scores import grain

WIDTH, HEIGHT = 384, 256
LEVEL = (0.30, 0.25, 0.20)  # a dull brown-grey, mid-dark: most of a photo's flat areas
NOISE = 0.02  # about 5 of 255 levels: a camera's or a JPEG's faint noise
INPUTS = ("flat", "noise", "ramp", "ramp_noise")


def synthetic_inputs() -> dict[str, Image.Image]:
    """The four inputs, fixed (seeded) so that every run and every tool answers the same pictures."""
    noise = np.random.default_rng(0).normal(0, NOISE, (HEIGHT, WIDTH, 3))
    flat = np.broadcast_to(np.array(LEVEL), (HEIGHT, WIDTH, 3))
    ramp = flat + np.linspace(-0.08, 0.08, WIDTH)[None, :, None] + np.linspace(-0.05, 0.05, HEIGHT)[:, None, None]
    arrays = {"flat": flat, "noise": flat + noise, "ramp": ramp, "ramp_noise": ramp + noise}
    return {
        name: Image.fromarray((np.clip(array, 0, 1) * 255).round().astype(np.uint8)) for name, array in arrays.items()
    }


def measure(picture: Image.Image) -> tuple[float, float]:
    """(grain, contrast: the standard deviation of the luminance in 0-255, a 16 px border left out). A picture
    without contrast has no grain to speak of (its share of peaks is a share of rounding): NaN."""
    gray = np.asarray(picture.convert("L").resize((WIDTH, HEIGHT), Image.Resampling.BICUBIC), dtype=np.float64)
    contrast = float(gray[16:-16, 16:-16].std())
    return (grain(torch.from_numpy(gray / 255)[None, None]) if contrast >= 1 else float("nan")), contrast


def answers(networks: list[str], folders: list[Path], inputs: dict[str, Image.Image]) -> dict[str, list[Image.Image]]:
    """Each network's and each folder's picture of every input, by method."""
    painted: dict[str, list[Image.Image]] = {}
    for folder in folders:  # every folder checked before any network runs
        missing = [name for name in INPUTS if not (folder / f"{name}.png").is_file()]
        if missing:
            raise StylenetError(
                f"{folder} lacks {', '.join(f'{name}.png' for name in missing)}: paint OUT/inputs there"
            )
        painted[str(folder)] = [read_image(folder / f"{name}.png") for name in INPUTS]
    found: dict[str, list[Image.Image]] = {}
    for name in networks:
        paint = stylenet.load(name)
        found[name] = [paint(inputs[each]) for each in INPUTS]
    return {**found, **painted}


def report(out: Path, networks: list[str], folders: list[Path]) -> None:
    inputs = synthetic_inputs()
    (out / "inputs").mkdir(parents=True, exist_ok=True)
    for name, image in inputs.items():
        save_image(image, out / "inputs" / f"{name}.png")
    if not networks and not folders:
        print(f"wrote the inputs to {out / 'inputs'}: pass --networks, --pictures or both to measure answers")
        return
    found = answers(networks, folders, inputs)
    print("| method | " + " | ".join(f"{name}: grain / contrast" for name in INPUTS) + " |")
    print("| --- |" + " --- |" * len(INPUTS))
    for method, pictures in found.items():
        cells = (f"{grain_:.3f} / {contrast:.1f}" for grain_, contrast in map(measure, pictures))
        print(f"| {method} | " + " | ".join(cells) + " |")
    rows = [
        [(picture, f"{method[-40:]}: {name}") for picture, name in zip(pictures, INPUTS, strict=True)]
        for method, pictures in found.items()
    ]
    save_image(labelled_sheet(rows, cell=WIDTH + 4), out / "response.png")
    print(f"wrote {out / 'response.png'}")


@exits_cleanly
def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="a folder: OUT/inputs and OUT/response.png")
    parser.add_argument("--networks", nargs="+", default=[], help="network files or zoo names")
    parser.add_argument("--pictures", nargs="+", type=Path, default=[], help="folders of another tool's answers")
    args = parser.parse_args()
    report(args.out, args.networks, args.pictures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
