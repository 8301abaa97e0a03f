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
from tqdm import tqdm

from stylenet.errors import StylenetError
from stylenet.export import needs
from stylenet.stylizer import Network, PictureOptions, stylize_pictures

log = logging.getLogger("stylenet.video")
VIDEO_EXTENSIONS = (".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v")
MOTION_SCALE = 0.05  # an input change of this much (of the full range) cuts the smoothing to 1/e


def is_video_file(path: Path) -> bool:
    return path.suffix.lower() in VIDEO_EXTENSIONS


@dataclass
class Flicker:
    """Sums of mean absolute frame-to-frame changes of the input and of the output."""

    input_change: float = 0.0
    output_change: float = 0.0
    previous: tuple[np.ndarray, np.ndarray] | None = field(default=None, repr=False)

    def add(self, frame: np.ndarray, styled: np.ndarray) -> None:
        if self.previous is not None:
            self.input_change += float(np.abs(frame - self.previous[0]).mean())
            self.output_change += float(np.abs(styled - self.previous[1]).mean())
        self.previous = (frame, styled)

    @property
    def ratio(self) -> float:
        return self.output_change / self.input_change if self.input_change > 0 else float("nan")


class Smoother:
    """Blends each output frame with the previous output where the input stood still."""

    def __init__(self, strength: float) -> None:
        if not 0 <= strength < 1:
            raise StylenetError(f"temporal_smoothing must be at least 0 and below 1, got {strength}")
        self.strength = strength
        self.previous: tuple[np.ndarray, np.ndarray] | None = None

    def __call__(self, frame: np.ndarray, styled: np.ndarray) -> np.ndarray:
        if self.strength > 0 and self.previous is not None:
            change = np.abs(frame - self.previous[0]).mean(axis=-1, keepdims=True)
            keep = self.strength * np.exp(-change / MOTION_SCALE)
            styled = keep * self.previous[1] + (1 - keep) * styled
        self.previous = (frame, styled)
        return styled


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
                pictures = [frame.to_image() for frame in pending]
                for picture, styled in zip(pictures, stylize_pictures(stylizer, pictures, options)):
                    frame_array = np.asarray(picture, dtype=np.float32) / 255
                    styled_array = smoother(frame_array, np.asarray(styled, dtype=np.float32) / 255)
                    flicker.add(frame_array, styled_array)
                    out = av.VideoFrame.from_ndarray(np.clip(styled_array * 255 + 0.5, 0, 255).astype(np.uint8),
                                                     format="rgb24")
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
