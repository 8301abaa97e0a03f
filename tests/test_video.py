"""Video files through `python -m stylenet.infer`: frames, frame rate, size and audio survive; smoothing cuts flicker."""

import re
import sys
import time
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch

import stylenet
import stylenet.inference.video
from tests.helpers import TrainedRun, after_calls, ctrl_c, random_image, run_entry

pytestmark = pytest.mark.slow


def write_clip(path: Path, frames: int, rate: Fraction, size: tuple[int, int], audio: bool, pan: int = 1) -> None:
    """A short clip: a photo panning by `pan` pixels per frame with a camera's noise, and a tone."""
    av = pytest.importorskip("av", reason="the video extra is not installed: pip install -e '.[video]'")
    width, height = size
    scene = np.asarray(random_image(height, width + frames * pan, seed=1), dtype=np.float32)
    rng = np.random.default_rng(0)
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264" if "libx264" in av.codecs_available else "mpeg4", rate=rate)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        sound = container.add_stream("aac", rate=22050) if audio else None
        for index in range(frames):
            shift = index * pan
            pixels = np.clip(scene[:, shift : shift + width] + rng.normal(0, 4, (height, width, 3)), 0, 255)
            container.mux(video.encode(av.VideoFrame.from_ndarray(pixels.astype(np.uint8), format="rgb24")))
        container.mux(video.encode(None))
        if sound is not None:
            tone = np.sin(2 * np.pi * 440 * np.arange(22050) / 22050).astype(np.float32)[None]
            for start in range(0, tone.shape[1], 1024):
                frame = av.AudioFrame.from_ndarray(
                    np.ascontiguousarray(tone[:, start : start + 1024]), format="fltp", layout="mono"
                )
                frame.sample_rate, frame.pts = 22050, start
                container.mux(sound.encode(frame))
            container.mux(sound.encode(None))


def flicker(stdout: str) -> float:
    return float(re.search(r"flicker (\S+)", stdout).group(1))


def test_a_video_round_trip_keeps_frames_rate_size_and_audio(trained_run: TrainedRun, tmp_path: Path) -> None:
    write_clip(tmp_path / "clip.mp4", 12, Fraction(30000, 1001), (64, 48), audio=True)
    result = run_entry(
        "infer",
        f"checkpoint={trained_run.checkpoint}",
        f"input={tmp_path / 'clip.mp4'}",
        f"output={tmp_path / 'out'}/",
        "batch_size=5",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert re.search(r"12 frames in \S+ s \(\S+ frames/s\), audio copied", result.stdout)
    import av

    with av.open(str(tmp_path / "out" / "clip.mp4")) as container:
        video = container.streams.video[0]
        assert video.average_rate == Fraction(30000, 1001)
        assert (video.codec_context.width, video.codec_context.height) == (64, 48)
        assert [stream.type for stream in container.streams] == ["video", "audio"]
        assert sum(1 for _ in container.decode(video=0)) == 12
    assert [path.name for path in (tmp_path / "out").iterdir()] == ["clip.mp4"]  # no temporary file left


def test_temporal_smoothing_reduces_flicker(trained_run: TrainedRun, tmp_path: Path) -> None:
    write_clip(tmp_path / "clip.mp4", 10, Fraction(25), (64, 48), audio=False, pan=0)  # a still shot: noise only
    measured = {}
    for smoothing in ("0", "0.8"):
        result = run_entry(
            "infer",
            f"checkpoint={trained_run.checkpoint}",
            f"input={tmp_path / 'clip.mp4'}",
            f"output={tmp_path / smoothing}.mp4",
            f"temporal_smoothing={smoothing}",
            cwd=tmp_path,
        )
        assert result.returncode == 0, result.stderr
        assert "audio copied" not in result.stdout
        measured[smoothing] = flicker(result.stdout)
    assert 0 < measured["0.8"] < measured["0"] * 0.8


def test_video_errors_are_clear(trained_run: TrainedRun, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "broken.mp4").write_bytes(b"not a video at all")
    cases = [
        ([f"input={tmp_path / 'broken.mp4'}", f"output={tmp_path / 'out.mp4'}"], "cannot read video", {}),
        ([f"input={tmp_path / 'broken.mp4'}", f"output={tmp_path / 'out.png'}"], "needs a video extension", {}),
        ([f"input={tmp_path / 'missing.mp4'}", f"output={tmp_path / 'out.mp4'}"], "input not found", {}),
        (
            [f"input={tmp_path / 'broken.mp4'}", f"output={tmp_path / 'out.mp4'}", "temporal_smoothing=1"],
            "temporal_smoothing must be at least 0 and below 1, got 1",
            {},
        ),
        (
            [f"input={tmp_path / 'broken.mp4'}", f"output={tmp_path / 'out.mp4'}", "temporal_smoothing=x"],
            "temporal_smoothing: Value 'x' of type 'str' could not be converted to Float",
            {},
        ),
        (
            [f"input={tmp_path / 'broken.mp4'}", f"output={tmp_path / 'out.mp4'}"],
            'pip install -e ".[video]"',
            {"av": None},
        ),  # as if the video extra were not installed
    ]
    for overrides, message, hidden in cases:
        with monkeypatch.context() as patch:
            for name, module in hidden.items():
                patch.setitem(sys.modules, name, module)
            result = run_entry("infer", f"checkpoint={trained_run.checkpoint}", *overrides, cwd=tmp_path)
        assert result.returncode == 2 and message in result.stderr, (message, result.stderr)
        assert "Traceback" not in result.stderr
    assert sorted(path.name for path in tmp_path.iterdir()) == ["broken.mp4"]


def test_picture_options_apply_to_every_frame(trained_run: TrainedRun, tmp_path: Path) -> None:
    write_clip(tmp_path / "clip.mp4", 6, Fraction(25), (64, 48), audio=False)
    for name, strength in [("same", "0"), ("styled", "1")]:
        result = run_entry(
            "infer",
            f"checkpoint={trained_run.checkpoint}",
            f"input={tmp_path / 'clip.mp4'}",
            f"output={tmp_path / name}.mp4",
            f"strength={strength}",
            cwd=tmp_path,
        )
        assert result.returncode == 0, result.stderr
    import av

    def frames(path: Path) -> list[np.ndarray]:
        with av.open(str(path)) as container:
            return [frame.to_ndarray(format="rgb24").astype(float) for frame in container.decode(video=0)]

    original, same, styled = (frames(tmp_path / name) for name in ("clip.mp4", "same.mp4", "styled.mp4"))
    assert len(same) == len(original) == 6
    kept = max(np.abs(a - b).mean() for a, b in zip(original, same))  # strength=0: the input, re-encoded
    changed = min(np.abs(a - b).mean() for a, b in zip(original, styled))
    assert kept < 6 and changed > 3 * kept


def decoded_frames(path: Path) -> list[np.ndarray]:
    import av

    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]


def test_the_pipelined_path_writes_what_the_sequential_one_does(
    trained_run: TrainedRun, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_clip(tmp_path / "clip.mp4", 9, Fraction(25), (64, 48), audio=True, pan=8)
    for pipelined in ("true", "false"):  # both paths through the entry point: every frame, the audio
        result = run_entry(
            "infer",
            f"checkpoint={trained_run.checkpoint}",
            f"input={tmp_path / 'clip.mp4'}",
            f"output={tmp_path / pipelined}.mp4",
            f"video_pipeline={pipelined}",
            "batch_size=2",
            "temporal_smoothing=0.5",
            cwd=tmp_path,
        )
        assert result.returncode == 0, result.stderr
        assert "audio copied" in result.stdout and "video: software decoding and encoding" in result.stdout
        assert len(decoded_frames(tmp_path / f"{pipelined}.mp4")) == 9
    # The frames themselves, compared without x264: here it encodes the same frames differently from one
    # run to the next (measured: up to 3 levels on average by the ninth frame, for either path), which
    # would hide a frame out of place (neighbours differ by 7-11). A lossless codec shows what was written.
    from stylenet.inference import video
    from stylenet.inference.stylizer import PictureOptions

    monkeypatch.setattr(video, "choose_codecs", lambda av, device: video.Codecs(None, "ffv1", "lossless (test)"))
    stylizer = stylenet.load(trained_run.checkpoint, device="cpu")
    for pipelined in (True, False):
        video.stylize_video(
            stylizer,
            tmp_path / "clip.mp4",
            tmp_path / f"{pipelined}.mkv",
            PictureOptions(),
            2,
            0.5,
            pipelined=pipelined,
        )
    threaded, sequential = decoded_frames(tmp_path / "True.mkv"), decoded_frames(tmp_path / "False.mkv")
    original = decoded_frames(tmp_path / "clip.mp4")
    assert len(threaded) == len(sequential) == 9
    for a, b, photo in zip(threaded, sequential, original):
        # the same frame in the same place, up to one level of rounding should another thread sum differently
        assert np.abs(a.astype(int) - b).max() <= 1 and np.abs(a.astype(float) - photo).mean() > 10


@pytest.fixture
def served(tmp_path: Path):
    """An HTTP server on the loopback address serving tmp_path (FFmpeg reads it as a network stream)."""
    import functools
    import http.server
    import threading

    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_a_live_source_over_http_is_stylised_with_its_audio(
    trained_run: TrainedRun, tmp_path: Path, served: str
) -> None:
    write_clip(tmp_path / "clip.mp4", 12, Fraction(25), (64, 48), audio=True)
    result = run_entry(
        "infer",
        f"checkpoint={trained_run.checkpoint}",
        f"input={served}/clip.mp4",
        f"output={tmp_path / 'live.mp4'}",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert "live source" in result.stdout and "audio copied" in result.stdout
    # served faster than real time by a network slower than it (measured here: 6 of 12 frames shown):
    # what the network could not keep up with was dropped and said so
    shown, dropped = re.search(
        r"(\d+) frames in .*?(?:(\d+) late frames dropped|no frame dropped)", result.stdout
    ).groups()
    assert int(shown) + int(dropped or 0) == 12 and len(decoded_frames(tmp_path / "live.mp4")) == int(shown)


def test_ctrl_c_ends_a_live_source_with_what_was_read_kept_playable(
    trained_run: TrainedRun, tmp_path: Path, served: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_clip(tmp_path / "clip.mp4", 60, Fraction(25), (64, 48), audio=False)
    after_calls(monkeypatch, stylenet.inference.video, "stylize_frames", 4, ctrl_c)
    result = run_entry(
        "infer",
        f"checkpoint={trained_run.checkpoint}",
        f"input={served}/clip.mp4",
        f"output={tmp_path / 'live.mp4'}",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert "stopped by request" in result.stdout
    kept = len(decoded_frames(tmp_path / "live.mp4"))  # a complete, playable file: a live source goes a frame per call
    assert 4 <= kept < 60


def test_ctrl_c_on_a_video_file_publishes_no_partial_video(
    trained_run: TrainedRun, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_clip(tmp_path / "clip.mp4", 60, Fraction(25), (64, 48), audio=False)
    after_calls(monkeypatch, stylenet.inference.video, "stylize_frames", 2, ctrl_c)
    result = run_entry(
        "infer",
        f"checkpoint={trained_run.checkpoint}",
        f"input={tmp_path / 'clip.mp4'}",
        f"output={tmp_path / 'out.mp4'}",
        "batch_size=2",
        cwd=tmp_path,
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "the partial video was not written" in result.stderr
    assert sorted(path.name for path in tmp_path.iterdir()) == ["clip.mp4"]


def test_a_live_source_needs_a_video_file_to_write(trained_run: TrainedRun, tmp_path: Path) -> None:
    result = run_entry(
        "infer",
        f"checkpoint={trained_run.checkpoint}",
        "input=http://127.0.0.1:9/clip.mp4",
        f"output={tmp_path}/",
        cwd=tmp_path,
    )
    assert result.returncode == 2 and "is a live source: output must be a video file name" in result.stderr


class SlowIdentity:
    """A network that returns its input after `seconds` per call: slower or faster than a source at will."""

    device = torch.device("cpu")

    def __init__(self, seconds: float) -> None:
        self.seconds, self.calls = seconds, 0

    def run(self, batch: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        time.sleep(self.seconds)
        return batch

    def tiled(self, image: torch.Tensor, tile: int, overlap: int) -> torch.Tensor:
        raise AssertionError("not used")


def live_test_pattern(rate: int, seconds: int) -> str:
    """A live source generated by FFmpeg at its own pace (lavfi's realtime filter), as a camera would be."""
    return f"lavfi:testsrc=size=64x48:rate={rate}:duration={seconds},realtime"


def test_a_live_source_faster_than_the_network_drops_late_frames(tmp_path: Path) -> None:
    from stylenet.inference.stylizer import PictureOptions
    from stylenet.inference.video import stylize_video

    pytest.importorskip("av", reason="the video extra is not installed: pip install -e '.[video]'")
    network = SlowIdentity(0.1)  # 10 frames/s against a source of 50
    result = stylize_video(
        network, live_test_pattern(50, 2), tmp_path / "live.mp4", PictureOptions(), 4, 0.0, live=True
    )
    shown = decoded_frames(tmp_path / "live.mp4")
    assert result["frames"] == len(shown) == network.calls  # one frame per call: no batches behind the source
    # kept up: at 10 frames/s against 50 the network sees at most about one frame in five, never the backlog
    assert result["frames"] + result["dropped"] == 100 and result["dropped"] >= 50
    import av

    with av.open(str(tmp_path / "live.mp4")) as container:  # the output plays at the source's speed
        last = [frame.time for frame in container.decode(video=0)][-1]
    assert 1.5 < last <= 2


def test_a_stage_never_holds_back_a_producer_whose_waiting_items_are_stale() -> None:
    """The mechanism under live video: 100 items, all stale, against a consumer that takes 50 ms each. The
    producer drops the oldest waiting item instead of waiting for room, so it is done at once and the consumer
    sees only the newest few (a consumer-side drop alone raced with the producer's thread: about half)."""
    from stylenet.inference.pipeline import Stages

    with Stages(depth=2) as stages:
        seen = []
        for item in stages.add(iter(range(100)), "produce", stale=lambda item: 1):
            seen.append(item)
            time.sleep(0.05)
        dropped = stages.dropped
    assert len(seen) + dropped == 100 and len(seen) <= 5 and seen[-1] == 99, seen


def test_a_live_source_slower_than_the_network_loses_no_frame(tmp_path: Path) -> None:
    from stylenet.inference.stylizer import PictureOptions
    from stylenet.inference.video import stylize_video

    pytest.importorskip("av", reason="the video extra is not installed: pip install -e '.[video]'")
    result = stylize_video(
        SlowIdentity(0.0), live_test_pattern(10, 1), tmp_path / "live.mp4", PictureOptions(), 4, 0.0, live=True
    )
    assert result["frames"] == 10 and result["dropped"] == 0


def test_a_file_slower_than_its_frame_rate_still_gives_every_frame(tmp_path: Path) -> None:
    from stylenet.inference.stylizer import PictureOptions
    from stylenet.inference.video import stylize_video

    write_clip(tmp_path / "clip.mp4", 8, Fraction(50), (64, 48), audio=False)
    result = stylize_video(SlowIdentity(0.1), tmp_path / "clip.mp4", tmp_path / "out.mp4", PictureOptions(), 1, 0.0)
    assert result["frames"] == 8 and result["dropped"] == 0 and len(decoded_frames(tmp_path / "out.mp4")) == 8
