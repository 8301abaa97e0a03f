"""The benchmark and evaluation scripts run in a smoke mode, so that they cannot rot."""

from pathlib import Path

import pytest
import torch

from tests.helpers import Finished, random_image, write_images
from tests.helpers import run_script as run_in_process

pytestmark = pytest.mark.slow
SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


def run_script(name: str, *arguments: str, cwd: Path) -> Finished:
    return run_in_process(SCRIPTS / name, *arguments, cwd=cwd)


SHELF = sorted(path.name for path in SCRIPTS.glob("*.py") if path.name != "shelf.py")


@pytest.mark.parametrize("name", SHELF)
def test_every_script_imports_and_explains_itself(name: str, tmp_path: Path) -> None:
    """Every script on the shelf starts and prints its usage (its imports and options are sound); the tests
    below run most of them on tiny inputs too."""
    result = run_script(name, "--help", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "usage:" in result.stdout


def test_make_crops_sheet_and_its_errors(tmp_path: Path) -> None:
    from PIL import Image

    photos = write_images(tmp_path / "photos", 2, size=(40, 60))
    pictures = tmp_path / "pictures"
    pictures.mkdir()
    for photo in photos:  # "another tool's pictures": plain red, named like the photos
        Image.new("RGB", (30, 20), "red").save(pictures / f"{photo.stem}.png")
    arguments = ["--photos", *map(str, photos), "--frame", "64x48", "--box", "0,0,32,24"]
    result = run_script("make_crops.py", *arguments, "--methods", f"red={pictures}", "--out", "s.png", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    sheet = Image.open(tmp_path / "s.png").convert("RGB")
    assert sheet.width == 2 * 36 and sheet.getpixel((36 + 18, 12)) == (255, 0, 0)  # photo | red, a row per photo
    (pictures / f"{photos[1].stem}.png").unlink()
    result = run_script("make_crops.py", *arguments, "--methods", f"red={pictures}", "--out", "t.png", cwd=tmp_path)
    assert result.returncode == 2 and f"holds no picture named {photos[1].stem}" in result.stderr
    arguments[-1] = "0,0,32"
    result = run_script("make_crops.py", *arguments, "--methods", f"red={pictures}", "--out", "t.png", cwd=tmp_path)
    assert result.returncode == 2 and "--box is left,top,right,bottom" in result.stderr
    assert not (tmp_path / "t.png").exists()


def test_bench_inference_smoke(tmp_path: Path) -> None:
    result = run_script(
        "bench_inference.py", "--smoke", "--ablation", "--device", "cpu", "--threads", "1", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    rows = [line for line in result.stdout.splitlines() if line.startswith("| ")]
    assert [row.split("|")[1].strip() for row in rows[2:6]] == ["johnson", "separable", "resize", "fast"]
    assert "1 threads" in result.stdout and "(1.0x)" in rows[2]
    assert any("fused upsampling, inference_mode (what stylenet runs)" in row for row in rows)


def test_bench_inference_smoke_onnxruntime(tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime", reason="the onnx extra is not installed")
    result = run_script(
        "bench_inference.py", "--smoke", "--onnxruntime", "--variants", "tiny", "--device", "cpu", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    row = next(
        line
        for line in result.stdout.splitlines()
        if line.startswith("| tiny | 40x24 | ") and "x |" in line and "onnxruntime" not in line and line.count("|") == 6
    )
    assert row.split("|")[3].strip().endswith(" ms") and row.split("|")[5].strip().endswith("x")


def test_bench_video_smoke(tmp_path: Path) -> None:
    pytest.importorskip("av", reason="the video extra is not installed")
    result = run_script("bench_video.py", "--smoke", "--device", "cpu", "--smoothing", "0", "0.8", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    rows = [line.split("|") for line in result.stdout.splitlines() if line.startswith("| 0")]
    assert [row[1].strip() for row in rows] == ["0", "0.8"] and all(row[2].strip() == "6" for row in rows)
    assert float(rows[1][4]) < float(rows[0][4])  # smoothing a still, noisy shot steadies it


def test_bench_video_pipeline_and_memory_smoke(tmp_path: Path) -> None:
    pytest.importorskip("av", reason="the video extra is not installed")
    result = run_script("bench_video.py", "--smoke", "--device", "cpu", "--pipeline", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "| pipelined (threads) | 6 |" in result.stdout and "pipelined / sequential (best of each):" in result.stdout
    result = run_script("bench_video.py", "--memory", "8", "16", "--memory-size", "64x48", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    rows = [
        line.split("|") for line in result.stdout.splitlines() if line.startswith("| 8 ") or line.startswith("| 16 ")
    ]
    assert [row[1].strip() for row in rows] == ["8", "16"] and all(row[3].strip().endswith(" MB") for row in rows)


def test_bench_inference_smoke_compiled(tmp_path: Path) -> None:
    result = run_script(
        "bench_inference.py", "--smoke", "--compile", "--variants", "fast", "--device", "cpu", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    header = next(line for line in result.stdout.splitlines() if line.startswith("| variant"))
    assert "fp32, compiled" in header and " fps " in result.stdout


def test_bench_training_smoke(tmp_path: Path) -> None:
    result = run_script("bench_training.py", "--smoke", "--device", "cpu", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    rows = [line.split("|") for line in result.stdout.splitlines() if line.startswith("| ")]
    data_rows = [row for row in rows if len(row) == 9 and row[2].strip() == "0"]
    assert [row[1].strip() for row in data_rows] == ["folder", "cache", "cache, images only"]
    assert all(row[6].strip() == "n/a" for row in data_rows)  # the GPU busy share is measured on CUDA only
    assert any("content VGG pass, no grad, to relu2_2" in row[1] for row in rows)
    assert "images/s with features (65.5 KB of features per image)" in result.stdout  # 128 x 16 x 16 float16


def test_eval_quality_smoke(tmp_path: Path) -> None:
    write_images(tmp_path / "train", 4)
    write_images(tmp_path / "heldout", 2)
    random_image(48, 48, seed=5).save(tmp_path / "style.png")
    arguments = [
        "--train-root",
        str(tmp_path / "train"),
        "--heldout-root",
        str(tmp_path / "heldout"),
        "--style-image",
        str(tmp_path / "style.png"),
        "--steps",
        "2",
        "--image-size",
        "32",
        "--eval-size",
        "32",
        "--style-size",
        "48",
        "--batch-size",
        "2",
        "--workers",
        "0",
        "--workdir",
        str(tmp_path / "w"),
        "--speed-size",
        "64",
        "loss.pretrained=false",
        "model.width_multiplier=0.25",
    ]
    result = run_script("eval_quality.py", *arguments, "--variants", "johnson", "fast", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    rows = [
        line.split("|")
        for line in result.stdout.splitlines()
        if line.startswith("| johnson") or line.startswith("| fast")
    ]
    assert [row[1].strip() for row in rows] == ["johnson", "fast"]
    assert rows[0][7].strip() == "1.000" and float(rows[1][7]) > 0  # total vs first
    assert rows[0][9].strip() == "1.00x" and float(rows[1][8]) > 0  # latency in ms, speed vs first
    assert "2 held-out photos at 32 px" in result.stdout and "loss weights: random" in result.stdout
    trained = [row[1:8] for row in rows]  # variant, training s, content, style, tv, total, total vs first
    scored = run_script("eval_quality.py", *arguments, "--variants", "johnson", "fast", "--score-only", cwd=tmp_path)
    assert scored.returncode == 0 and "steps) ..." not in scored.stdout, scored.stderr  # nothing trained again
    assert [
        row.split("|")[1:8] for row in scored.stdout.splitlines() if row.startswith(("| johnson", "| fast"))
    ] == trained
    missing = run_script("eval_quality.py", *arguments, "--variants", "resize", "--score-only", cwd=tmp_path)
    assert missing.returncode == 2 and "Traceback" not in missing.stderr and "| variant" not in missing.stdout
    assert (
        f"--score-only: no trained resize network at {tmp_path / 'w' / 'checkpoints' / 'resize.pt'}" in missing.stderr
    )


@pytest.mark.parametrize(
    "arguments,message",
    [
        (["--sizes", "1920by1080"], "sizes must look like 1920x1080 (width x height), got '1920by1080'"),
        (["--device", "cuda"], "--device cuda but no CUDA device is available"),
    ],
)
def test_bench_inference_bad_arguments(tmp_path: Path, arguments: list[str], message: str) -> None:
    if "cuda" in arguments and torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    result = run_script("bench_inference.py", *arguments, cwd=tmp_path)
    assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize(
    "arguments,message",
    [
        (["--images", "nowhere"], "--images nowhere is not a folder"),
        (["loss.content_layer=relu9_9"], "unknown vgg16 layer(s) relu9_9"),
        (["loss=vgg99"], "Could not find 'loss/vgg99'"),
    ],
)
def test_bench_training_bad_arguments(tmp_path: Path, arguments: list[str], message: str) -> None:
    result = run_script("bench_training.py", "--smoke", "--device", "cpu", *arguments, cwd=tmp_path)
    assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr


def test_eval_quality_reports_a_failed_training(tmp_path: Path) -> None:
    random_image(48, 48).save(tmp_path / "style.png")
    result = run_script(
        "eval_quality.py",
        "--train-root",
        str(tmp_path / "missing"),
        "--heldout-root",
        str(tmp_path),
        "--style-image",
        str(tmp_path / "style.png"),
        "--variants",
        "tiny",
        "--workdir",
        str(tmp_path / "w"),
        "loss.pretrained=false",
        cwd=tmp_path,
    )
    assert result.returncode == 2 and "training tiny failed" in result.stderr
    assert f"training image folder not found: {tmp_path / 'missing'}" in result.stderr


def test_bench_add_style_smoke(tmp_path: Path) -> None:
    write_images(tmp_path / "photos", 4)
    for name, seed in (("a", 1), ("b", 2), ("c", 3)):
        random_image(40, 48, seed=seed).save(tmp_path / f"{name}.png")
    result = run_script(
        "bench_add_style.py",
        "--train-root",
        "photos",
        "--heldout-root",
        "photos",
        "--base-styles",
        "a.png",
        "b.png",
        "--new-style",
        "c.png",
        "--base-steps",
        "4",
        "--steps",
        "4",
        "--eval-every",
        "2",
        "--model",
        "tiny",
        "--image-size",
        "32",
        "--eval-size",
        "32",
        "--style-size",
        "48",
        "--batch-size",
        "2",
        "--workers",
        "0",
        "--workdir",
        "work",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    rows = [line.split("|")[1:-1] for line in result.stdout.splitlines() if line.startswith("| ") and "---" not in line]
    assert [row[0].strip() for row in rows[1:]] == ["2", "4"] and all(
        float(cell) > 0 for row in rows[1:] for cell in row[1:]
    )
    assert "VGG16 weights random" in result.stdout and result.stdout.count("final held-out style loss") == 2
    assert torch.load(tmp_path / "work" / "checkpoints" / "base+new.pt", weights_only=True)["styles"] == [
        "base0",
        "base1",
        "new",
    ]


def test_bench_inference_smoke_several_styles(tmp_path: Path) -> None:
    result = run_script(
        "bench_inference.py", "--smoke", "--variants", "tiny", "--styles", "1", "3", "--device", "cpu", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    rows = [line.split("|")[1].strip() for line in result.stdout.splitlines() if line.startswith("| tiny")]
    assert rows == ["tiny", "tiny, 3 styles"]


def test_make_gallery_writes_a_sheet_per_style(trained_run, tmp_path: Path) -> None:
    random_image(30, 40, seed=4).save(tmp_path / "photo.png")
    result = run_script(
        "make_gallery.py",
        "--styles",
        "tiny_style",
        "--networks",
        f"tiny={trained_run.checkpoint.parent / '{style}.pt'}",
        "--photos",
        str(tmp_path / "photo.png"),
        "--size",
        "32",
        "--iterations",
        "2",
        "--cell",
        "40",
        "--out",
        str(tmp_path / "gallery"),
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    from PIL import Image

    assert Image.open(tmp_path / "gallery" / "tiny_style.jpg").size == (3 * 40, 40 + 18)  # photo | tiny | Gatys
    assert "| tiny_style | photo.png | " in result.stdout


def test_bench_cpu_levers_smoke(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("onnxruntime", reason="the onnx extra is not installed")
    monkeypatch.setenv("STYLENET_CACHE", str(tmp_path / "cache"))
    result = run_script("bench_cpu_levers.py", "--no-compile", "--sizes", "64x48", "--repeats", "1", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    rows = [
        line.split("|")
        for line in result.stdout.splitlines()
        if line.startswith("| onnxruntime") or line.startswith("| PyTorch")
    ]
    assert rows[0][1].strip() == "onnxruntime, its own thread choice (the default path)" and "(1.00x)" in rows[0][2]
    assert any("channels_last" in row[1] for row in rows) and all(row[2].strip().endswith("x)") for row in rows)


def test_gpu_run_dry_run_brings_back_figures_and_networks(tmp_path: Path) -> None:
    """The GPU session's one call, on this CPU at toy sizes: every part runs and writes what it would bring back
    (figures, the recipes' network files at half size in archives, at most 8 files), and --unpack makes them
    network files that load, so that the script cannot rot between the days a GPU is lent."""
    import json

    import stylenet

    out = tmp_path / "out"
    result = run_script("gpu_run.py", "--dry-run", "--out", str(out), "--budget", "240", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads((out / "parts.json").read_text())["failed"] == []
    figures = (out / "figures.md").read_text()
    for heading in ("## setup", "## Training throughput", "## Inference at 64x48", "## Recipes trained at once"):
        assert heading in figures
    assert "error" not in figures and "ran past" not in figures, figures
    brought = [path for path in out.rglob("*") if path.is_file() and not path.is_relative_to(out / "photos")]
    assert len([path for path in brought if not path.is_relative_to(out / "styles")]) <= 8
    result = run_script("gpu_run.py", "--out", str(out), "--unpack", str(tmp_path / "networks"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    for name in ("r_eight", "r_eight_eq", "r_eight_wv"):
        network = torch.load(tmp_path / "networks" / f"{name}.pt", weights_only=True)
        assert all(value.dtype == torch.float32 for value in network["model"].values() if value.is_floating_point())
        assert stylenet.load(f"{tmp_path / 'networks' / name}.pt@mosaic", backend="torch") is not None
        assert len(network["styles"]) == 8, "all eight zoo styles in one network"
    assert (tmp_path / "networks" / "r_eight_eq.log").is_file()
    recorded = torch.load(tmp_path / "networks" / "r_eight_eq.pt", weights_only=True)["summary"]["config"]["loss"]
    assert recorded["equivariance_weight"] == 5e4
    recorded = torch.load(tmp_path / "networks" / "r_eight_wv.pt", weights_only=True)["summary"]["config"]["loss"]
    assert (recorded["equivariance_weight"], recorded["weave_weight"]) == (5e4, 5e3)


def test_gpu_run_prepare_names_a_missing_folder(tmp_path: Path) -> None:
    result = run_script("gpu_run.py", "--prepare", "--photos", str(tmp_path / "none"), cwd=tmp_path)
    assert result.returncode == 2
    assert "none is not a folder" in result.stderr


def test_gpu_run_names_an_unknown_part(tmp_path: Path) -> None:
    result = run_script("gpu_run.py", "--dry-run", "--parts", "setup,tea", "--out", str(tmp_path), cwd=tmp_path)
    assert result.returncode == 2
    assert "no part tea" in result.stderr


def test_bench_lattice_finds_a_4_px_grid_and_runs_a_network(trained_run, tmp_path: Path) -> None:
    import importlib.util

    import numpy as np

    spec = importlib.util.spec_from_file_location("bench_lattice", SCRIPTS / "bench_lattice.py")
    assert spec is not None and spec.loader is not None
    lattice = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(lattice)
    noise = np.random.default_rng(0).normal(size=(96, 160))
    grid = np.cos(2 * np.pi * np.arange(160) / 4)[None, :].repeat(96, 0)  # vertical lines every 4 px
    on, total, area, peaks = lattice.lattice_energy(noise + 5 * grid)
    assert on / total > 0.5 and area < 0.05 and peaks[0] == (0.0, 2.0)
    on, total, _, _ = lattice.lattice_energy(noise)
    assert on / total < 3 * area  # noise: about the lattice's share of the band's area
    write_images(tmp_path / "frames", 2, size=(48, 32))
    arguments = [
        "--frames",
        str(tmp_path / "frames"),
        "--networks",
        str(trained_run.checkpoint),
        "--pictures",
        str(tmp_path / "frames"),
        "--working-size",
        "40",
    ]
    result = run_script("bench_lattice.py", *arguments, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"| {trained_run.checkpoint} | [(" in result.stdout and f"| {tmp_path / 'frames'} | [(" in result.stdout
    result = run_script("bench_lattice.py", "--frames", str(tmp_path / "none"), "--networks", "x", cwd=tmp_path)
    assert result.returncode == 2 and f"no images in {tmp_path / 'none'}: pass a folder of images" in result.stderr
    result = run_script("bench_lattice.py", "--frames", str(tmp_path / "frames"), cwd=tmp_path)
    assert result.returncode == 2 and "nothing to measure: pass --networks, --pictures or both" in result.stderr
    result = run_script("bench_lattice.py", "--pictures", str(tmp_path / "frames"), cwd=tmp_path)  # no frames needed
    assert result.returncode == 0 and f"| {tmp_path / 'frames'} | [(" in result.stdout, result.stderr[-2000:]
    result = run_script("bench_lattice.py", "--networks", str(trained_run.checkpoint), cwd=tmp_path)
    assert result.returncode == 2 and "--networks paint the frames: pass --frames" in result.stderr


def test_bench_response_paints_the_faint_inputs_and_reads_another_tools_answers(trained_run, tmp_path: Path) -> None:
    from PIL import Image

    out = tmp_path / "response"
    arguments = ["--out", str(out), "--networks", str(trained_run.checkpoint), "--pictures", str(out / "inputs")]
    result = run_script("bench_response.py", "--out", str(out), cwd=tmp_path)  # the inputs alone, for another tool
    assert result.returncode == 0 and "wrote the inputs" in result.stdout, result.stderr[-2000:]
    ramp = Image.open(out / "inputs" / "ramp.png").convert("L")
    assert ramp.size == (384, 256) and ramp.getpixel((10, 128)) < ramp.getpixel((373, 128))
    result = run_script("bench_response.py", *arguments, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    rows = {line.split(" | ")[0].strip("| "): line for line in result.stdout.splitlines() if line.startswith("| ")}
    assert str(trained_run.checkpoint) in rows
    # The inputs as answers: the flat field has no contrast and so no grain; the ramp has contrast.
    flat, _, ramp_cell, _ = rows[str(out / "inputs")].strip("| ").split(" | ")[1:]
    assert flat == "nan / 0.0" and float(ramp_cell.split(" / ")[1]) > 5
    assert Image.open(out / "response.png").size == (4 * (384 + 4), 2 * (384 + 4 + 18))  # 4 inputs, 2 methods
    result = run_script("bench_response.py", "--out", str(out), "--pictures", str(tmp_path / "nowhere"), cwd=tmp_path)
    assert result.returncode == 2 and f"{tmp_path / 'nowhere'} lacks flat.png" in result.stderr


def test_bench_content_kept_measures_a_network_against_its_photos(
    trained_run, real_vgg_weights, tmp_path: Path
) -> None:
    write_images(tmp_path / "photos", 3)
    result = run_script(
        "bench_content_kept.py",
        "--photos",
        str(tmp_path / "photos"),
        "--size",
        "48",
        "--networks",
        str(trained_run.checkpoint),
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    row = next(line for line in result.stdout.splitlines() if line.startswith(f"| {trained_run.checkpoint} |"))
    own_over_other, own_over_unrelated = (float(cell) for cell in row.split("|")[2:4])
    assert 0 < own_over_other < 1.5 and own_over_unrelated > 0
