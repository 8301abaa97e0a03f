import pytest
import torch
from torch.utils.data import DataLoader

from conftest import random_image, write_images
from stylenet.data import ImageFolder, collate_skipping_unreadable, load_style_image
from stylenet.errors import StylenetError


def test_folder_is_read_recursively_and_cropped(tmp_path) -> None:
    write_images(tmp_path, 4)
    (tmp_path / "notes.txt").write_text("not an image")
    dataset = ImageFolder(tmp_path, image_size=24)
    assert len(dataset) == 4
    image, problem = dataset[1]
    assert image.shape == (3, 24, 24) and image.dtype == torch.uint8 and problem == ""


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
