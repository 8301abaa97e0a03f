"""Video files in `python -m stylenet.infer`: every frame stylised, same frame rate and size, audio kept.

Decoding and encoding go through PyAV (FFmpeg), the optional `video` extra. Frames are stylised in
batches (same size, so one network call each) with the picture options of stylenet.stylizer.

Flicker: a feed-forward network stylises each frame on its own, so small changes between frames
(noise, compression) can become large changes of brush strokes. `temporal_smoothing` blends each
output frame with the previous output where the input did not change (a per-pixel weight that
falls off with the input's frame-to-frame change, so moving objects do not leave trails). The
flicker measure is the mean absolute frame-to-frame change of the output over that of the input:
1 means the output changes as much as the input does.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from stylenet.errors import StylenetError, needs
from stylenet.images import pil_to_tensor
from stylenet.stylizer import Network, PictureOptions, stylize_pictures

log = logging.getLogger("stylenet.video")
VIDEO_EXTENSIONS = (".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v")
MOTION_SCALE = 0.05  # an input change of this much (of the full range) cuts the smoothing to 1/e


def is_video_file(path: Path) -> bool:
    return path.suffix.lower() in VIDEO_EXTENSIONS


@dataclass
class Flicker:
    """Sums of mean absolute frame-to-frame changes of the input and of the output (kept on the
    frames' device, so that measuring does not wait for the GPU)."""

    input_change: torch.Tensor | float = 0.0
    output_change: torch.Tensor | float = 0.0
    previous: tuple[torch.Tensor, torch.Tensor] | None = field(default=None, repr=False)

    def add(self, frame: torch.Tensor, styled: torch.Tensor) -> None:
        if self.previous is not None:
            self.input_change = self.input_change + (frame - self.previous[0]).abs().mean()
            self.output_change = self.output_change + (styled - self.previous[1]).abs().mean()
        self.previous = (frame, styled)

    @property
    def ratio(self) -> float:
        moved = float(self.input_change)
        return float(self.output_change) / moved if moved > 0 else float("nan")


class Smoother:
    """Blends each output frame with the previous output where the input stood still."""

    def __init__(self, strength: float) -> None:
        if not 0 <= strength < 1:
            raise StylenetError(f"temporal_smoothing must be at least 0 and below 1, got {strength}")
        self.strength = strength
        self.previous: tuple[torch.Tensor, torch.Tensor] | None = None

    def __call__(self, frame: torch.Tensor, styled: torch.Tensor) -> torch.Tensor:
        if self.strength > 0 and self.previous is not None:
            change = (frame - self.previous[0]).abs().mean(dim=0, keepdim=True)
            keep = self.strength * torch.exp(-change / MOTION_SCALE)
            styled = keep * self.previous[1] + (1 - keep) * styled
        self.previous = (frame, styled)
        return styled


def stylize_frames(stylizer: Network, frames: list[np.ndarray], options: PictureOptions) -> tuple[torch.Tensor, torch.Tensor]:
    """(input, styled) float (N, 3, H, W) batches in [0, 1], on the network's device. Without picture
    options the frames go straight to the network as one tensor batch (no PIL round trip per frame)."""
    pixels = torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2)
    if not options.edits_pictures and (options.tile_size is None or max(pixels.shape[-2:]) <= options.tile_size):
        styled = stylizer.run(pixels.float().div_(255))
        return pixels.to(styled.device, torch.float32).div_(255), styled
    pictures = stylize_pictures(stylizer, [Image.fromarray(frame) for frame in frames], options)
    styled = torch.stack([pil_to_tensor(picture) for picture in pictures])
    return pixels.float().div_(255), styled


def stylize_video(stylizer: Network, source: Path, target: Path, options: PictureOptions, batch_size: int,
                  temporal_smoothing: float) -> dict[str, Any]:
    """Stylise every frame of `source` into `target` (written to a temporary file, then renamed, so an
    interrupted run leaves no half-written video). Returns frames, seconds, frames/s and flicker."""
    av = needs("av", "video")
    smoother, flicker = Smoother(temporal_smoothing), Flicker()
    try:
        reader = av.open(str(source))
    except av.error.FFmpegError as error:
        raise StylenetError(f"cannot read video {source}: {error}") from None
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.stem}.", suffix=target.suffix)
    os.close(handle)
    temporary = Path(name)
    started, frames = time.perf_counter(), 0
    try:
        with reader, av.open(str(temporary), mode="w") as writer:
            if not reader.streams.video:
                raise StylenetError(f"{source} has no video stream")
            video = reader.streams.video[0]
            rate = video.average_rate or video.guessed_rate or Fraction(25)
            codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"
            encoded = writer.add_stream(codec, rate=rate)
            encoded.width, encoded.height = video.codec_context.width, video.codec_context.height
            encoded.pix_fmt = "yuv420p"
            audio = reader.streams.audio[0] if reader.streams.audio else None
            copied_audio = writer.add_stream_from_template(audio) if audio is not None else None
            pending: list[Any] = []

            def encode_pending() -> None:
                nonlocal frames
                inputs, styled = stylize_frames(stylizer, [frame.to_ndarray(format="rgb24") for frame in pending],
                                                options)
                results = []
                for frame, result in zip(inputs, styled):
                    results.append(smoother(frame, result))
                    flicker.add(frame, results[-1])
                # One conversion and one copy from the device per batch, not per frame.
                batch = torch.stack(results).mul_(255).add_(0.5).clamp_(0, 255).to(torch.uint8)
                for pixels in batch.permute(0, 2, 3, 1).contiguous().cpu().numpy():
                    out = av.VideoFrame.from_ndarray(pixels, format="rgb24")
                    out.pts, out.time_base = frames, 1 / Fraction(rate)
                    writer.mux(encoded.encode(out))
                    frames += 1
                pending.clear()

            streams = [video] + ([audio] if audio is not None else [])
            with tqdm(total=video.frames or None, desc="video", unit="frame") as progress:
                for packet in reader.demux(*streams):
                    if packet.stream is audio:
                        if packet.dts is not None:
                            packet.stream = copied_audio
                            writer.mux(packet)
                        continue
                    for frame in packet.decode():
                        pending.append(frame)
                        if len(pending) >= batch_size:
                            encode_pending()
                            progress.update(batch_size)
                if pending:
                    progress.update(len(pending))
                    encode_pending()
            writer.mux(encoded.encode(None))
        if frames == 0:
            raise StylenetError(f"{source}: no frame could be decoded")
        os.replace(temporary, target)
    except av.error.FFmpegError as error:
        raise StylenetError(f"video {source}: {error}") from None
    finally:
        temporary.unlink(missing_ok=True)
    seconds = time.perf_counter() - started
    return {"frames": frames, "seconds": seconds, "fps": frames / seconds, "flicker": flicker.ratio,
            "audio": audio is not None}
