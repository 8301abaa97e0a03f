"""Checkpoints never lose work: exact resume, a crash mid-write, SIGTERM, mismatched configs."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import stylenet.common.atomic
from tests.helpers import Finished, Killed, process_env, read_scalars, run_entry, tiny_train_overrides

pytestmark = pytest.mark.slow
TAGS = ("loss/total", "loss/content", "loss/style", "loss/tv", "loss/style/relu3_3")


def losses_by_step(run_dir: Path) -> dict[int, tuple[float, ...]]:
    events = read_scalars(run_dir)
    series = [{event.step: event.value for event in events.Scalars(tag)} for tag in TAGS]
    return {step: tuple(values[step] for values in series) for step in series[0]}


def train(workspace: Path, run_dir: Path, *extra: str, **env: str) -> Finished:
    overrides = tiny_train_overrides(workspace, run_dir, steps=12) + [
        f"checkpoint_dir={run_dir.parent / 'published'}",
        "checkpoint_interval=4",
        *extra,
    ]
    return run_entry("train", *overrides, cwd=run_dir.parent.parent, **env)


@pytest.fixture(scope="module")
def uninterrupted(workspace: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[int, tuple[float, ...]]:
    run_dir = tmp_path_factory.mktemp("uninterrupted") / "runs" / "full"
    result = train(workspace, run_dir)
    assert result.returncode == 0, result.stderr[-2000:]
    return losses_by_step(run_dir)


def test_stop_and_resume_gives_the_same_losses(workspace: Path, tmp_path: Path, uninterrupted) -> None:
    first, second = tmp_path / "runs" / "first", tmp_path / "runs" / "second"
    assert train(workspace, first, "steps=6").returncode == 0
    result = train(workspace, second, "resume=auto")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "resuming from step 6" in result.stdout + result.stderr
    # Step 6 ends mid-epoch (7 files, batches of 2): the data position must be restored too.
    resumed = {**losses_by_step(first), **losses_by_step(second)}
    assert sorted(losses_by_step(second)) == list(range(7, 13))
    assert resumed == uninterrupted


def test_kill_during_a_checkpoint_write_keeps_the_previous_one(
    workspace: Path, tmp_path: Path, uninterrupted, monkeypatch: pytest.MonkeyPatch
) -> None:
    crashed, second = tmp_path / "runs" / "crashed", tmp_path / "runs" / "second"
    replace = os.replace

    def killed_before_the_rename(source: str, target: str) -> None:
        if Path(target).name == "step_0000008.pt":  # what a kill -9 here leaves: the written temporary file
            os.link(source, Path(source).with_name(".step_0000008.pt.killed.tmp.pt"))
            raise Killed
        replace(source, target)

    with monkeypatch.context() as patch:
        patch.setattr(stylenet.common.atomic.os, "replace", killed_before_the_rename)
        killed = train(workspace, crashed)
    assert killed.returncode == -signal.SIGKILL
    assert [p.name for p in (crashed / "checkpoints").glob("step_*.pt")] == ["step_0000004.pt"]
    assert list((crashed / "checkpoints").glob(".step_0000008.pt.*.tmp.pt")), "the half-done write is left aside"
    result = train(workspace, second, "resume=auto")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "resuming from step 4" in result.stdout + result.stderr
    assert {step: losses for step, losses in losses_by_step(second).items()} == {
        step: losses for step, losses in uninterrupted.items() if step > 4
    }


@pytest.mark.parametrize("group", [False, True], ids=["to_the_main_process", "to_the_process_group"])
def test_sigterm_writes_a_checkpoint_and_exits_zero(workspace: Path, tmp_path: Path, group: bool) -> None:
    """SIGTERM to the whole group (`pkill -f`, a batch scheduler) reaches the DataLoader workers too: they
    must leave the stopping to the main process, which finishes its step and writes its snapshot."""
    run_dir = tmp_path / "runs" / "long"
    overrides = tiny_train_overrides(workspace, run_dir, steps=100000) + [
        f"checkpoint_dir={tmp_path / 'published'}",
        "checkpoint_interval=100000",
        f"data.workers={1 if group else 0}",
    ]
    process = subprocess.Popen(
        [sys.executable, "-m", "stylenet.train", *overrides],
        cwd=tmp_path,
        env=process_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=group,
    )
    deadline = time.monotonic() + 120
    while not (run_dir / "previews").exists() and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.2)
    assert process.poll() is None, process.communicate()[1][-2000:]
    if group:
        os.killpg(process.pid, signal.SIGTERM)
    else:
        process.send_signal(signal.SIGTERM)
    sent = time.monotonic()
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stderr[-2000:]
    assert time.monotonic() - sent < 30
    assert "SIGTERM received" in stdout + stderr and "Continue with resume=auto" in stdout + stderr
    assert len(list((run_dir / "checkpoints").glob("step_*.pt"))) == 1
    assert not (tmp_path / "published").exists(), "a stopped run must not replace the published model"


def test_resuming_another_config_names_the_mismatch(workspace: Path, tmp_path: Path) -> None:
    first = tmp_path / "runs" / "first"
    assert train(workspace, first, "steps=4").returncode == 0
    result = train(
        workspace, tmp_path / "runs" / "other", f"resume={first / 'checkpoints' / 'step_0000004.pt'}", "lr=0.01"
    )
    assert result.returncode == 2
    assert "its run had another config: optimizer.lr: snapshot 0.003, now 0.01" in result.stderr
    assert "Traceback" not in result.stderr
