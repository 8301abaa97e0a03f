"""Every training speed switch gives the results of the plain run within its numeric tolerance (CPU)."""

from pathlib import Path

import pytest

from tests.helpers import TrainedRun, read_scalars, run_entry, tiny_train_overrides

pytestmark = pytest.mark.slow
STEPS = 3


@pytest.mark.parametrize(
    "switches,steps,tolerance",
    [
        # bf16 keeps 8 bits of mantissa: compare the first step, computed from the same weights. After it,
        # Adam turns the rounding of near-zero gradients into full-size steps and the runs part ways.
        (("precision=bf16",), 1, 0.01),
        (("channels_last=true",), STEPS, 1e-4),
        (("+optimizer.fused=true",), STEPS, 1e-4),
    ],
    ids=["bf16", "channels_last", "fused_adam"],
)
def test_switch_gives_the_plain_runs_losses(
    trained_run: TrainedRun, tmp_path: Path, switches: tuple[str, ...], steps: int, tolerance: float
) -> None:
    overrides = tiny_train_overrides(trained_run.root, tmp_path / "run", steps=steps)
    result = run_entry("train", *overrides, *switches, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    plain = [event.value for event in read_scalars(trained_run.run_dir).Scalars("loss/total")][:steps]
    switched = [event.value for event in read_scalars(tmp_path / "run").Scalars("loss/total")]
    assert switched == pytest.approx(plain, rel=tolerance)


def test_compile_gives_the_plain_runs_losses_distillation_included(trained_run: TrainedRun, tmp_path: Path) -> None:
    """compile=true compiles the step's whole loss, the teacher's term included (it once compiled the bare loss).
    One compiled run checks both: compiling costs most of a minute on a CPU."""
    runs = {}
    for name, switches in (("plain", ()), ("compiled", ("compile=true",))):
        overrides = tiny_train_overrides(trained_run.root, tmp_path / name, steps=STEPS)
        result = run_entry(
            "train",
            *overrides,
            f"distill.teacher={trained_run.checkpoint}",
            "distill.weight=1e3",
            *switches,
            cwd=tmp_path,
        )
        assert result.returncode == 0, result.stderr[-3000:]
        events = read_scalars(tmp_path / name)
        runs[name] = {tag: [event.value for event in events.Scalars(tag)] for tag in ("loss/total", "loss/distill")}
    assert len(runs["compiled"]["loss/distill"]) == STEPS and min(runs["compiled"]["loss/distill"]) > 0
    for tag, values in runs["plain"].items():
        assert runs["compiled"][tag] == pytest.approx(values, rel=1e-3), tag
