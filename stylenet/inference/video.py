"""Video in `python -m stylenet.infer`: files and live sources, every frame stylised, same frame rate and
size, audio kept.

Decoding and encoding go through PyAV (FFmpeg), the optional `video` extra. Frames are stylised in
batches (same size, so one network call each) with the picture options of stylenet.inference.stylizer. The
three stages overlap (stylenet.inference.pipeline): a thread decodes (FFmpeg's own threads too) and converts to
RGB, a thread runs the network, the calling thread encodes; bounded queues between them keep at most
a few batches in memory however long the video. On a CUDA device NVDEC decodes and NVENC encodes
where this FFmpeg has them, else software, said in one line.

A live source (a stream, a capture device, a generated lavfi graph) arrives at its own pace: frames
go through the network one at a time, and a frame that is already late (behind the time elapsed since
the first frame by more than LATE_SECONDS) is dropped when a newer one waits, so a network slower than
the source shows the newest frames instead of falling ever further behind. The output keeps the
source's timestamps, so it plays at the source's speed; frames shown and dropped are reported. A file
source never drops a frame.

Flicker: a feed-forward network stylises each frame on its own, so small changes between frames
(noise, compression) can become large changes of brush strokes. `temporal_smoothing` blends each
output frame with the previous output where the input did not change (a per-pixel weight that
falls off with the input's frame-to-frame change, so moving objects do not leave trails). The
flicker measure is the mean absolute frame-to-frame change of the output over that of the input:
1 means the output changes as much as the input does.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from stylenet.common.atomic import atomic_path
from stylenet.common.errors import StylenetError, needs
from stylenet.common.images import pil_to_tensor, unit_float
from stylenet.inference.pipeline import Stages
from stylenet.inference.stylizer import PictureOptions, Stylizer, stylize_pictures

log = logging.getLogger("stylenet.inference.video")
VIDEO_EXTENSIONS = (".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v")
# What FFmpeg opens as a live source: network streams and capture devices (Video4Linux).
STREAM_PREFIXES = ("http://", "https://", "rtsp://", "rtmp://", "udp://", "tcp://", "srt://", "/dev/video", "lavfi:")
LAVFI = "lavfi:"  # FFmpeg's generated sources, e.g. lavfi:testsrc2=size=1280x720:rate=30,realtime (a test pattern)
QUEUE_BATCHES = 2  # batches waiting between two stages: memory stays flat on a video of any length
MOTION_SCALE = 0.05  # an input change of this much (of the full range) cuts the smoothing to 1/e
LATE_SECONDS = 0.1  # a live frame this far behind the source's clock is dropped when a newer one waits


def is_video_file(path: Path) -> bool:
    return path.suffix.lower() in VIDEO_EXTENSIONS


def is_stream(source: str) -> bool:
    """A live source (an address FFmpeg opens, a capture device, a generated graph), not a file to read to its end."""
    return source.lower().startswith(STREAM_PREFIXES)


def open_source(av: Any, source: str | Path, hwaccel: Any) -> Any:
    """The container of a file, stream, capture device (/dev/video*: v4l2) or generated graph (lavfi:...)."""
    text, options = str(source), {"hwaccel": hwaccel} if hwaccel is not None else {}
    if text.startswith("/dev/video"):
        options["format"] = "v4l2"
    elif text.lower().startswith(LAVFI):
        text, options["format"] = text[len(LAVFI) :], "lavfi"
    return av.open(text, timeout=(10.0, 10.0), **options)


class SourceClock:
    """Whether a live frame is late: its time in the stream against the time elapsed since the first frame."""

    def __init__(self) -> None:
        self.start: tuple[float, float] | None = None

    def see(self, stream_time: float) -> None:
        """Called as frames arrive: the first one starts the clock."""
        if self.start is None:
            self.start = (time.perf_counter(), stream_time)

    def late(self, stream_time: float) -> bool:
        self.see(stream_time)
        assert self.start is not None
        return (time.perf_counter() - self.start[0]) - (stream_time - self.start[1]) > LATE_SECONDS


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


def stylize_frames(
    stylizer: Stylizer, frames: list[np.ndarray], options: PictureOptions
) -> tuple[torch.Tensor, torch.Tensor]:
    """(input, styled) float (N, 3, H, W) batches in [0, 1], on the network's device. Without picture
    options the frames go straight to the network as one tensor batch (no PIL round trip per frame)."""
    pixels = torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2)
    if not options.edits_pictures and (options.tile_size is None or max(pixels.shape[-2:]) <= options.tile_size):
        styled = stylizer.run(unit_float(pixels))
        return unit_float(pixels.to(styled.device)), styled
    pictures = stylize_pictures(stylizer, [Image.fromarray(frame) for frame in frames], options)
    styled = torch.stack([pil_to_tensor(picture) for picture in pictures])
    return unit_float(pixels), styled


@dataclass(frozen=True)
class Codecs:
    """How the video is decoded and encoded, and the line that says so."""

    hwaccel: Any  # av.codec.hwaccel.HWAccel for NVDEC, or None: software decoding
    encoder: str
    note: str


def choose_codecs(av: Any, device: torch.device) -> Codecs:
    """NVDEC and NVENC when the network runs on CUDA and this FFmpeg has them; software otherwise."""
    software = "libx264" if "libx264" in av.codecs_available else "mpeg4"
    if device.type != "cuda":
        return Codecs(
            None, software, f"video: software decoding and encoding ({software}); NVDEC/NVENC only with a CUDA device"
        )
    from av.codec.hwaccel import HWAccel, hwdevices_available

    hwaccel = HWAccel("cuda", allow_software_fallback=True) if "cuda" in hwdevices_available() else None
    encoder = "h264_nvenc" if "h264_nvenc" in av.codecs_available and _opens(av, "h264_nvenc") else software
    if hwaccel is not None and encoder == "h264_nvenc":
        return Codecs(hwaccel, encoder, "video: NVDEC decoding, NVENC encoding (h264_nvenc)")
    return Codecs(
        hwaccel,
        encoder,
        f"video: {'NVDEC' if hwaccel else 'software'} decoding, {encoder} encoding "
        f"(this FFmpeg or driver lacks {'NVENC' if hwaccel else 'NVDEC'}: software instead)",
    )


def _opens(av: Any, codec: str) -> bool:
    """Whether an encoder really opens here (NVENC is compiled in but needs an NVIDIA driver at run time)."""
    try:
        context = av.CodecContext.create(codec, "w")
        context.width, context.height, context.pix_fmt, context.time_base = 256, 256, "yuv420p", Fraction(1, 25)
        context.open()
        return True
    except (av.error.FFmpegError, ValueError):
        return False


@dataclass
class Reading:
    """How the reading of a source ended: stopped by the user (should_stop), or cut short by the source (why)."""

    stopped: bool = False
    cut: str | None = None


def decoded(
    reader: Any,
    video: Any,
    audio: Any,
    batch_size: int,
    should_stop: Callable[[], bool],
    clock: SourceClock,
    reading: Reading,
) -> Iterator[tuple[str, Any]]:
    """('frames', (a batch of RGB arrays, their times in seconds)) and ('audio', a packet), in the order of the
    container."""
    av = needs("av", "video")
    rate = video.average_rate or video.guessed_rate or Fraction(25)
    pending: list[np.ndarray] = []
    times: list[float] = []
    count = 0
    try:
        for packet in reader.demux(*[stream for stream in (video, audio) if stream is not None]):
            if should_stop():
                reading.stopped = True
                break
            if packet.stream is audio:
                if packet.dts is not None:
                    yield "audio", packet
                continue
            for frame in packet.decode():
                pending.append(frame.to_ndarray(format="rgb24"))
                times.append(frame.time if frame.time is not None else count / float(rate))
                clock.see(times[-1])
                count += 1
                if len(pending) >= batch_size:
                    yield "frames", (pending, times)
                    pending, times = [], []
    except (av.error.FFmpegError, OSError) as error:
        # A truncated file or a source that stopped sending (no data for the 10 s read timeout): the
        # frames so far make a finished, playable video, and the reason is said.
        reading.cut = str(error)
    if pending:
        yield "frames", (pending, times)


def stylised(
    items: Iterator[tuple[str, Any]],
    stylizer: Stylizer,
    options: PictureOptions,
    smoother: Smoother,
    flicker: Flicker,
) -> Iterator[tuple[str, Any]]:
    """('pixels', (uint8 (N, H, W, 3), times)) per batch of frames; audio packets pass through."""
    for kind, item in items:
        if kind == "frames":
            item, times = item
            inputs, styled = stylize_frames(stylizer, item, options)
            results = []
            for frame, result in zip(inputs, styled):
                results.append(smoother(frame, result))
                flicker.add(frame, results[-1])
            # One conversion and one copy from the device per batch, not per frame.
            batch = torch.stack(results).mul_(255).add_(0.5).clamp_(0, 255).to(torch.uint8)
            item = batch.permute(0, 2, 3, 1).contiguous().cpu().numpy(), times
        yield ("pixels" if kind == "frames" else kind), item


def written(
    items: Iterator[tuple[str, Any]],
    writer: Any,
    encoded: Any,
    copied_audio: Any,
    rate: Fraction,
    live: bool,
    total: int | None,
) -> int:
    """Encode and mux the stylised frames (and copy the audio packets); returns the number of frames written. A live
    source's frames keep the source's times, so that the output plays at its speed with frames dropped."""
    av = needs("av", "video")
    frames, first, last_pts = 0, None, -1
    with tqdm(total=total, desc="video", unit="frame") as progress:
        for kind, item in items:
            if kind == "audio":
                item.stream = copied_audio
                writer.mux(item)
                continue
            for pixels, stream_time in zip(*item):
                out = av.VideoFrame.from_ndarray(pixels, format="rgb24")
                out.time_base = 1 / Fraction(rate)
                out.pts = frames
                if live:
                    first = stream_time if first is None else first
                    out.pts = max(round((stream_time - first) * rate), last_pts + 1)
                last_pts = out.pts
                writer.mux(encoded.encode(out))
                frames += 1
            progress.update(len(item[0]))
    writer.mux(encoded.encode(None))
    return frames


def stylize_video(
    stylizer: Stylizer,
    source: str | Path,
    target: Path,
    options: PictureOptions,
    batch_size: int,
    temporal_smoothing: float,
    *,
    pipelined: bool = True,
    live: bool = False,
    should_stop: Callable[[], bool] = lambda: False,
) -> dict[str, Any]:
    """Stylise every frame of `source` (a file, or with `live` a stream or capture device) into `target`,
    written to a temporary file and renamed when done, so no half-written video is ever published.

    `should_stop` (e.g. Ctrl-C) ends the reading: a live source's output is finished and published with
    every frame so far; a file's is discarded (StylenetError). `pipelined=False` runs the three stages
    one after another in this thread (the same frames, none dropped; for comparison). Returns frames, seconds,
    frames/s, frames dropped (live), flicker, whether audio was copied, whether it was stopped, and why the
    source ended early (a truncated file, a stream that stopped sending: the frames so far are kept) or None.
    A live source goes through the network a frame at a time, late frames dropped (see the module)."""
    av = needs("av", "video")
    codecs = choose_codecs(av, stylizer.device)
    log.info("%s", codecs.note)
    smoother, flicker, clock, reading = Smoother(temporal_smoothing), Flicker(), SourceClock(), Reading()
    batch_size = 1 if live else batch_size
    try:
        reader = open_source(av, source, codecs.hwaccel)
    except av.error.FFmpegError as error:
        raise StylenetError(f"cannot read video {source}: {error}") from None
    started = time.perf_counter()

    def stale(entry: tuple[str, Any]) -> int:
        """For a live source: the frames of a batch that is behind the source's clock."""
        kind, item = entry
        return len(item[0]) if live and kind == "frames" and clock.late(item[1][-1]) else 0

    try:
        with ExitStack() as cleanup:
            temporary = cleanup.enter_context(atomic_path(target))
            cleanup.enter_context(reader)
            writer = cleanup.enter_context(av.open(str(temporary), mode="w"))
            if not reader.streams.video:
                raise StylenetError(f"{source} has no video stream")
            video = reader.streams.video[0]
            video.thread_type = "AUTO"  # FFmpeg's frame and slice threads
            rate = video.average_rate or video.guessed_rate or Fraction(25)
            encoded = writer.add_stream(codecs.encoder, rate=rate)
            encoded.width, encoded.height = video.codec_context.width, video.codec_context.height
            encoded.pix_fmt = "yuv420p"
            audio = reader.streams.audio[0] if reader.streams.audio else None
            copied_audio = writer.add_stream_from_template(audio) if audio is not None else None
            stages = cleanup.enter_context(Stages(QUEUE_BATCHES if pipelined else 0))
            frames_in = stages.add(
                decoded(reader, video, audio, batch_size, should_stop, clock, reading), "decode", stale
            )
            items = stages.add(stylised(frames_in, stylizer, options, smoother, flicker), "stylise")
            total = None if live else (video.frames or None)
            frames = written(items, writer, encoded, copied_audio, rate, live, total)
            cut = reading.cut
            if frames == 0:
                raise StylenetError(f"{source}: no frame could be decoded{f' ({cut})' if cut else ''}")
            if cut:
                log.warning("%s ended early after %d frames (%s): the video holds those frames", source, frames, cut)
            if reading.stopped and not live:
                raise StylenetError(f"stopped after {frames} frames of {source}; the partial video was not written")
    except av.error.FFmpegError as error:
        raise StylenetError(f"video {source}: {error}") from None
    seconds = time.perf_counter() - started
    return {
        "frames": frames,
        "seconds": seconds,
        "fps": frames / seconds,
        "dropped": stages.dropped,
        "flicker": flicker.ratio,
        "audio": audio is not None,
        "stopped": reading.stopped,
        "cut": reading.cut,
    }
