"""`python -m stylenet.train` as a user runs it, on tiny generated data with random VGG weights."""

from pathlib import Path

import pytest
import torch

from tests.helpers import TrainedRun, read_scalars, run_entry, tiny_train_overrides

pytestmark = pytest.mark.slow


def test_training_lowers_the_loss(trained_run: TrainedRun) -> None:
    totals = [event.value for event in read_scalars(trained_run.run_dir).Scalars("loss/total")]
    assert len(totals) == 30
    assert sum(totals[-5:]) / 5 < 0.7 * sum(totals[:5]) / 5


def test_tensorboard_has_every_documented_tag(trained_run: TrainedRun) -> None:
    events = read_scalars(trained_run.run_dir)
    expected = {
        "loss/total",
        "loss/content",
        "loss/style",
        "loss/tv",
        "train/lr",
        "train/images_per_sec",
        "train/data_wait_share",
    }
    expected |= {f"loss/style/{layer}" for layer in ("relu1_2", "relu2_2", "relu3_3", "relu4_3")}
    assert expected <= set(events.Tags()["scalars"])
    assert [event.value for event in events.Scalars("train/lr")][0] == pytest.approx(3e-3)
    assert all(event.value > 0 for event in events.Scalars("train/images_per_sec"))
    assert [event.step for event in events.Images("preview")] == [10, 20, 30]


def test_run_directory_holds_config_previews_and_last_checkpoints(trained_run: TrainedRun) -> None:
    run_dir = trained_run.run_dir
    assert "tiny_style" in (run_dir / ".hydra" / "config.yaml").read_text()
    assert sorted(p.name for p in (run_dir / "previews").iterdir()) == [f"step_00000{n}0.png" for n in (1, 2, 3)]
    # checkpoint_interval=10 over 30 steps: snapshots at 10, 20 and the last step; keep_checkpoints=2.
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == ["step_0000020.pt", "step_0000030.pt"]
    assert (run_dir / "tiny_style.pt").read_bytes() == trained_run.checkpoint.read_bytes()


def test_inference_file_describes_itself(trained_run: TrainedRun) -> None:
    payload = torch.load(trained_run.checkpoint, weights_only=True)
    assert payload["style"] == "tiny_style" and payload["model_cfg"]["channels"] == [8, 16, 16]
    summary = payload["summary"]
    assert summary["steps"] == 30 and summary["skipped_images"] == 1 and summary["loss_weights"] == "random"
    assert summary["config"]["data"]["image_size"] == 32


def test_corrupt_training_image_is_warned_about_once(trained_run: TrainedRun) -> None:
    output = trained_run.result.stdout + trained_run.result.stderr
    assert output.count("skipped unreadable training image") == 1 and "corrupt.jpg" in output
    assert "1 unreadable training image(s) were skipped" in output
    assert "RANDOMLY INITIALISED" in output


@pytest.mark.parametrize(
    "override,message",
    [
        ("data.root={tmp}/nowhere", "training image folder not found: {tmp}/nowhere"),
        ("style.image={tmp}/no_style.jpg", "image not found: {tmp}/no_style.jpg"),
        ("style.image=null", "style 'tiny_style' has no image: pass style.image="),
        ("data.image_size=0", "data.image_size must be a positive whole number, got 0"),
        ("preview.interval=-5", "preview.interval must be a positive whole number, got -5"),
        ("data.workers=many", "data.workers must be auto or 0 or more, got many"),
        ("data.cache_on_device=true", "data.cache_on_device=true needs data.cache=<folder>"),
        ("precision=fp8", "precision must be one of auto, fp32, bf16, fp16, got 'fp8'"),
        ("precision=fp16", "precision=fp16 is for inference; train in half precision with precision=bf16"),
        (
            "compile=fastest",
            "compile must be true, false or one of default, reduce-overhead, max-autotune, "
            "max-autotune-no-cudagraphs, got 'fastest'",
        ),
        ("health=loud", "health must be one of warn, stop, off, got 'loud'"),
        ("loss.style_layer_norm=maybe", "loss.style_layer_norm must be one of none, auto, photos, got 'maybe'"),
        ("loss.style_term=histogram", "loss.style_term must be one of gram, sliced_wasserstein, got 'histogram'"),
        ("max_minutes=0", "max_minutes must be a positive number of minutes or null, got 0.0"),
        ("model.decoder_upsampling=cubic", "decoder_upsampling must be one of nearest, bilinear, got 'cubic'"),
        ("data.cache={tmp}", "no precomputed cache in {tmp} (no manifest.json)"),
        ("distill.teacher={tmp}/none.pt", "checkpoint not found: {tmp}/none.pt"),
        ("init={tmp}/none.pt", "checkpoint not found: {tmp}/none.pt"),
        ("loss.palette_weight=-1", "loss.palette_weight must be 0 (off) or more, got -1.0"),
        ("loss.palette_patch=0", "loss.palette_patch must be 1 (single pixels) or more, got 0"),
        ("loss.equivariance_weight=-1", "loss.equivariance_weight must be 0 (off) or more, got -1.0"),
        ("loss.weave_weight=-1", "loss.weave_weight must be 0 (off) or more, got -1.0"),
        ("loss.coarse_style_weight=-1", "loss.coarse_style_weight must be 0 (off) or more, got -1.0"),
        ("style.sizes=[]", "style.sizes must list at least one size, or be null (style.size alone)"),
        ("style.sizes=[48,0]", "style.sizes must be a positive whole number, got 0"),
        ("distill.weight=much", "distill.weight: Value 'much' of type 'str' could not be converted to Float"),
        ("data.image_size=big", "data.image_size: Value 'big' of type 'str' could not be converted to Integer"),
        ("loss.colour_weight=1", "loss.colour_weight: Key 'colour_weight' not in 'LossOptions'"),
        ("+loss.colour_weight=1", "loss.colour_weight: no such option"),
        ("model.half_resolution=true", "model.half_resolution was renamed: use model.downsample=2"),
    ],
)
def test_bad_input_is_a_clear_error(workspace: Path, tmp_path: Path, override: str, message: str) -> None:
    overrides = tiny_train_overrides(workspace, tmp_path / "run") + [override.format(tmp=tmp_path)]
    result = run_entry("train", *overrides, cwd=tmp_path)
    assert result.returncode == 2
    assert message.format(tmp=tmp_path) in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_a_painting_at_several_sizes_trains_and_is_recorded_for_evaluation(workspace: Path, tmp_path: Path) -> None:
    overrides = tiny_train_overrides(workspace, tmp_path / "run", steps=4) + ["style.sizes=[24,40]"]
    result = run_entry("train", *overrides, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    checkpoint = tmp_path / "checkpoints" / "tiny_style.pt"
    style = torch.load(checkpoint, weights_only=True)["summary"]["config"]["style"]
    assert style["sizes"] == [24, 40]
    arguments = [f"checkpoint={checkpoint}", f"photos={workspace / 'photos'}", "iterations=[2]", "image_size=32"]
    result = run_entry("evaluate", *arguments, "loss.pretrained=false", f"output={tmp_path}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert (tmp_path / "report.md").is_file()


def test_unavailable_vgg_weights_say_where_to_put_them(workspace: Path, tmp_path: Path) -> None:
    overrides = [o for o in tiny_train_overrides(workspace, tmp_path / "run") if "pretrained" not in o]
    result = run_entry("train", *overrides, cwd=tmp_path)
    assert result.returncode == 2
    assert "could not get the ImageNet vgg16 weights" in result.stderr
    assert str(tmp_path / "torch_home" / "hub" / "checkpoints" / "vgg16-397923af.pth") in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_unknown_variant_lists_the_valid_ones(workspace: Path, tmp_path: Path) -> None:
    result = run_entry("train", *tiny_train_overrides(workspace, tmp_path / "run"), "model=huge", cwd=tmp_path)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert "Could not find 'model/huge'" in result.stderr and "johnson" in result.stderr


@pytest.mark.parametrize("variant", ["johnson", "separable", "resize", "fast", "realtime"])
def test_every_variant_trains(workspace: Path, tmp_path: Path, variant: str) -> None:
    overrides = tiny_train_overrides(workspace, tmp_path / "run", steps=20) + [
        f"model={variant}",
        "model.width_multiplier=0.25",
        "model.num_residual_blocks=1",
        f"checkpoint_dir={tmp_path}",
    ]
    result = run_entry("train", *overrides, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    totals = [event.value for event in read_scalars(tmp_path / "run").Scalars("loss/total")]
    assert sum(totals[-5:]) < 0.8 * sum(totals[:5])
    payload = torch.load(tmp_path / "tiny_style.pt", weights_only=True)
    assert payload["model_cfg"]["width_multiplier"] == 0.25


def test_a_time_limited_sliced_wasserstein_run_with_bilinear_stages_lowers_its_loss_and_publishes(
    workspace: Path, tmp_path: Path
) -> None:
    """loss.style_term=sliced_wasserstein and model.decoder_upsampling=bilinear train; max_minutes ends a run of
    a million steps after a few seconds and publishes it as at its last step."""
    overrides = tiny_train_overrides(workspace, tmp_path / "run", steps=10**6) + [
        "loss.style_term=sliced_wasserstein",
        "loss.style_layer_norm=photos",
        "loss.style_weight=10",
        "model.decoder_upsampling=bilinear",
        "max_minutes=0.25",
        "preview.interval=100000",
        "checkpoint_interval=100000",
        f"checkpoint_dir={tmp_path}",
    ]
    result = run_entry("train", *overrides, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    payload = torch.load(tmp_path / "tiny_style.pt", weights_only=True)
    steps = payload["summary"]["steps"]
    assert 20 <= steps < 10**6 and 14 <= payload["summary"]["seconds"] < 60
    assert payload["summary"]["config"]["loss"]["style_term"] == "sliced_wasserstein"
    assert payload["model_cfg"]["decoder_upsampling"] == "bilinear"
    styles = [event.value for event in read_scalars(tmp_path / "run").Scalars("loss/style")]
    assert len(styles) == steps and sum(styles[-10:]) < 0.7 * sum(styles[:10])


def test_init_starts_from_a_network_files_weights_and_refuses_another_network(
    trained_run: TrainedRun, tmp_path: Path
) -> None:
    """Fine-tuning: at learning rate 0 the published network is the init's, bit for bit, under the palette,
    shift-equivariance, weave and coarse style terms (all logged); another model than the file holds is one line that says which
    options to pass."""
    overrides = tiny_train_overrides(trained_run.root, tmp_path / "run", steps=2) + [
        f"init={trained_run.checkpoint}",
        "lr=0",
        "loss.palette_weight=100",
        "loss.equivariance_weight=100",
        "loss.weave_weight=100",
        "loss.coarse_style_weight=1",
        f"checkpoint_dir={tmp_path}",
    ]
    result = run_entry("train", *overrides, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "starting from the weights of" in result.stderr + result.stdout
    start, end = (
        torch.load(path, weights_only=True)["model"] for path in (trained_run.checkpoint, tmp_path / "tiny_style.pt")
    )
    assert all(torch.equal(start[key], end[key]) for key in start)
    for term in ("palette", "equivariance", "weave", "coarse_style"):
        values = [event.value for event in read_scalars(tmp_path / "run").Scalars(f"loss/{term}")]
        assert len(values) == 2 and values[0] > 0, term
    result = run_entry(
        "train", *overrides[:-1], "model.width_multiplier=0.5", f"checkpoint_dir={tmp_path}/b", cwd=tmp_path
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "is another network than this run builds: pass model.width_multiplier=" in result.stderr


def test_distillation_makes_the_network_draw_the_teachers_pictures(trained_run: TrainedRun, tmp_path: Path) -> None:
    """With the loss's own terms off, a fresh network of another variant learns the teacher's pictures alone."""
    overrides = tiny_train_overrides(trained_run.root, tmp_path / "run", steps=40) + [
        f"distill.teacher={trained_run.checkpoint}",
        "distill.weight=1e3",
        "loss.content_weight=0",
        "loss.style_weight=0",
        "loss.tv_weight=0",
        "loss.style_layer_norm=none",
        "model=realtime",
        "model.width_multiplier=0.25",
        f"checkpoint_dir={tmp_path}",
        "lr=1e-2",
    ]
    result = run_entry("train", *overrides, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "distillation: learning the pictures of" in result.stderr + result.stdout
    distill = [event.value for event in read_scalars(tmp_path / "run").Scalars("loss/distill")]
    assert len(distill) == 40 and sum(distill[-5:]) < 0.3 * sum(distill[:5])
