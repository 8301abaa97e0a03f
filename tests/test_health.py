"""The training health monitor: each detector on a synthetic failure, silence on healthy runs, and
what a run shows in TensorBoard (health signals, gradient norm, output statistics, HParams)."""

import math
from pathlib import Path

import pytest
import torch

from stylenet.training.health import FAILURES, HealthMonitor, unstylised_threshold
from stylenet.training.monitor import RunLog
from tests.helpers import TrainedRun, after_calls, read_scalars, run_entry, tiny_train_overrides


def colourful(seed: int = 0, size: int = 32) -> torch.Tensor:
    """Photos with every hue, like real ones: textured, saturated, no channel dominating."""
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(2, 3, size, size, generator=generator)


HEALTHY = {
    "content": 900.0,
    "style": 400.0,
    "style/relu1_2": 200.0,
    "style/relu2_2": 200.0,
    "tv": 350.0,
    "total": 1650.0,
}


@pytest.fixture
def monitor(tmp_path: Path):
    run_log = RunLog(tmp_path)
    yield lambda **options: HealthMonitor(
        options.pop("mode", "warn"), run_log, options.pop("steps", 100), colourful(1), colourful(2)[0], **options
    )
    run_log.close()


def names(alarms) -> set[str]:
    return {alarm.name for alarm in alarms}


def test_healthy_outputs_and_losses_raise_nothing(monitor) -> None:
    health = monitor()
    assert health.check(10, colourful(3), HEALTHY) == []
    assert health.check(90, colourful(4), {**HEALTHY, "style": 100.0}) == []


def test_flat_output_is_a_collapse(monitor) -> None:
    alarms = monitor().check(10, torch.full((2, 3, 32, 32), 0.45), HEALTHY)
    assert "collapse" in names(alarms) and all(alarm.step == 10 for alarm in alarms)
    assert "spatial std 0.0000" in next(alarm.message for alarm in alarms if alarm.name == "collapse")


def test_one_colour_output_is_a_colour_cast_not_a_collapse(monitor) -> None:
    red = colourful(5) * 0.2
    red[:, 0] += 0.75
    alarms = names(monitor().check(10, red, HEALTHY))
    assert "colour_cast" in alarms and "collapse" not in alarms


def test_grey_output_of_colourful_inputs_is_a_saturation_collapse(monitor) -> None:
    grey = colourful(6)[:, :1].expand(-1, 3, -1, -1)
    assert names(monitor().check(10, grey, HEALTHY)) == {"saturation_collapse"}


def test_loss_jump_after_resume_is_reported_once(monitor) -> None:
    health = monitor(resumed_total=1000.0)
    assert names(health.check(10, colourful(3), HEALTHY)) == {"resume_jump"}
    assert health.check(11, colourful(3), HEALTHY) == []
    assert monitor(resumed_total=1600.0).check(10, colourful(3), HEALTHY) == []


def pixel_distances(outputs: torch.Tensor, photos: torch.Tensor) -> tuple[float, float]:
    """Stands in for the content term against each output's own photo and against another photo."""
    return float(((outputs - photos) ** 2).mean()), float(((outputs - photos.roll(1, 0)) ** 2).mean())


def test_outputs_about_as_near_another_photo_as_their_own_have_lost_the_content(monitor) -> None:
    """The network that paints the style's texture whatever the photo (BENCHMARKS.md "Health thresholds": 0.98 of
    the way to another photo); a heavily stylised network that keeps its photos stays far nearer its own."""
    health = monitor(content_distances=pixel_distances, steps=1000)
    photos = colourful(1)
    kept = photos * 0.5 + 0.25  # far from its photo in pixels, but nearer it than the other photo
    texture = colourful(9)[:1].expand(2, -1, -1, -1)  # one texture whatever the photo
    assert (
        health.wants_outputs_of_photos
        and not monitor(mode="off", content_distances=pixel_distances).wants_outputs_of_photos
    )
    assert (
        health.check(300, colourful(3), HEALTHY, texture) == []
    )  # early: content is learned after the style's colours
    assert health.check(500, colourful(3), HEALTHY, kept) == []
    alarms = health.check(600, colourful(3), HEALTHY, texture)
    assert names(alarms) == {"content_lost"} and alarms[0].is_failure
    assert "about as near (content term 1.00 of it;" in alarms[0].message
    assert monitor(steps=1000).check(600, colourful(3), HEALTHY, texture) == []  # one preview photo: nothing to compare


def test_an_output_whose_style_loss_stays_near_the_photos_own_is_unstylised(monitor) -> None:
    """The network that returns its photo tinted (the demo networks before 2026-12): style term 0.39-0.55 of
    the photos' own on held-out photos; stylised networks 0.01 (BENCHMARKS.md "Health thresholds")."""
    health = monitor(style_reference=1000.0, steps=1000)
    tinted = {**HEALTHY, "style": 450.0}
    assert health.check(25, colourful(3), tinted) == []  # early: the style is still being learned
    alarms = health.check(500, colourful(3), tinted)
    assert names(alarms) == {"unstylised"} and alarms[0].is_failure
    assert "0.45 of the photos' own (1000" in alarms[0].message
    assert monitor(style_reference=1000.0, steps=1000).check(500, colourful(3), {**HEALTHY, "style": 20.0}) == []


def test_with_layers_measured_against_the_photos_a_stylised_network_stays_farther_from_the_painting(monitor) -> None:
    """style_layer_norm=photos gives the deep layers an equal share: candy's clearly stylised network sat at
    0.29 of the photos' own in training, networks that left the photo almost unchanged at 0.58-0.92."""
    threshold = unstylised_threshold("photos")
    assert unstylised_threshold("none") == unstylised_threshold("auto") < threshold
    stylised, unchanged = {**HEALTHY, "style": 290.0}, {**HEALTHY, "style": 580.0}
    assert monitor(style_reference=1000.0, steps=1000, unstylised=threshold).check(500, colourful(3), stylised) == []
    alarms = monitor(style_reference=1000.0, steps=1000, unstylised=threshold).check(500, colourful(3), unchanged)
    assert names(alarms) == {"unstylised"} and "stylised outputs reach under 0.45" in alarms[0].message


def test_published_recipes_raise_nothing_whatever_their_layers_spread(monitor) -> None:
    """Johnson et al.'s equal layer weights leave per-layer style losses some 10^7 apart on these features (relu1_2
    1.7e4, relu4_3 8e-4 at step 50): a healthy run, which an alarm on the spread used to flag."""
    johnson = {**HEALTHY, "style/relu1_2": 399.0, "style/relu2_2": 1.0, "style/relu3_3": 4e-3, "style/relu4_3": 8e-5}
    assert monitor(steps=1000).check(1, colourful(3), johnson) == []


def test_loss_balance_rules_of_thumb(monitor) -> None:
    health = monitor(steps=1000)
    assert health.check(1, colourful(3), HEALTHY) == []
    dropped = {**HEALTHY, "style": 150.0, "content": 100.0, "tv": 40.0}
    assert health.check(20, colourful(3), dropped) == []  # content below style is normal while style is learned
    starved = {**HEALTHY, "style": 150.0, "content": 2.0, "tv": 1.0}
    assert names(health.check(30, colourful(3), starved)) == {"content_below_style"}
    blurred = {**HEALTHY, "tv": 1000.0}
    assert health.check(400, colourful(3), blurred) == []  # early: TV still falls
    assert names(health.check(600, colourful(3), blurred)) == {"tv_above_content"}
    assert monitor(steps=10).check(10, colourful(3), blurred) == []  # a short run is never "late"
    assert all(name not in FAILURES for name in ("content_below_style", "tv_above_content"))


def test_signals_reach_tensorboard_and_off_measures_only_the_output(tmp_path: Path) -> None:
    run_log = RunLog(tmp_path)
    HealthMonitor("warn", run_log, 10, colourful(1), colourful(2)[0]).check(3, torch.full((2, 3, 8, 8), 0.5), HEALTHY)
    HealthMonitor("off", run_log, 10, colourful(1), colourful(2)[0]).check(4, torch.full((2, 3, 8, 8), 0.5), HEALTHY)
    run_log.close()
    events = read_scalars(tmp_path)
    assert [event.value for event in events.Scalars("health/alarm/collapse")] == [1.0]
    assert [event.value for event in events.Scalars("health/alarm/colour_cast")] == [0.0]
    assert [event.step for event in events.Scalars("output/mean/r")] == [3, 4]
    assert events.Scalars("output/std/g")[0].value == pytest.approx(0.0)


@pytest.mark.slow
def test_healthy_run_is_silent_and_tensorboard_tells_its_story(trained_run: TrainedRun) -> None:
    output = trained_run.result.stdout + trained_run.result.stderr
    assert "health:" not in output and "health alarms" not in output
    events = read_scalars(trained_run.run_dir)
    tags = set(events.Tags()["scalars"])
    assert {
        "train/grad_norm",
        "output/mean/r",
        "output/std/b",
        "health/output_spatial_std",
        "health/content_own_over_other",
        "health/alarm/collapse",
        "final/total",
        "final/images_per_sec",
    } <= tags
    assert all(event.value > 0 for event in events.Scalars("train/grad_norm"))
    hparams = events.PluginTagToContent("hparams")
    assert any("session_start_info" in tag for tag in hparams)
    assert b"content_weight" in b"".join(hparams.values()) and b"final/total" in b"".join(hparams.values())


@pytest.mark.slow
def test_style_layer_norm_auto_balances_the_layers_at_the_first_step(trained_run: TrainedRun) -> None:
    events = read_scalars(trained_run.run_dir)
    first = [events.Scalars(f"loss/style/{layer}")[0] for layer in ("relu1_2", "relu2_2", "relu3_3", "relu4_3")]
    assert all(event.step == 1 for event in first)
    values = [event.value for event in first]
    assert max(values) == pytest.approx(min(values), rel=1e-3)
    payload = torch.load(trained_run.checkpoint, weights_only=True)
    assert len(set(payload["summary"]["style_layer_weights"].values())) == 4  # rescaled, no longer all 1.0


@pytest.mark.slow
def test_nan_weights_stop_training_and_keep_the_last_good_snapshot(
    workspace: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_dir = tmp_path / "run"
    overrides = tiny_train_overrides(workspace, run_dir) + [f"checkpoint_dir={tmp_path / 'published'}"]

    def poison(args: tuple) -> None:  # args: the optimiser of Adam.step(self)
        args[0].param_groups[0]["params"][0].data.fill_(math.nan)

    after_calls(monkeypatch, torch.optim.Adam, "step", 12, poison)
    result = run_entry("train", *overrides, cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "NaN or Inf by step 13" in result.stderr
    assert f"the last good snapshot is {run_dir / 'checkpoints' / 'step_0000010.pt'}" in result.stderr
    snapshot = torch.load(run_dir / "checkpoints" / "step_0000010.pt", weights_only=True)
    assert all(tensor.isfinite().all() for tensor in snapshot["model"].values())
    assert not (tmp_path / "published").exists()


@pytest.mark.slow
def test_health_stop_ends_a_failing_run_with_a_snapshot(workspace: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    # Nothing but total variation at a high learning rate: within steps the network returns one flat colour.
    overrides = tiny_train_overrides(workspace, run_dir) + [
        "health=stop",
        "loss.content_weight=0",
        "loss.style_weight=0",
        "loss.tv_weight=1e4",
        "lr=0.05",
    ]
    result = run_entry("train", *overrides, cwd=tmp_path)
    assert result.returncode == 2 and "health=stop: training stopped at step" in result.stderr
    assert "because of collapse:" in result.stderr or "because of colour_cast:" in result.stderr
    step = int(result.stderr.split("training stopped at step ")[1].split()[0])
    assert (run_dir / "checkpoints" / f"step_{step:07d}.pt").exists() and step < 30


@pytest.mark.slow
def test_a_network_that_learns_to_change_nothing_is_caught(workspace: Path, tmp_path: Path) -> None:
    """Trained with a negligible style weight, the network returns its photos: `unstylised` fires once the run is
    late (step 200 of 200), and the inference file records it."""
    run_dir = tmp_path / "run"
    overrides = [
        override
        for override in tiny_train_overrides(workspace, run_dir, steps=200)
        if not override.startswith(("log_interval=", "preview.interval="))
    ]
    result = run_entry(
        "train", *overrides, "log_interval=50", "preview.interval=200", "loss.style_weight=1e-9", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "health: unstylised at step 200" in result.stdout + result.stderr
    payload = torch.load(tmp_path / "checkpoints" / "tiny_style.pt", weights_only=True)
    assert [alarm.split(" ")[0] for alarm in payload["summary"]["health_alarms"]] == ["unstylised"]


@pytest.mark.slow
def test_style_layer_norm_photos_weighs_the_layers_by_the_photos_own_distance(workspace: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    overrides = [
        override
        for override in tiny_train_overrides(workspace, run_dir, steps=2)
        if not override.startswith("loss.style_layer_norm=")
    ]
    result = run_entry(
        "train", *overrides, "loss.style_layer_norm=photos", f"checkpoint_dir={tmp_path / 'published'}", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "style_layer_norm=photos: style layer weights" in result.stdout + result.stderr
    payload = torch.load(tmp_path / "published" / "tiny_style.pt", weights_only=True)
    assert len(set(payload["summary"]["style_layer_weights"].values())) == 4  # rescaled, no longer all 1.0
