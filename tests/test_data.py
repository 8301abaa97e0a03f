import pytest
import torch
from torch.utils.data import DataLoader

from stylenet.common.errors import StylenetError
from stylenet.data.photos import ImageFolder, collate_skipping_unreadable, load_style_image
from tests.helpers import random_image, write_images


def test_folder_is_read_recursively_and_cropped(tmp_path) -> None:
    write_images(tmp_path, 4)
    (tmp_path / "notes.txt").write_text("not an image")
    dataset = ImageFolder(tmp_path, image_size=24)
    assert len(dataset) == 4
    image, problem = dataset[1]
    assert image.shape == (3, 24, 24) and image.dtype == torch.uint8 and problem == ""


def test_photo_size_cuts_random_crops_from_photos_at_that_scale(tmp_path) -> None:
    """data.photo_size: the photo's shorter side scaled to it, an image_size square cut at a random place (the
    scale a real-time network learns to paint at, for the cost of small crops)."""
    random_image(60, 90, seed=1).save(tmp_path / "wide.png")
    dataset = ImageFolder(tmp_path, image_size=16, photo_size=48)
    torch.manual_seed(0)
    crops = [dataset[0][0] for _ in range(6)]
    assert all(crop.shape == (3, 16, 16) for crop in crops)
    assert len({crop.float().sum().item() for crop in crops}) > 1  # not the same square each time
    whole = ImageFolder(tmp_path, image_size=16)[0][0]
    assert not any(torch.equal(crop, whole) for crop in crops)  # a part of the photo, not all of it shrunk


def test_photo_size_is_refused_with_a_cache_and_below_the_crop() -> None:
    from stylenet.data.photos import DataOptions

    with pytest.raises(StylenetError, match="data.photo_size cuts random crops from the photos themselves"):
        DataOptions(root=None, image_size=16, batch_size=2, workers=0, cache="somewhere", photo_size=32)
    with pytest.raises(StylenetError, match="data.photo_size must be 16 or more"):
        DataOptions(root="x", image_size=16, batch_size=2, workers=0, photo_size=8)


def test_corrupt_images_are_dropped_from_batches_and_named(tmp_path) -> None:
    write_images(tmp_path, 3)
    (tmp_path / "broken.png").write_bytes(b"\x89PNG garbage")
    loader = DataLoader(ImageFolder(tmp_path, 16), batch_size=4, collate_fn=collate_skipping_unreadable)
    batch, features, problems = next(iter(loader))
    assert batch.shape == (3, 3, 16, 16) and features is None
    assert len(problems) == 1 and "broken.png" in problems[0]


def test_missing_and_empty_folders_are_clear_errors(tmp_path) -> None:
    with pytest.raises(StylenetError, match="training image folder not found: .*absent"):
        ImageFolder(tmp_path / "absent", 16)
    (tmp_path / "empty").mkdir()
    with pytest.raises(StylenetError, match="no training images in .*empty"):
        ImageFolder(tmp_path / "empty", 16)


def test_style_image_is_scaled_on_its_long_side(tmp_path) -> None:
    random_image(30, 60).save(tmp_path / "style.png")
    style = load_style_image("mine", str(tmp_path / "style.png"), size=40)
    assert style.shape == (3, 20, 40) and 0 <= style.min() and style.max() <= 1


def test_style_without_image_says_how_to_pass_one() -> None:
    with pytest.raises(StylenetError, match="style 'udnie' has no image: pass style.image="):
        load_style_image("udnie", None, 512)


def test_unreachable_style_address_says_how_to_proceed(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("STYLENET_CACHE", str(tmp_path))
    with pytest.raises(StylenetError, match="could not download the 'wave' style image .* pass style.image="):
        load_style_image("wave", "https://example.invalid/styles/wave.jpg", 512)


def test_style_addresses_are_cached_by_the_whole_address(tmp_path, monkeypatch) -> None:
    """Two addresses ending in the same file name are two styles; an address ending in '/' still gets a file."""
    monkeypatch.setenv("STYLENET_CACHE", str(tmp_path))
    served = {
        "https://a.example/art/style.jpg": random_image(20, 30, seed=1),
        "https://b.example/other/style.jpg": random_image(30, 20, seed=2),
        "https://c.example/gallery/": random_image(24, 24, seed=3),
    }
    downloads = []

    def fake_download(address: str, destination: str, progress: bool = True) -> None:
        downloads.append(address)
        served[address].save(destination, format="PNG")

    monkeypatch.setattr(torch.hub, "download_url_to_file", fake_download)
    first, second, folder_like = (load_style_image(name, address, 40) for name, address in zip(("a", "b", "c"), served))
    assert first.shape == (3, 27, 40) and second.shape == (3, 40, 27) and folder_like.shape == (3, 40, 40)
    files = sorted((tmp_path / "styles").iterdir())
    assert len(files) == 3 and all(path.is_file() for path in files)
    assert sum(path.name.endswith("-style.jpg") for path in files) == 2
    assert torch.equal(load_style_image("b", "https://b.example/other/style.jpg", 40), second)
    assert len(downloads) == 3  # the second look-up of an address is served from its own cached file


def test_default_workers_fit_the_machine_without_the_dataloader_warning(tmp_path, monkeypatch) -> None:
    import os
    import warnings

    from stylenet.common.runtime import data_workers
    from stylenet.config.compose import compose_config

    assert compose_config("train", ["data=folder", "data.root=x"]).data.workers == "auto"
    for cores, expected in ((1, 0), (2, 1), (3, 2), (64, 4)):
        monkeypatch.setattr(os, "sched_getaffinity", lambda pid, n=cores: set(range(n)), raising=False)
        assert data_workers("auto") == expected
    monkeypatch.undo()
    write_images(tmp_path, 4)
    loader = DataLoader(
        ImageFolder(tmp_path, 16),
        batch_size=2,
        num_workers=data_workers("auto"),
        collate_fn=collate_skipping_unreadable,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # PyTorch warns when the workers exceed what the machine suggests
        assert sum(len(batch) for batch, _, _ in loader) == 4
    assert data_workers(3) == 3
    with pytest.raises(StylenetError, match="data.workers must be auto or 0 or more, got -1"):
        data_workers(-1)
