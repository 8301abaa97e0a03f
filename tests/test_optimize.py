"""The Gatys optimisation (`python -m stylenet.optimize`, sweeps with a contact sheet) and the quality
report that places a trained network against it (`python -m stylenet.evaluate`)."""

from pathlib import Path

import pytest
import torch
from PIL import Image

from stylenet.common.images import pil_to_tensor
from stylenet.loss.gatys import optimize_image
from stylenet.loss.perceptual import PerceptualLoss
from stylenet.vgg.encoder import VGGEncoder
from tests.helpers import TrainedRun, random_image, read_scalars, run_entry, write_images


@pytest.fixture(scope="module")
def loss_fn() -> PerceptualLoss:
    torch.manual_seed(0)
    layers = {"relu1_2": 1.0, "relu2_2": 1.0}
    encoder = VGGEncoder("vgg16", ["relu2_2", *layers], pretrained=False)
    return PerceptualLoss(encoder, pil_to_tensor(random_image(40, 40, seed=9)), "relu2_2", layers, 1e5, 1e10, 1e6)


@pytest.mark.parametrize("method,init", [("lbfgs", "content"), ("adam", "content"), ("lbfgs", "noise")])
def test_optimisation_lowers_the_total_loss_within_a_few_iterations(loss_fn, method: str, init: str) -> None:
    content = pil_to_tensor(random_image(32, 32, seed=1)).unsqueeze(0)
    image, history = optimize_image(loss_fn, content, iterations=5, method=method, init=init, progress=False)
    assert len(history) == 6 and image.shape == content.shape
    assert 0 <= image.min() and image.max() <= 1
    assert history[-1]["total"] < 0.7 * history[0]["total"]
    if init == "content":
        assert history[0]["content"] == 0  # it starts from the photo itself


@pytest.mark.slow
def test_optimize_writes_the_result_its_iterations_and_tensorboard(workspace: Path, tmp_path: Path) -> None:
    random_image(40, 48, seed=3).save(tmp_path / "photo.png")
    result = run_entry(
        "optimize",
        f"content={tmp_path / 'photo.png'}",
        "style=custom",
        f"style.image={workspace / 'style.png'}",
        "style.size=64",
        "loss.pretrained=false",
        "iterations=6",
        "image_size=48",
        "save_every=3",
        f"output={tmp_path / 'out.jpg'}",
        f"hydra.run.dir={tmp_path / 'run'}",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert Image.open(tmp_path / "out.jpg").size == (48, 40) == Image.open(tmp_path / "run" / "result.png").size
    assert sorted(p.name for p in (tmp_path / "run" / "iterations").iterdir()) == ["iter_00003.png", "iter_00006.png"]
    events = read_scalars(tmp_path / "run")
    totals = [event.value for event in events.Scalars("loss/total")]
    assert len(totals) == 6 and totals[-1] < totals[0]
    assert [event.step for event in events.Images("result")] == [3, 6]


def test_optimize_measures_the_style_layers_against_its_photo(workspace: Path, tmp_path: Path) -> None:
    """style_layer_norm=photos as training applies it: the photo it starts from scores the style weight
    times the sum of the layer weights (4 layers of 1.0 in loss=vgg16), whatever the painting."""
    random_image(40, 48, seed=3).save(tmp_path / "photo.png")
    result = run_entry(
        "optimize",
        f"content={tmp_path / 'photo.png'}",
        "style=custom",
        f"style.image={workspace / 'style.png'}",
        "style.size=64",
        "loss.pretrained=false",
        "loss.style_layer_norm=photos",
        "loss.style_weight=7",
        "method=adam",
        "lr=1e-6",
        "iterations=1",
        "image_size=48",
        f"output={tmp_path / 'out.jpg'}",
        f"hydra.run.dir={tmp_path / 'run'}",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert read_scalars(tmp_path / "run").Scalars("loss/style")[0].value == pytest.approx(28.0, rel=1e-3)


@pytest.mark.slow
def test_a_sweep_ends_with_a_contact_sheet(workspace: Path, tmp_path: Path) -> None:
    random_image(40, 48, seed=3).save(tmp_path / "photo.png")
    result = run_entry(
        "optimize",
        "-m",
        f"content={tmp_path / 'photo.png'}",
        "style=custom",
        f"style.image={workspace / 'style.png'}",
        "style.size=64",
        "loss.pretrained=false",
        "iterations=2",
        "image_size=48",
        "save_every=0",
        "loss.style_weight=1e9,1e11",
        f"hydra.sweep.dir={tmp_path / 'sweep'}",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    sheet = Image.open(tmp_path / "sweep" / "contact_sheet.png")
    assert sheet.size == (2 * 256, 256 + 18)  # two cells side by side, a label under each
    results = [Image.open(tmp_path / "sweep" / job / "result.png") for job in ("0", "1")]
    assert results[0].tobytes() != results[1].tobytes()


@pytest.mark.slow
def test_quality_report_places_the_network_against_lbfgs(trained_run: TrainedRun, tmp_path: Path) -> None:
    write_images(tmp_path / "heldout", 2)
    result = run_entry(
        "evaluate",
        f"checkpoint={trained_run.checkpoint}",
        f"photos={tmp_path / 'heldout'}",
        "image_size=32",
        "iterations=[2,4,8]",
        "loss.pretrained=false",
        f"output={tmp_path / 'report'}",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    report = (tmp_path / "report" / "report.md").read_text()
    assert report.strip() in result.stdout
    rows = {
        line.split("|")[1].strip(): [float(cell) for cell in line.split("|")[2:7]]
        for line in report.splitlines()
        if line.startswith("| network") or line.startswith("| L-BFGS")
    }
    assert list(rows) == ["network", "L-BFGS 2", "L-BFGS 4", "L-BFGS 8"]
    totals = [rows[f"L-BFGS {n}"][3] for n in (2, 4, 8)]
    assert totals[0] > totals[1] > totals[2]  # more iterations, lower loss
    for content, style, tv, total, seconds in rows.values():
        assert total == pytest.approx(content + style + tv, rel=2e-3) and seconds > 0
    assert "per photo:" in report
    sides = sorted((tmp_path / "report").glob("*.png"))
    assert len(sides) == 2 and Image.open(sides[0]).size == (3 * 32 + 4 * 2, 32 + 2 * 2)


@pytest.mark.slow
@pytest.mark.parametrize(
    "override,message",
    [
        ("checkpoint=missing.pt", "missing.pt"),
        ("iterations=[0]", "iterations must be positive whole numbers"),
    ],
)
def test_evaluate_bad_input_is_a_clear_error(
    trained_run: TrainedRun, tmp_path: Path, override: str, message: str
) -> None:
    write_images(tmp_path / "heldout", 1)
    result = run_entry(
        "evaluate",
        f"checkpoint={trained_run.checkpoint}",
        f"photos={tmp_path / 'heldout'}",
        "loss.pretrained=false",
        override,
        cwd=tmp_path,
    )
    assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr


@pytest.mark.slow
@pytest.mark.parametrize(
    "override,message",
    [
        ("content={tmp}/missing.jpg", "content image: image not found: {tmp}/missing.jpg"),
        ("method=sgd", "method must be one of lbfgs, adam, got 'sgd'"),
        ("init=zeros", "init must be one of content, noise, got 'zeros'"),
        ("iterations=0", "iterations must be a positive whole number, got 0"),
    ],
)
def test_optimize_bad_input_is_a_clear_error(workspace: Path, tmp_path: Path, override: str, message: str) -> None:
    random_image(24, 24).save(tmp_path / "photo.png")
    result = run_entry(
        "optimize",
        f"content={tmp_path / 'photo.png'}",
        "style=custom",
        f"style.image={workspace / 'style.png'}",
        "style.size=32",
        "loss.pretrained=false",
        "iterations=1",
        "image_size=24",
        f"hydra.run.dir={tmp_path / 'run'}",
        override.format(tmp=tmp_path),
        cwd=tmp_path,
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert message.format(tmp=tmp_path) in result.stderr


@pytest.mark.slow
def test_several_networks_share_one_optimisation(trained_run: TrainedRun, tmp_path: Path) -> None:
    write_images(tmp_path / "heldout", 1)
    twin = tmp_path / "twin.pt"
    twin.write_bytes(trained_run.checkpoint.read_bytes())
    result = run_entry(
        "evaluate",
        f"checkpoint=[{trained_run.checkpoint},{twin}]",
        f"photos={tmp_path / 'heldout'}",
        "image_size=32",
        "iterations=[2,4]",
        "loss.pretrained=false",
        f"output={tmp_path / 'report'}",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    report = (tmp_path / "report" / "report.md").read_text()
    rows = {line.split("|")[1].strip(): line.split("|")[2:6] for line in report.splitlines() if line.startswith("| ")}
    assert list(rows)[2:] == ["tiny_style", "twin", "L-BFGS 2", "L-BFGS 4"]
    assert rows["tiny_style"] == rows["twin"]  # the same network scored by the same loss
    assert "Tiny_style's loss" in report and "Twin's loss" in report
    side = next((tmp_path / "report").glob("*.png"))
    assert Image.open(side).size == (4 * 32 + 5 * 2, 32 + 2 * 2)  # photo | two networks | L-BFGS


@pytest.mark.slow
def test_networks_trained_with_other_losses_are_evaluated_apart(trained_run: TrainedRun, tmp_path: Path) -> None:
    write_images(tmp_path / "heldout", 1)
    payload = torch.load(trained_run.checkpoint, weights_only=True)
    payload["summary"]["config"]["loss"]["style_weight"] *= 10
    torch.save(payload, tmp_path / "heavier.pt")
    result = run_entry(
        "evaluate",
        f"checkpoint=[{trained_run.checkpoint},{tmp_path / 'heavier.pt'}]",
        f"photos={tmp_path / 'heldout'}",
        "image_size=32",
        "iterations=[1]",
        "loss.pretrained=false",
        f"output={tmp_path / 'report'}",
        cwd=tmp_path,
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "heavier was trained with another loss than tiny_style" in result.stderr
