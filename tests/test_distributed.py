"""torchrun with two CPU processes (gloo): the same losses as one process with the same global batch,
only rank 0 writes, a distributed run resumes exactly."""

import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import process_env, random_image, read_scalars, run_entry, write_images

pytestmark = pytest.mark.slow
STEPS = 6


def overrides(root: Path, run_dir: Path, *extra: str) -> list[str]:
    return [
        "model=tiny",
        "loss.pretrained=false",
        "data=folder",
        f"data.root={root / 'photos'}",
        f"style.image={root / 'style.png'}",
        "style.size=64",
        "style.name=ddp",
        "data.image_size=32",
        "data.batch_size=4",
        "data.workers=0",
        f"steps={STEPS}",
        "log_interval=1",
        "preview.interval=3",
        "checkpoint_interval=3",
        "loss.style_layer_norm=auto",
        f"hydra.run.dir={run_dir}",
        f"checkpoint_dir={run_dir.parent / 'published'}",
        *extra,
    ]


def torchrun(root: Path, run_dir: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        "-m",
        "stylenet.train",
        *overrides(root, run_dir, *extra),
    ]
    return subprocess.run(
        command, cwd=run_dir.parent, env=process_env(run_dir.parent), capture_output=True, text=True, timeout=300
    )


def totals(run_dir: Path) -> list[float]:
    return [event.value for event in read_scalars(run_dir).Scalars("loss/total")]


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Eight photos: every epoch is two whole global batches of 4, so no rank drops an epoch's tail."""
    folder = tmp_path_factory.mktemp("ddp")
    write_images(folder / "photos", 8)
    random_image(64, 80, seed=99).save(folder / "style.png")
    return folder


@pytest.fixture(scope="module")
def two_ranks(root: Path) -> Path:
    run_dir = root / "two" / "run"
    run_dir.parent.mkdir()
    result = torchrun(root, run_dir)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "2 ranks, 2 images per rank" in result.stdout + result.stderr
    return run_dir


def test_two_ranks_give_the_losses_of_one_process_with_the_same_global_batch(root: Path, two_ranks: Path) -> None:
    run_dir = root / "one" / "run"
    run_dir.parent.mkdir()
    result = run_entry("train", *overrides(root, run_dir), cwd=run_dir.parent)
    assert result.returncode == 0, result.stderr[-2000:]
    assert totals(two_ranks) == pytest.approx(totals(run_dir), rel=1e-4)
    assert len(totals(two_ranks)) == STEPS


def test_only_rank_zero_writes(two_ranks: Path) -> None:
    assert len(list(two_ranks.rglob("events.out.tfevents.*"))) == 1
    assert sorted(p.name for p in (two_ranks / "checkpoints").iterdir()) == ["step_0000003.pt", "step_0000006.pt"]
    assert sorted(p.name for p in (two_ranks / "previews").iterdir()) == ["step_0000003.png", "step_0000006.png"]
    assert (two_ranks.parent / "published" / "ddp.pt").exists()
    log = (two_ranks / "train.log").read_text()
    assert log.count("run directory:") == 1  # the other rank keeps out of rank 0's log


def test_a_distributed_run_resumes_exactly(root: Path, two_ranks: Path) -> None:
    first, second = root / "resume" / "first", root / "resume" / "second"
    first.parent.mkdir()
    result = torchrun(root, first, "steps=3")
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    result = torchrun(root, second, "resume=auto")
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "resuming from step 3" in result.stdout + result.stderr
    assert totals(second) == pytest.approx(totals(two_ranks)[3:], rel=1e-4)


def test_a_global_batch_that_does_not_divide_between_the_ranks_is_refused(root: Path, tmp_path: Path) -> None:
    result = torchrun(root, tmp_path / "run", "data.batch_size=3")
    assert result.returncode != 0
    assert "data.batch_size=3 is the global batch: it must divide evenly between the 2 ranks" in result.stderr


def test_every_rank_reads_the_precomputed_cache(root: Path, two_ranks: Path) -> None:
    cache = root / "cache"
    made = run_entry(
        "precompute",
        "data=folder",
        f"data.root={root / 'photos'}",
        f"data.cache={cache}",
        "data.image_size=32",
        "loss.pretrained=false",
        "data.workers=0",
        cwd=root,
    )
    assert made.returncode == 0, made.stderr[-2000:]
    run_dir = root / "cached" / "run"
    run_dir.parent.mkdir()
    result = torchrun(root, run_dir, f"data.cache={cache}", "data.root=/nonexistent")
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "no content VGG pass" in result.stdout + result.stderr
    assert totals(run_dir) == pytest.approx(totals(two_ranks), rel=0.01)  # float16 features


def test_two_ranks_train_a_network_of_two_styles_like_one_process(root: Path) -> None:
    random_image(56, 56, seed=7).save(root / "style_b.png")
    styles = [
        "style=multi",
        f"style.images={{first: {root / 'style.png'}, second: {root / 'style_b.png'}}}",
        "style.name=ddp",
        "style.size=64",
    ]
    runs = {}
    for name in ("two_styles_two_ranks", "two_styles_one_process"):
        run_dir = root / name / "run"
        run_dir.parent.mkdir()
        extra = [o for o in overrides(root, run_dir) if not o.startswith("style")] + styles
        if name.endswith("ranks"):
            command = [
                sys.executable,
                "-m",
                "torch.distributed.run",
                "--standalone",
                "--nproc_per_node=2",
                "-m",
                "stylenet.train",
                *extra,
            ]
            result = subprocess.run(
                command,
                cwd=run_dir.parent,
                env=process_env(run_dir.parent),
                capture_output=True,
                text=True,
                timeout=300,
            )
        else:
            result = run_entry("train", *extra, cwd=run_dir.parent)
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
        events = read_scalars(run_dir)
        runs[name] = {
            tag: [event.value for event in events.Scalars(tag)]
            for tag in ("loss/total", "loss/per_style/first", "loss/per_style/second")
        }
    for tag, values in runs["two_styles_one_process"].items():
        assert len(values) == STEPS
        assert runs["two_styles_two_ranks"][tag] == pytest.approx(values, rel=1e-4), tag
