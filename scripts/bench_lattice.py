"""Whether a real-time network's fine regular pattern (the `grain` score's peaks) is locked to its own pixel
lattice: each network paints the frames at its working size (no scaling up), and the script reports the
strongest peaks of the fine band (periods of 2-8 px) in units of 1/8 cycle per pixel, and the share of the band's
energy within one bin of the lattice frequencies k/8 on both axes against the share of the band's area they
cover. A network that paints through two stride-2 stages and back draws on a 4 px grid; peaks at 2/8 (period
4 px) or 1/8 (period 8 px) are that grid, not the painting's strokes (BENCHMARKS.md "The weave is the lattice").

    python scripts/bench_lattice.py --frames <folder of frames> --networks starry_night_realtime mosaic_realtime
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

import stylenet

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", required=True, help="a folder of photos or frames")
    parser.add_argument("--networks", nargs="+", required=True, help="real-time network files or zoo names")
    parser.add_argument("--working-size", type=int, default=384, help="the networks' working size (longer side)")
    args = parser.parse_args()
    frames = sorted(p for p in Path(args.frames).iterdir() if p.suffix.lower() in {".png", ".jpg", ".jpeg"})
    if not frames:
        raise SystemExit(f"no frames in {args.frames}")
    print(
        "| network | strongest fine-band peaks, first frame (fy, fx) x 1/8 cycle/px | band energy on the lattice "
        "| lattice's share of the band's area |"
    )
    print("| --- | --- | --- | --- |")
    for name in args.networks:
        paint = stylenet.load(name)
        on = total = 0.0
        area, first = 0.0, list[tuple[float, float]]()
        for index, frame in enumerate(frames):
            picture = Image.open(frame).convert("RGB")
            scale = args.working_size / max(picture.size)
            picture = picture.resize(
                (round(picture.width * scale), round(picture.height * scale)), Image.Resampling.LANCZOS
            )
            gray = np.asarray(paint(picture).convert("L"), dtype=np.float64)
            frame_on, frame_total, area, peaks = lattice_energy(gray)
            on, total = on + frame_on, total + frame_total
            first = peaks if index == 0 else first
        print(f"| {name} | {first} | {on / total:.3f} | {area:.3f} |")


if __name__ == "__main__":
    main()
