"""Faults around the happy path: where results go (a file in the way, no permission, a full disk), two processes
at once (one run folder, one ONNX cache entry), names that resolve to a local file, and a source that dies.
Each asserts the one line a user sees and that no earlier good file was damaged."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import torch

import stylenet
from stylenet.common.atomic import atomic_write
from stylenet.common.errors import StylenetError
from stylenet.nets.network_file import load_network_file
from tests.helpers import TrainedRun, process_env, random_image, run_entry, tiny_train_overrides

pytestmark = pytest.mark.slow


def full_disk(*_: object, **__: object) -> None:
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def no_permission(*_: object, **__: object) -> None:
    raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))


def test_a_failed_write_names_the_path_and_keeps_the_earlier_file(tmp_path: Path) -> None:
    target = tmp_path / "network.pt"
    target.write_bytes(b"the earlier good file")

    def write_half(stream: object) -> None:
        stream.write(b"half")  # type: ignore[attr-defined]
        full_disk()

    with pytest.raises(StylenetError, match=f"cannot write {target}: no space left on the device"):
        atomic_write(target, write_half)
    assert target.read_bytes() == b"the earlier good file"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["network.pt"]  # no temporary left behind

    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    with pytest.raises(StylenetError, match=f"{blocker} is a file, not a folder"):
        atomic_write(blocker / "sub" / "out.png", lambda stream: stream.write(b"x"))
    with pytest.raises(StylenetError, match="it is a folder; give a file name"):
        atomic_write(tmp_path, lambda stream: stream.write(b"x"))


def test_torch_save_on_a_full_disk_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """torch.save reports a failed write as its own RuntimeError, not an OSError."""
    target = tmp_path / "snapshot.pt"

    def failing(*_: object, **__: object) -> None:
        raise RuntimeError(
            "[enforce fail at inline_container.cc:783] . PytorchStreamWriter failed writing file data/0: file write failed"
        )

    monkeypatch.setattr(torch, "save", failing)
    monkeypatch.setattr("stylenet.common.atomic._nearly_full", lambda path: True)
    with pytest.raises(StylenetError, match=f"cannot write {target}: no space left on the device"):
        atomic_write(target, lambda stream: torch.save({}, stream))


@pytest.mark.parametrize(
    ("fault", "reason"), [(full_disk, "no space left on the device"), (no_permission, "no permission to write there")]
)
def test_infer_output_that_cannot_be_written_exits_2_and_keeps_the_earlier_picture(
    trained_run: TrainedRun, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fault: object, reason: str
) -> None:
    photo, output = tmp_path / "photo.png", tmp_path / "out.png"
    random_image(40, 48).save(photo)
    output.write_bytes(b"an earlier picture")
    monkeypatch.setattr(os, "replace", fault)
    result = run_entry(
        "infer",
        f"checkpoint={trained_run.checkpoint}",
        f"input={photo}",
        f"output={output}",
        "overwrite=true",
        cwd=tmp_path,
    )
    assert result.returncode in (1, 2), result.stderr
    assert f"cannot write {output}: {reason}" in result.stderr
    assert "Traceback" not in result.stderr
    assert output.read_bytes() == b"an earlier picture"


def test_infer_into_a_folder_that_is_a_file_exits_2(trained_run: TrainedRun, tmp_path: Path) -> None:
    photo, blocker = tmp_path / "photo.png", tmp_path / "results"
    random_image(40, 48).save(photo)
    blocker.write_text("not a folder")
    result = run_entry(
        "infer", f"checkpoint={trained_run.checkpoint}", f"input={photo}", f"output={blocker}/out.png", cwd=tmp_path
    )
    assert result.returncode in (1, 2)
    assert f"{blocker} is a file, not a folder" in result.stderr
    assert "Traceback" not in result.stderr


def test_export_on_a_full_disk_keeps_the_earlier_export(
    trained_run: TrainedRun, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "net.pt"
    target.write_bytes(b"an earlier export")
    monkeypatch.setattr(os, "replace", full_disk)
    result = run_entry(
        "export",
        f"checkpoint={trained_run.checkpoint}",
        "format=torchscript",
        f"output={target}",
        "overwrite=true",
        cwd=tmp_path,
    )
    assert result.returncode == 2, result.stderr
    assert f"cannot write {target}: no space left on the device" in result.stderr
    assert target.read_bytes() == b"an earlier export"


def test_a_training_whose_checkpoint_dir_is_a_file_says_where_the_network_is(workspace: Path, tmp_path: Path) -> None:
    run_dir, blocker = tmp_path / "run", tmp_path / "published"
    blocker.write_text("not a folder")
    overrides = [o for o in tiny_train_overrides(workspace, run_dir, steps=2) if not o.startswith("checkpoint_dir=")]
    result = run_entry("train", *overrides, f"checkpoint_dir={blocker}", cwd=tmp_path)
    assert result.returncode == 2
    assert f"{blocker} is a file, not a folder" in result.stderr
    assert f"the trained network is safe in {run_dir / 'tiny_style.pt'}" in result.stderr
    assert load_network_file(run_dir / "tiny_style.pt")["style"] == "tiny_style"


HOLDER = """
import sys, time
from pathlib import Path
from stylenet.training.snapshots import hold_run_folder
with hold_run_folder(Path(sys.argv[1])):
    print("holding", flush=True)
    time.sleep(120)
"""


def test_a_run_folder_held_by_a_live_training_refuses_a_second_until_it_is_killed(
    workspace: Path, tmp_path: Path
) -> None:
    """Two trainings with resume=auto in one run folder: the second is refused while the first lives; kill -9
    the first (its lock goes with it) and resume=auto continues in that folder."""
    run_dir = tmp_path / "run"
    first = run_entry("train", *tiny_train_overrides(workspace, run_dir, steps=4), cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-2000:]
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(run_dir)], stdout=subprocess.PIPE, text=True, env=process_env(tmp_path)
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "holding"
        snapshots = sorted((run_dir / "checkpoints").iterdir())
        second = run_entry("train", *tiny_train_overrides(workspace, run_dir, steps=8), "resume=auto", cwd=tmp_path)
        assert second.returncode == 2
        assert (
            f"the run folder {run_dir} is in use by a training that is still running (pid {holder.pid}" in second.stderr
        )
        assert sorted((run_dir / "checkpoints").iterdir()) == snapshots  # nothing written by the refused run
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    third = run_entry("train", *tiny_train_overrides(workspace, run_dir, steps=8), "resume=auto", cwd=tmp_path)
    assert third.returncode == 0, third.stderr[-2000:]
    assert "resuming from step 4" in third.stdout + third.stderr


EXPORTER = """
import sys
from pathlib import Path
import stylenet
stylizer = stylenet.load(sys.argv[1], device="cpu", backend="onnxruntime")
print(stylizer.describe(), flush=True)
"""


def test_two_processes_exporting_one_network_to_the_onnx_cache_both_get_a_good_file(
    trained_run: TrainedRun, tmp_path: Path
) -> None:
    pytest.importorskip("onnxruntime")
    env = process_env(tmp_path)
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", EXPORTER, str(trained_run.checkpoint)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for _ in range(2)
    ]
    outputs = [process.communicate(timeout=240) for process in processes]
    for process, (stdout, stderr) in zip(processes, outputs):
        assert process.returncode == 0, stderr[-2000:]
        assert stdout.startswith("onnxruntime")
    cache = tmp_path / "cache" / "onnx"
    assert [path.suffix for path in cache.iterdir()] == [".onnx"]  # one entry, no temporary left
    os.environ["STYLENET_CACHE"], saved = str(tmp_path / "cache"), os.environ.get("STYLENET_CACHE")
    try:
        reopened = stylenet.load(trained_run.checkpoint, device="cpu", backend="onnxruntime")
        assert reopened(torch.rand(1, 3, 32, 32)).shape == (1, 3, 32, 32)
    finally:
        os.environ.pop("STYLENET_CACHE") if saved is None else os.environ.update(STYLENET_CACHE=saved)


KILLED_WRITER = """
import sys, time
from stylenet.common.atomic import atomic_write
def slow(stream):
    stream.write(b"half of a new file")
    stream.flush()
    print("writing", flush=True)
    time.sleep(120)
atomic_write(sys.argv[1], slow)
"""


def test_a_writer_killed_mid_write_leaves_the_earlier_file(tmp_path: Path) -> None:
    target = tmp_path / "network.pt"
    target.write_bytes(b"the earlier good file")
    writer = subprocess.Popen(
        [sys.executable, "-c", KILLED_WRITER, str(target)], stdout=subprocess.PIPE, text=True, env=process_env(tmp_path)
    )
    assert writer.stdout is not None and writer.stdout.readline().strip() == "writing"
    writer.send_signal(signal.SIGKILL)
    writer.wait()
    assert target.read_bytes() == b"the earlier good file"


def test_a_bare_name_that_finds_a_local_file_says_which_and_zoo_names_the_zoos(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, trained_run: TrainedRun
) -> None:
    (tmp_path / "checkpoints").mkdir()
    local = tmp_path / "checkpoints" / "mosaic.pt"
    local.write_bytes(trained_run.checkpoint.read_bytes())
    monkeypatch.chdir(tmp_path)
    with caplog.at_level("INFO"):
        stylizer = stylenet.load("mosaic", device="cpu", backend="torch")
    assert stylizer.name == "tiny_style"
    assert (
        f"'mosaic' is {Path('checkpoints') / 'mosaic.pt'}, a network trained in this folder; the zoo's is zoo:mosaic"
        in caplog.text
    )
    assert stylenet.load("zoo:mosaic", device="cpu", backend="torch").name == "mosaic"
    with pytest.raises(StylenetError, match="no zoo network zoo:nothing .the zoo's: zoo:candy"):
        stylenet.load("zoo:nothing")


def test_a_truncated_video_ends_in_a_playable_file_of_the_frames_before_the_cut(
    trained_run: TrainedRun, tmp_path: Path
) -> None:
    av = pytest.importorskip("av")
    from fractions import Fraction

    from tests.test_video import write_clip

    source, target = tmp_path / "clip.mkv", tmp_path / "styled.mp4"
    write_clip(source, 48, Fraction(24), (64, 48), audio=False)
    data = source.read_bytes()
    source.write_bytes(data[: len(data) * 7 // 10])  # cut short, as a broken download or copy leaves it
    result = run_entry(
        "infer", f"checkpoint={trained_run.checkpoint}", f"input={source}", f"output={target}", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr[-2000:]
    with av.open(str(target)) as written:
        frames = sum(1 for _ in written.decode(video=0))
    assert 5 < frames < 48
    assert f"wrote {target}: {frames} frames" in result.stdout + result.stderr


def test_a_source_that_stops_sending_keeps_what_was_read(
    trained_run: TrainedRun, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stream that dies after some frames (FFmpeg's read timeout, a dropped connection) ends the output
    cleanly with the reason, as Ctrl-C does."""
    av = pytest.importorskip("av")
    from fractions import Fraction

    from stylenet.inference import video
    from tests.test_video import write_clip

    source, target = tmp_path / "clip.mkv", tmp_path / "live.mp4"
    write_clip(source, 24, Fraction(24), (64, 48), audio=False)
    opened = video.open_source

    class Dying:
        """The container, whose packets stop after ten with the error FFmpeg gives a stalled stream."""

        def __init__(self, container: object) -> None:
            self.container = container

        def __getattr__(self, name: str) -> object:
            return getattr(self.container, name)

        def __enter__(self) -> Dying:
            return self

        def __exit__(self, *exc: object) -> None:
            self.container.close()  # type: ignore[attr-defined]

        def demux(self, *streams: object):
            for count, packet in enumerate(self.container.demux(*streams)):  # type: ignore[attr-defined]
                if count == 10:
                    raise av.error.ExitError(errno.ETIMEDOUT, "Connection timed out")
                yield packet

    def dying(*args: object, **kwargs: object) -> object:
        return Dying(opened(*args, **kwargs))

    monkeypatch.setattr(video, "open_source", dying)
    result = run_entry(
        "infer", f"checkpoint={trained_run.checkpoint}", f"input={source}", f"output={target}", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "the source ended early" in result.stdout + result.stderr
    assert "timed out" in result.stdout + result.stderr
    with av.open(str(target)) as written:
        assert 0 < sum(1 for _ in written.decode(video=0)) <= 10


def test_tempfile_without_permission_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tempfile, "mkstemp", no_permission)
    with pytest.raises(StylenetError, match=f"cannot write {tmp_path / 'x.png'}: no permission to write there"):
        atomic_write(tmp_path / "x.png", lambda stream: stream.write(b"x"))


def test_a_run_folder_under_a_file_is_one_line(workspace: Path, tmp_path: Path) -> None:
    """Hydra makes the run folder before any of our code runs: its OSError too ends in one line, exit 2."""
    blocker = tmp_path / "runs"
    blocker.write_text("not a folder")
    result = run_entry("train", *tiny_train_overrides(workspace, blocker / "run", steps=1), cwd=tmp_path)
    assert result.returncode == 2
    assert f"cannot write {blocker / 'run'}: {blocker} is a file, not a folder" in result.stderr
    assert "Traceback" not in result.stderr
