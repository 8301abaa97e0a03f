import numpy as np
import pytest
import torch
from PIL import Image

from stylenet.common.errors import StylenetError
from stylenet.common.images import UnreadableImageError, pil_to_tensor, read_image, save_image, tensor_to_pil


def test_exif_orientation_is_applied(tmp_path) -> None:
    image = Image.new("RGB", (40, 20), (255, 0, 0))
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    image.save(tmp_path / "rotated.jpg", exif=exif)
    assert read_image(tmp_path / "rotated.jpg").size == (20, 40)


@pytest.mark.parametrize("mode", ["L", "CMYK", "RGBA", "P", "I;16", "LA"])
def test_every_mode_becomes_rgb(tmp_path, mode: str) -> None:
    extension = "jpg" if mode == "CMYK" else "png"
    Image.new(mode, (9, 7)).save(tmp_path / f"image.{extension}")
    image = read_image(tmp_path / f"image.{extension}")
    assert image.mode == "RGB" and image.size == (9, 7)


def test_sixteen_bit_is_scaled_not_clipped(tmp_path) -> None:
    Image.fromarray(np.full((4, 4), 32768, dtype=np.uint16)).save(tmp_path / "deep.png")
    assert np.asarray(read_image(tmp_path / "deep.png"))[0, 0, 0] == 128


def test_transparent_pixels_become_white(tmp_path) -> None:
    Image.new("RGBA", (3, 3), (0, 0, 0, 0)).save(tmp_path / "clear.png")
    assert np.asarray(read_image(tmp_path / "clear.png")).min() == 255


def test_truncated_file_is_reported_by_name(tmp_path) -> None:
    Image.new("RGB", (64, 64), (10, 200, 30)).save(tmp_path / "whole.jpg")
    (tmp_path / "cut.jpg").write_bytes((tmp_path / "whole.jpg").read_bytes()[:300])
    with pytest.raises(UnreadableImageError, match="cut.jpg"):
        read_image(tmp_path / "cut.jpg")


def test_tensor_round_trip_and_atomic_save(tmp_path) -> None:
    array = np.random.default_rng(0).integers(0, 256, (5, 6, 3), dtype=np.uint8)
    tensor = pil_to_tensor(Image.fromarray(array))
    assert tensor.shape == (3, 5, 6) and tensor.dtype == torch.float32
    save_image(tensor, tmp_path / "out" / "round.png")
    assert np.array_equal(np.asarray(Image.open(tmp_path / "out" / "round.png")), array)
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["round.png"]
    assert np.array_equal(np.asarray(tensor_to_pil(tensor.unsqueeze(0))), array)


def test_unknown_output_extension_is_refused(tmp_path) -> None:
    with pytest.raises(StylenetError, match="unsupported output extension '.txt'"):
        save_image(torch.rand(3, 4, 4), tmp_path / "out.txt")


def test_image_grid_lays_images_out_as_torchvision_does() -> None:
    import torch
    from torchvision.utils import make_grid

    from stylenet.common.images import image_grid

    for count, columns in [(2, 2), (6, 3), (5, 2), (3, 5)]:
        images = torch.rand(count, 3, 7, 9)
        assert torch.equal(image_grid(images, columns), make_grid(images, nrow=columns, padding=2, pad_value=1.0))
