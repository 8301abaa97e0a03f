"""Video stylisation speed and flicker, with and without temporal smoothing; writes a Markdown table.

    python scripts/bench_video.py --checkpoint checkpoints/wave.pt --video clip.mp4
    python scripts/bench_video.py --checkpoint checkpoints/wave.pt --frames ../shared/data/frames --fps 24
    python scripts/bench_video.py --smoke          # generated clip, untrained tiny network: checks the script works
    python scripts/bench_video.py --checkpoint fast.pt --video clip.mp4 --pipeline   # threaded against sequential
    python scripts/bench_video.py --memory 1000 10000 [--memory-size 320x240]     # peak memory, long videos

Each row runs the real video path of `python -m stylenet.infer` (stylenet.inference.video.stylize_video:
decode, stylise in batches, encode, audio copied) and reports frames per second for the whole
path and the flicker: the mean absolute frame-to-frame change of the output over that of the
input (1: the output changes as much as the input; lower is steadier). --pipeline measures the
pipelined path (decode, network and encode overlapping in threads) against the same stages one after
another, in the same run, alternating, twice each. --memory runs `python -m stylenet.infer` on
generated clips of each frame count (the untrained tiny network, so decoding and encoding dominate)
and reports the peak resident memory of the children so far after each: a flat figure means memory
does not grow with the length of the video.
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from shelf import describe_machine, parse_size

from stylenet.common.errors import StylenetError, needs
from stylenet.common.images import list_images
from stylenet.common.runtime import pick_device
from stylenet.config.compose import model_config
from stylenet.inference.loading import load
from stylenet.inference.stylizer import PictureOptions, Stylizer, TorchStylizer
from stylenet.inference.video import stylize_video
from stylenet.nets.network_file import atomic_save, inference_payload
from stylenet.nets.transformer import TransformerNet


def frames_to_video(frames: list[Image.Image], path: Path, rate: Fraction) -> None:
    """Still frames (e.g. a film clip's, as image files) as an H.264 video, sized to even dimensions."""
    av = needs("av", "video")
    width, height = (frames[0].width // 2) * 2, (frames[0].height // 2) * 2
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264" if "libx264" in av.codecs_available else "mpeg4", rate=rate)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for frame in frames:
            pixels = np.asarray(frame.convert("RGB").resize((width, height)))
            container.mux(stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")))
        container.mux(stream.encode(None))


def generated_frames(count: int, width: int, height: int) -> list[Image.Image]:
    """A still scene whose exposure flickers by a few levels, with camera noise."""
    rng = np.random.default_rng(0)
    scene = rng.uniform(0, 255, (height // 8, width // 8, 3))
    scene = np.asarray(Image.fromarray(scene.astype(np.uint8)).resize((width, height), Image.Resampling.BICUBIC), float)
    return [
        Image.fromarray(np.clip(scene + rng.uniform(-6, 6) + rng.normal(0, 4, scene.shape), 0, 255).astype(np.uint8))
        for _ in range(count)
    ]


def pipeline_rows(stylizer: Stylizer, video: Path, folder: Path, batch_size: int) -> None:
    """Frames/s of the pipelined and the sequential path, alternating (twice each), and their ratio."""
    fps: dict[bool, list[float]] = {True: [], False: []}
    for _ in range(2):
        for pipelined in (False, True):
            result = stylize_video(
                stylizer, video, folder / f"out_{pipelined}.mp4", PictureOptions(), batch_size, 0.0, pipelined=pipelined
            )
            fps[pipelined].append(result["fps"])
    print("| path | frames | frames/s (each run) | best |\n| --- | --- | --- | --- |")
    for pipelined, name in ((False, "sequential (one thread)"), (True, "pipelined (threads)")):
        print(
            f"| {name} | {result['frames']} | {', '.join(f'{value:.1f}' for value in fps[pipelined])} | "
            f"{max(fps[pipelined]):.1f} |"
        )
    print(f"\npipelined / sequential (best of each): {max(fps[True]) / max(fps[False]):.2f}x")


def memory_rows(counts: list[int], size: str, folder: Path) -> None:
    """Peak memory of `python -m stylenet.infer` on generated clips of `counts` frames, shortest first."""
    width, height = parse_size(size)
    model_cfg = model_config("tiny")
    checkpoint = folder / "tiny.pt"
    atomic_save(inference_payload(TransformerNet(**model_cfg), model_cfg, "untrained", {}), checkpoint)
    scene = generated_frames(8, width, height)
    print("| frames | frame size | peak resident memory of the runs so far |\n| --- | --- | --- |")
    for count in sorted(counts):
        video = folder / f"long_{count}.mp4"
        frames_to_video([scene[index % len(scene)] for index in range(count)], video, Fraction(25))
        subprocess.run(
            [
                sys.executable,
                "-m",
                "stylenet.infer",
                f"checkpoint={checkpoint}",
                f"input={video}",
                f"output={folder / f'out_{count}.mp4'}",
                "overwrite=true",
            ],
            check=True,
            capture_output=True,
        )
        peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        print(f"| {count} | {width}x{height} | {peak_mb:.0f} MB |", flush=True)
        video.unlink()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, help="an inference file of stylenet.train")
    parser.add_argument("--video", type=Path, help="a video file")
    parser.add_argument("--frames", type=Path, help="a folder of frames (image files, in name order)")
    parser.add_argument("--fps", type=float, default=24.0, help="frame rate for --frames")
    parser.add_argument("--max-size", type=int, default=None, help="downscale --frames to this longer side")
    parser.add_argument("--smoothing", type=float, nargs="+", default=[0.0, 0.5, 0.8])
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--smoke", action="store_true", help="generated clip, untrained tiny network")
    parser.add_argument("--pipeline", action="store_true", help="pipelined against sequential, same run")
    parser.add_argument("--memory", type=int, nargs="+", metavar="FRAMES", help="peak memory on clips of these lengths")
    parser.add_argument("--memory-size", default="320x240", help="frame size of the --memory clips")
    args = parser.parse_args()
    if args.memory:
        with tempfile.TemporaryDirectory(prefix="bench_video_") as folder:
            print(f"{describe_machine(torch.device('cpu'))}; python -m stylenet.infer, untrained tiny network\n")
            memory_rows(args.memory, args.memory_size, Path(folder))
        return 0
    if not args.smoke and args.checkpoint is None:
        print("error: --checkpoint is required (or --smoke)", file=sys.stderr)
        return 2
    try:
        if args.smoke:
            stylizer = TorchStylizer(TransformerNet(**model_config("tiny")), pick_device(args.device), "untrained", {})
        else:
            stylizer = load(args.checkpoint, device=args.device)
        with tempfile.TemporaryDirectory(prefix="bench_video_") as folder:
            video = args.video
            if args.smoke or args.frames is not None:
                frames = (
                    generated_frames(6, 64, 48)
                    if args.smoke
                    else [Image.open(path) for path in list_images(args.frames)]
                )
                if args.max_size:
                    frames = [frame.reduce(max(1, round(max(frame.size) / args.max_size))) for frame in frames]
                video = Path(folder) / "clip.mp4"
                frames_to_video(frames, video, Fraction(args.fps).limit_denominator(1001))
            if video is None:
                print("error: pass --video or --frames (or --smoke)", file=sys.stderr)
                return 2
            print(
                f"{describe_machine(stylizer.device)}; {stylizer.describe()}; network '{stylizer.name}'; {video.name}; "
                f"batch {args.batch_size}\n"
            )
            if args.pipeline:
                pipeline_rows(stylizer, video, Path(folder), args.batch_size)
                return 0
            print("| temporal_smoothing | frames | frames/s | flicker |\n| --- | --- | --- | --- |")
            for smoothing in args.smoothing:
                result = stylize_video(
                    stylizer, video, Path(folder) / f"out_{smoothing}.mp4", PictureOptions(), args.batch_size, smoothing
                )
                print(
                    f"| {smoothing:g} | {result['frames']} | {result['fps']:.1f} | {result['flicker']:.3f} |",
                    flush=True,
                )
    except StylenetError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    with torch.inference_mode():
        sys.exit(main())
