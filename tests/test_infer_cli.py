"""`python -m stylenet.infer` and `stylenet.load` on the checkpoint of the shared training run."""

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import stylenet
from stylenet.inference.stylizer import stylize_picture
from tests.helpers import TrainedRun, random_image, run_cli, run_entry

pytestmark = pytest.mark.slow


def test_single_file_keeps_its_size(trained_run: TrainedRun, tmp_path: Path) -> None:
    random_image(37, 53).save(tmp_path / "photo.png")
    result = run_entry(
        "infer",
        f"checkpoint={trained_run.checkpoint}",
        f"input={tmp_path / 'photo.png'}",
        f"output={tmp_path / 'styled.jpg'}",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    with Image.open(tmp_path / "styled.jpg") as styled:
        assert styled.format == "JPEG" and styled.size == (53, 37)
    assert not (tmp_path / "outputs").exists()


def test_entry_points_run_in_process_behave_as_fresh_interpreters(trained_run: TrainedRun, tmp_path: Path) -> None:
    """Most tests run entry points in the test process (helpers.run_entry); what they conclude holds only if a
    user's `python -m` gives the same files, output and exit status."""
    random_image(37, 53).save(tmp_path / "photo.png")
    runs = {}
    for fresh, run in ((True, run_cli), (False, run_entry)):
        output = tmp_path / f"fresh_{fresh}.png"
        good = run(
            "infer",
            f"checkpoint={trained_run.checkpoint}",
            f"input={tmp_path / 'photo.png'}",
            f"output={output}",
            cwd=tmp_path,
        )
        bad = run(
            "infer",
            f"checkpoint={trained_run.checkpoint}",
            f"input={tmp_path / 'photo.png'}",
            f"output={output}",
            "strength=lots",
            cwd=tmp_path,
        )
        messages = [line.rsplit("] - ", 1)[-1] for line in (good.stdout + good.stderr).splitlines()]
        runs[fresh] = (good.returncode, messages, bad.returncode, bad.stdout, bad.stderr, output.read_bytes())
    assert runs[True] == runs[False]
    assert runs[True][0] == 0 and any("style 'tiny_style'" in message for message in runs[True][1])
    assert runs[True][2:5] == (2, "", "error: strength: Value 'lots' of type 'str' could not be converted to Float\n")


def test_max_size_downscales_keeping_aspect(trained_run: TrainedRun, tmp_path: Path) -> None:
    random_image(60, 90).save(tmp_path / "photo.png")
    result = run_entry(
        "infer",
        f"checkpoint={trained_run.checkpoint}",
        f"input={tmp_path / 'photo.png'}",
        f"output={tmp_path / 'small.png'}",
        "max_size=30",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert Image.open(tmp_path / "small.png").size == (30, 20)


def test_folder_with_a_bad_file_writes_the_rest_and_fails(trained_run: TrainedRun, tmp_path: Path) -> None:
    shutil.copytree(trained_run.root / "photos", tmp_path / "photos")
    result = run_entry(
        "infer",
        f"checkpoint={trained_run.checkpoint}",
        f"input={tmp_path / 'photos'}",
        f"output={tmp_path / 'styled'}",
        cwd=tmp_path,
    )
    assert result.returncode == 1
    assert "corrupt.jpg" in result.stderr and "Traceback" not in result.stderr
    inputs = sorted(p.relative_to(tmp_path / "photos") for p in (tmp_path / "photos").rglob("photo_*"))
    outputs = sorted(p.relative_to(tmp_path / "styled") for p in (tmp_path / "styled").rglob("*.*"))
    assert outputs == inputs and len(outputs) == 6
    for relative in inputs:
        assert Image.open(tmp_path / "styled" / relative).size == Image.open(tmp_path / "photos" / relative).size
    assert "6 written, 1 failed" in result.stdout


def test_existing_outputs_and_inputs_are_never_overwritten(trained_run: TrainedRun, tmp_path: Path) -> None:
    random_image(20, 20).save(tmp_path / "photo.png")
    original = (tmp_path / "photo.png").read_bytes()
    same = run_entry(
        "infer",
        f"checkpoint={trained_run.checkpoint}",
        f"input={tmp_path / 'photo.png'}",
        f"output={tmp_path / 'photo.png'}",
        "overwrite=true",
        cwd=tmp_path,
    )
    assert same.returncode == 1 and "refusing to overwrite the input file" in same.stderr
    assert (tmp_path / "photo.png").read_bytes() == original
    (tmp_path / "done.png").write_bytes(b"earlier result")
    again = run_entry(
        "infer",
        f"checkpoint={trained_run.checkpoint}",
        f"input={tmp_path / 'photo.png'}",
        f"output={tmp_path / 'done.png'}",
        cwd=tmp_path,
    )
    assert again.returncode == 0 and "1 skipped because the output exists" in again.stdout
    assert (tmp_path / "done.png").read_bytes() == b"earlier result"


@pytest.mark.parametrize(
    "override,message",
    [
        ("checkpoint={tmp}/missing.pt", "checkpoint not found: {tmp}/missing.pt"),
        ("input={tmp}/absent.png", "input not found: {tmp}/absent.png"),
        ("output={tmp}/out.txt", "needs an image extension"),
    ],
)
def test_bad_arguments_are_clear_errors(trained_run: TrainedRun, tmp_path: Path, override: str, message: str) -> None:
    random_image(20, 20).save(tmp_path / "photo.png")
    arguments = {
        "checkpoint": str(trained_run.checkpoint),
        "input": str(tmp_path / "photo.png"),
        "output": str(tmp_path / "out.png"),
    }
    key, value = override.format(tmp=tmp_path).split("=", 1)
    arguments[key] = value
    result = run_entry("infer", *(f"{k}={v}" for k, v in arguments.items()), cwd=tmp_path)
    assert result.returncode == 2 and message.format(tmp=tmp_path) in result.stderr
    assert "Traceback" not in result.stderr


def test_python_api_stylises_pil_images_and_tensors(trained_run: TrainedRun) -> None:
    stylizer = stylenet.load(trained_run.checkpoint, device="cpu")
    assert stylizer.name == "tiny_style" and stylizer.summary["steps"] == 30
    styled = stylizer(random_image(21, 34).convert("RGBA"))
    assert isinstance(styled, Image.Image) and styled.size == (34, 21) and styled.mode == "RGB"
    batch = torch.rand(2, 3, 19, 23)
    out = stylizer(batch)
    assert out.shape == batch.shape and not out.requires_grad
    assert torch.allclose(out[0], stylizer(batch[:1])[0], atol=1e-6)


@pytest.mark.parametrize(
    "precision,channels_last,tolerance",
    [
        ("bf16", False, 0.03),
        ("fp32", True, 1e-5),
        ("bf16", True, 0.03),
    ],
)
def test_inference_precision_and_memory_format_keep_the_output(
    trained_run: TrainedRun, precision: str, channels_last: bool, tolerance: float
) -> None:
    batch = torch.rand(2, 3, 27, 33)
    reference = stylenet.load(trained_run.checkpoint, device="cpu", precision="fp32", channels_last=False)(batch)
    fast = stylenet.load(trained_run.checkpoint, device="cpu", precision=precision, channels_last=channels_last)
    out = fast(batch)
    assert out.dtype == torch.float32 and out.shape == batch.shape
    assert (out - reference).abs().max() < tolerance


def test_unknown_inference_precision_is_a_clear_error(trained_run: TrainedRun, tmp_path: Path) -> None:
    random_image(20, 20).save(tmp_path / "in.png")
    result = run_entry(
        "infer",
        f"checkpoint={trained_run.checkpoint}",
        f"input={tmp_path / 'in.png'}",
        f"output={tmp_path / 'out.png'}",
        "precision=fp8",
        cwd=tmp_path,
    )
    assert result.returncode == 2 and "precision must be one of auto, fp32, bf16, fp16, got 'fp8'" in result.stderr


def ycbcr(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("YCbCr"), dtype=float)


def test_strength_zero_returns_the_photo_and_preserve_color_keeps_its_chroma(trained_run: TrainedRun) -> None:
    stylizer = stylenet.load(trained_run.checkpoint, device="cpu")
    photo = random_image(30, 41, seed=4)
    assert stylize_picture(stylizer, photo, strength=0.0).tobytes() == photo.tobytes()
    full = stylize_picture(stylizer, photo)
    half = np.asarray(stylize_picture(stylizer, photo, strength=0.5), dtype=float)
    assert np.abs(half - (np.asarray(photo, dtype=float) + np.asarray(full, dtype=float)) / 2).max() <= 1
    kept = stylize_picture(stylizer, photo, preserve_color=True)
    assert np.abs(ycbcr(kept)[..., 1:] - ycbcr(photo)[..., 1:]).mean() < 1.5  # RGB rounding only
    assert np.abs(ycbcr(kept)[..., 0] - ycbcr(full)[..., 0]).mean() < 1.5
    assert np.abs(ycbcr(full)[..., 1:] - ycbcr(photo)[..., 1:]).mean() > 3  # the style did change the colours


def test_stroke_scale_runs_the_network_at_another_size_and_returns_the_photos_size(trained_run: TrainedRun) -> None:
    stylizer = stylenet.load(trained_run.checkpoint, device="cpu")
    photo = random_image(40, 56, seed=6)
    coarse = stylize_picture(stylizer, photo, stroke_scale=0.5)
    assert coarse.size == photo.size and coarse.tobytes() != stylize_picture(stylizer, photo).tobytes()


def test_a_glob_input_is_mirrored_into_the_output_folder(trained_run: TrainedRun, tmp_path: Path) -> None:
    for name in ("a/one.png", "a/b/two.png", "a/skip.jpg"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        random_image(20, 24).save(tmp_path / name)
    result = run_entry(
        "infer",
        f"checkpoint={trained_run.checkpoint}",
        f"input={tmp_path / 'a' / '**' / '*.png'}",
        f"output={tmp_path / 'out'}",
        "strength=0.5",
        "preserve_color=true",
        "stroke_scale=2",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert sorted(str(p.relative_to(tmp_path / "out")) for p in (tmp_path / "out").rglob("*.png")) == [
        "b/two.png",
        "one.png",
    ]
    assert Image.open(tmp_path / "out" / "b" / "two.png").size == (24, 20)


@pytest.mark.parametrize(
    "override,message",
    [
        ("strength=1.5", "strength must be between 0 and 1, got 1.5"),
        ("stroke_scale=0", "stroke_scale must be positive, got 0"),
    ],
)
def test_out_of_range_options_are_clear_errors(
    trained_run: TrainedRun, tmp_path: Path, override: str, message: str
) -> None:
    random_image(20, 20).save(tmp_path / "in.png")
    result = run_entry(
        "infer",
        f"checkpoint={trained_run.checkpoint}",
        f"input={tmp_path / 'in.png'}",
        f"output={tmp_path / 'out.png'}",
        override,
        cwd=tmp_path,
    )
    assert result.returncode == 2 and message in result.stderr and not (tmp_path / "out.png").exists()


def test_transparency_is_carried_through_where_the_output_format_keeps_it(
    trained_run: TrainedRun, tmp_path: Path
) -> None:
    picture = random_image(22, 30, seed=8).convert("RGBA")
    alpha = Image.fromarray(np.tile(np.linspace(0, 255, 30, dtype=np.uint8), (22, 1)))
    picture.putalpha(alpha)
    picture.save(tmp_path / "logo.png")
    for output in ("out.png", "out.jpg"):
        result = run_entry(
            "infer",
            f"checkpoint={trained_run.checkpoint}",
            f"input={tmp_path / 'logo.png'}",
            f"output={tmp_path / output}",
            cwd=tmp_path,
        )
        assert result.returncode == 0, result.stderr[-2000:]
    kept = Image.open(tmp_path / "out.png")
    assert kept.mode == "RGBA" and kept.getchannel("A").tobytes() == alpha.tobytes()
    assert Image.open(tmp_path / "out.jpg").mode == "RGB"


def test_a_network_can_be_named_and_an_unknown_name_lists_the_known_ones(
    trained_run: TrainedRun, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "checkpoints").mkdir()
    shutil.copy(trained_run.checkpoint, tmp_path / "checkpoints" / "mine.pt")
    monkeypatch.chdir(tmp_path)
    assert stylenet.load("mine", device="cpu").chosen == "tiny_style"
    with pytest.raises(
        stylenet.common.errors.StylenetError, match=r"checkpoint not found: nosuch \(networks that can be named: .*mine"
    ):
        stylenet.load("nosuch")
    random_image(20, 24).save(tmp_path / "photo.png")
    result = run_entry(
        "infer", "checkpoint=mine", f"input={tmp_path / 'photo.png'}", f"output={tmp_path / 'out.png'}", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert Image.open(tmp_path / "out.png").size == (24, 20)


def test_a_training_snapshot_paints_as_the_network_it_holds(trained_run: TrainedRun, tmp_path: Path) -> None:
    """A run can be looked at while it trains: its snapshots load wherever a network file does."""
    snapshots = sorted((trained_run.run_dir / "checkpoints").glob("step_*.pt"))
    assert [path.name for path in snapshots] == ["step_0000020.pt", "step_0000030.pt"]
    photo = tmp_path / "photo.png"
    random_image(37, 53).save(photo)
    painted = {}
    for label, checkpoint in (("published", trained_run.checkpoint), ("last", snapshots[1]), ("mid", snapshots[0])):
        out = tmp_path / f"{label}.png"
        result = run_entry("infer", f"checkpoint={checkpoint}", f"input={photo}", f"output={out}", cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        painted[label] = np.asarray(Image.open(out), dtype=int)
    assert "is a training snapshot: its network at step 20" in result.stdout + result.stderr
    assert np.array_equal(painted["published"], painted["last"])  # the last snapshot is the published network
    assert np.abs(painted["mid"] - painted["last"]).mean() > 0.5  # and an earlier one is the network of its step
    stylizer = stylenet.load(snapshots[0], backend="torch")
    assert stylizer.name == "tiny_style" and stylizer.summary["snapshot_step"] == 20
