"""int8 static quantisation of a zoo network in onnxruntime: its speed and what it does to the pictures.

    python scripts/bench_int8.py --network starry_night --calibration ../shared/data/train \
        --photos ../shared/data/photos [--sizes 1000x1000 1280x720] [--out outputs/int8]

The network's ONNX graph (as the default path exports it, from the cache) is quantised with
onnxruntime's own tools (`quant_pre_process`, then `quantize_static`: QDQ, int8 weights per channel,
uint8 activations, MinMax calibration on --count photos of the calibration folder at 256 px), then the
float32 and int8 graphs are timed in one run (median of 3 calls after a warm-up) and compared on the
held-out photos at 512 px (style image at 512 px): mean and largest difference in levels, and the picture scores of
`python -m stylenet.score` for both (style, strokes, layout, edges, sharpness, repetition). Side-by-side pictures
(float32 | int8) go to --out.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from shelf import describe_machine, median_seconds, parse_size

import stylenet
from stylenet.common.images import list_images, pil_to_tensor, read_image, resize_to_long_side, tensor_to_pil
from stylenet.config.compose import compose_options
from stylenet.data.photos import read_scaled
from stylenet.inference.exported import open_session, quantize_int8
from stylenet.inference.onnx_backend import cached_export
from stylenet.inference.stylizer import TorchStylizer
from stylenet.loss.scores import MEASURE_LAYERS, PictureScorer
from stylenet.nets.network_file import load_network_file, resolve_network_file


def as_input(image: Image.Image) -> np.ndarray:
    return pil_to_tensor(image).unsqueeze(0).numpy()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--network", default="starry_night")
    parser.add_argument("--calibration", type=Path, required=True, help="a folder of photos (not the held-out ones)")
    parser.add_argument("--count", type=int, default=16)
    parser.add_argument("--photos", type=Path, required=True, help="held-out photos to compare on")
    parser.add_argument("--style-image", type=Path, required=True, help="the network's style image, for the scores")
    parser.add_argument("--sizes", nargs="+", default=["1000x1000", "1280x720"])
    parser.add_argument("--out", type=Path, default=Path("outputs/int8"))
    args = parser.parse_args()
    network = stylenet.load(args.network, device="cpu", backend="torch")
    assert isinstance(network, TorchStylizer)
    source = cached_export(
        resolve_network_file(args.network), network, load_network_file(args.network)
    )  # the default path's graph
    args.out.mkdir(parents=True, exist_ok=True)
    calibration = list_images(args.calibration)[: args.count]
    quantised = args.out / f"{args.network}.int8.onnx"
    started = time.perf_counter()
    quantize_int8(source, quantised, calibration)  # what python -m stylenet.export quantize=int8 does
    print(
        f"{describe_machine(torch.device('cpu'))}; {args.network}: quantised in {time.perf_counter() - started:.0f} s "
        f"({source.stat().st_size / 1e6:.1f} MB -> {quantised.stat().st_size / 1e6:.1f} MB), calibrated on "
        f"{len(calibration)} photos of {args.calibration} at 256 px\n"
    )
    sessions = {
        name: open_session(path, torch.device("cpu")) for name, path in (("float32", source), ("int8", quantised))
    }
    print("| graph | " + " | ".join(args.sizes) + " |")
    print("| --- |" + " --- |" * len(args.sizes))
    for name, session in sessions.items():
        cells = []
        for size in args.sizes:
            width, height = parse_size(size)
            image = np.random.default_rng(0).random((1, 3, height, width), dtype=np.float32)
            seconds = median_seconds(lambda: session.run(None, {"image": image}), torch.device("cpu"), 1, 3)
            cells.append(f"{seconds * 1000:.0f} ms")
        print(f"| {name} | " + " | ".join(cells) + " |", flush=True)

    scorer = PictureScorer(
        compose_options("score", ["photos=unused", "style_image=unused"]).vgg.encoder(MEASURE_LAYERS),
        read_scaled(args.style_image, 512, "style image"),
    )
    differences: list[torch.Tensor] = []
    scores: dict[str, list[dict[str, float]]] = {name: [] for name in sessions}
    for path in list_images(args.photos):
        photo = resize_to_long_side(read_image(path), 512)
        outputs = {
            name: torch.from_numpy(session.run(None, {"image": as_input(photo)})[0]).clamp(0, 1)
            for name, session in sessions.items()
        }
        differences.append((outputs["float32"] - outputs["int8"]).abs() * 255)
        for name, output in outputs.items():
            scores[name].append(scorer.score(output, pil_to_tensor(photo).unsqueeze(0)))
        pair = Image.new("RGB", (photo.width * 2, photo.height))
        pair.paste(tensor_to_pil(outputs["float32"]), (0, 0))
        pair.paste(tensor_to_pil(outputs["int8"]), (photo.width, 0))
        pair.save(args.out / f"{path.stem}.png")
    print(
        f"\nint8 against float32 on {len(differences)} held-out photos at 512 px: mean "
        f"{statistics.mean(float(d.mean()) for d in differences):.1f} levels, largest {max(float(d.max()) for d in differences):.0f}"
    )
    for name, rows in scores.items():
        print(
            f"{name} scores: " + ", ".join(f"{key} {statistics.mean(row[key] for row in rows):.3f}" for key in rows[0])
        )
    print(f"side by side (float32 | int8): {args.out}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
