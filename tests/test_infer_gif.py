"""GIFs in `python -m stylenet.infer`: animated ones frame by frame with their timing, still ones as images;
other files in an input folder are counted in the summary."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageSequence

from tests.helpers import TrainedRun, random_image, run_entry

pytestmark = pytest.mark.slow


def write_animation(path: Path, durations: list[int], loop: int | None) -> None:
    frames = [random_image(24, 32, seed=seed) for seed in range(len(durations))]  # every frame different
    options = {} if loop is None else {"loop": loop}
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=durations, **options)


def frames_of(path: Path) -> tuple[list[np.ndarray], list[int], int | None]:
    with Image.open(path) as image:
        loop = image.info.get("loop")
        frames = [(np.asarray(frame.convert("RGB")), frame.info["duration"]) for frame in ImageSequence.Iterator(image)]
    return [array for array, _ in frames], [duration for _, duration in frames], loop


def test_a_folder_of_gifs_keeps_animation_timing_and_loop(trained_run: TrainedRun, tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    write_animation(folder / "forever.gif", [80, 160, 240], loop=0)
    write_animation(folder / "once.gif", [100, 50], loop=None)
    random_image(20, 30, seed=9).save(folder / "still.gif")
    (folder / "notes.txt").write_text("not an image")
    (folder / "clip.mov").write_bytes(b"")
    result = run_entry(
        "infer",
        f"checkpoint={trained_run.checkpoint}",
        f"input={folder}",
        f"output={tmp_path / 'out'}",
        "batch_size=2",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "3 written, 0 failed; 2 file(s) in" in result.stdout and "are not images" in result.stdout

    for name, durations, loop in (("forever.gif", [80, 160, 240], 0), ("once.gif", [100, 50], None)):
        inputs, _, _ = frames_of(folder / name)
        outputs, written_durations, written_loop = frames_of(tmp_path / "out" / name)
        assert written_durations == durations and written_loop == loop
        assert len(outputs) == len(inputs) and all(o.shape == i.shape for o, i in zip(outputs, inputs))
        assert all(np.abs(o.astype(int) - i.astype(int)).mean() > 2 for o, i in zip(outputs, inputs))  # stylised
        assert len({o.tobytes() for o in outputs}) == len(outputs)  # each frame its own
    with Image.open(tmp_path / "out" / "still.gif") as still:
        assert not getattr(still, "is_animated", False) and still.size == (30, 20)


def test_an_animated_gif_needs_a_gif_output(trained_run: TrainedRun, tmp_path: Path) -> None:
    write_animation(tmp_path / "moving.gif", [100, 100], loop=0)
    result = run_entry(
        "infer",
        f"checkpoint={trained_run.checkpoint}",
        f"input={tmp_path / 'moving.gif'}",
        f"output={tmp_path / 'moving.png'}",
        cwd=tmp_path,
    )
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "is an animated GIF: its output is an animated GIF too, so name it .gif" in result.stderr
    assert not (tmp_path / "moving.png").exists()
