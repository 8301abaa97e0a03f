"""Large images in tiles and same-size images in batches, through the Python API and `python -m stylenet.infer`."""

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import stylenet
from stylenet.inference.stylizer import PictureOptions, TorchStylizer, stylize_pictures
from stylenet.inference.tiling import stylize_in_tiles, tile_spans
from stylenet.nets.transformer import InstanceNorm, TransformerNet
from tests.helpers import TrainedRun, random_image, run_entry

pytestmark = pytest.mark.slow


def smooth_image(height: int, width: int, seed: int = 0) -> torch.Tensor:
    coarse = torch.rand(1, 3, 6, 8, generator=torch.Generator().manual_seed(seed))
    return torch.nn.functional.interpolate(coarse, size=(height, width), mode="bicubic").clamp(0, 1)


def test_tile_spans_cover_the_length_on_the_networks_grid() -> None:
    spans = tile_spans(403, 160, 64, multiple=8)
    assert spans[0][0] == 0 and spans[-1][1] == 403
    assert all(start % 8 == 0 for start, _ in spans)
    assert all(end - next_start >= 64 for (_, end), (next_start, _) in zip(spans, spans[1:]))
    assert tile_spans(100, 160, 64, multiple=8) == [(0, 100)]


@pytest.mark.parametrize(
    "variant,tile,overlap",
    [
        (dict(channels=(8, 16, 16), num_residual_blocks=1), 128, 64),
        # at half resolution the receptive field is twice as wide, and so must be the overlap
        (dict(channels=(8, 16, 16), num_residual_blocks=1, downsample=2, separable=True, detail_skip=True), 200, 100),
        (dict(channels=(8, 16, 16), num_residual_blocks=1, num_styles=2), 128, 64),
    ],
    ids=["johnson-like", "fast-like", "two-styles-blended"],
)
def test_tiles_with_the_whole_images_statistics_equal_the_whole_image(variant: dict, tile: int, overlap: int) -> None:
    torch.manual_seed(0)
    model = TransformerNet(**variant)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(0.05 * torch.randn_like(parameter))  # norms that do something
    blend = torch.tensor([0.3, 0.7]) if model.num_styles > 1 else None
    stylizer = TorchStylizer(
        model, torch.device("cpu"), "test", {}, styles=["a", "b"][: model.num_styles], weights=blend
    )
    image = smooth_image(250, 330)
    whole = stylizer.run(image)
    with torch.inference_mode():
        tiled = stylize_in_tiles(stylizer.run, model, image, tile, overlap)
    assert tiled.shape == whole.shape
    assert (tiled - whole).abs().max() < 0.02 and (tiled - whole).abs().mean() < 1e-3
    assert all(
        norm.statistics is None for norm in model.modules() if isinstance(norm, InstanceNorm)
    )  # the network is left as it was


def test_tiles_share_the_whole_images_statistics_instead_of_their_own(trained_run: TrainedRun) -> None:
    stylizer = stylenet.load(trained_run.checkpoint, device="cpu")
    photo = random_image(150, 200, seed=3)
    whole = np.asarray(stylize_pictures(stylizer, [photo])[0], dtype=float)
    tiled = np.asarray(
        stylize_pictures(stylizer, [photo], PictureOptions(tile_size=64, tile_overlap=32))[0], dtype=float
    )
    image = torch.from_numpy(np.asarray(photo, dtype=np.float32) / 255).permute(2, 0, 1).unsqueeze(0)
    naive = torch.zeros_like(image)
    for top, bottom in tile_spans(150, 64, 0, 4):
        for left, right in tile_spans(200, 64, 0, 4):
            # each tile normalised with its own statistics: what cutting and pasting would give
            naive[..., top:bottom, left:right] = stylizer.run(image[..., top:bottom, left:right])
    naive_error = np.abs(naive[0].permute(1, 2, 0).numpy() * 255 - whole).mean()
    assert tiled.shape == whole.shape
    assert np.abs(tiled - whole).mean() < naive_error / 2


def test_a_large_image_is_stylised_in_tiles_by_the_entry_point(trained_run: TrainedRun, tmp_path: Path) -> None:
    random_image(150, 200, seed=3).save(tmp_path / "big.png")
    result = run_entry(
        "infer",
        f"checkpoint={trained_run.checkpoint}",
        f"input={tmp_path / 'big.png'}",
        f"output={tmp_path / 'tiled.png'}",
        "tile_size=64",
        "tile_overlap=32",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    stylizer = stylenet.load(trained_run.checkpoint, device="cpu")
    expected = stylize_pictures(
        stylizer, [Image.open(tmp_path / "big.png")], PictureOptions(tile_size=64, tile_overlap=32)
    )
    assert Image.open(tmp_path / "tiled.png").tobytes() == expected[0].tobytes()


def test_bad_settings_are_clear_errors(trained_run: TrainedRun, tmp_path: Path) -> None:
    random_image(90, 90).save(tmp_path / "in.png")
    for override, message in [
        ("tile_overlap=40", "tile_overlap must be between 0 and half of tile_size (64), got 40"),
        ("tile_size=8", "tile_size must be at least 32 pixels (or null), got 8"),
        ("backend=tensorrt", "backend must be one of auto, torch, onnxruntime, got 'tensorrt'"),
        ("tile_size=big", "tile_size: Value 'big' of type 'str' could not be converted to Integer"),
        ("strength=lots", "strength: Value 'lots' of type 'str' could not be converted to Float"),
        ("preserve_color=maybe", "preserve_color: Value 'maybe' is not a valid bool"),
        ("overwrite=maybe", "overwrite: Value 'maybe' is not a valid bool"),
        ("max_size=big", "max_size: Value 'big' of type 'str' could not be converted to Integer"),
    ]:
        result = run_entry(
            "infer",
            f"checkpoint={trained_run.checkpoint}",
            f"input={tmp_path / 'in.png'}",
            f"output={tmp_path / 'out.png'}",
            "tile_size=64",
            override,
            cwd=tmp_path,
        )
        assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr


def test_same_size_images_share_one_network_call(trained_run: TrainedRun) -> None:
    stylizer = stylenet.load(trained_run.checkpoint, device="cpu")
    photos = [random_image(30, 40, seed=i) for i in range(3)] + [random_image(24, 24, seed=9)]
    one_by_one = [stylize_pictures(stylizer, [photo])[0] for photo in photos]
    batch_sizes = []
    paint = stylizer.paint
    stylizer.paint = lambda batch: batch_sizes.append(len(batch)) or paint(batch)  # type: ignore[method-assign]
    together = stylize_pictures(stylizer, photos)
    assert sorted(batch_sizes) == [1, 3]
    for single, batched in zip(one_by_one, together):
        assert np.abs(np.asarray(single, dtype=int) - np.asarray(batched, dtype=int)).max() <= 1


def test_a_network_with_a_working_size_paints_larger_pictures_at_that_size() -> None:
    """working_size: the longer side is scaled to it before the network and the picture scaled back, on every
    path (tensor batches, PIL pictures, stroke_scale on top); smaller pictures go through as they are."""
    model = TransformerNet(channels=(8, 16, 16), num_residual_blocks=1, working_size=32)
    seen: list[tuple[int, int]] = []
    model.register_forward_pre_hook(lambda module, args: seen.append(tuple(args[0].shape[-2:])))
    stylizer = TorchStylizer(model, torch.device("cpu"), "w", {})
    assert stylizer(smooth_image(48, 64)).shape == (1, 3, 48, 64)
    assert stylizer(smooth_image(20, 24)).shape == (1, 3, 20, 24)
    picture = stylizer(Image.fromarray((smooth_image(48, 64)[0].permute(1, 2, 0) * 255).byte().numpy()))
    assert picture.size == (64, 48)
    halved = stylize_pictures(stylizer, [picture], PictureOptions(stroke_scale=0.5))[0]
    assert halved.size == (64, 48)
    assert seen == [(24, 32), (20, 24), (24, 32), (12, 16)]


def test_the_working_size_travels_with_the_network_to_onnxruntime(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("onnxruntime")
    monkeypatch.setenv("STYLENET_CACHE", str(tmp_path / "cache"))
    from stylenet.nets.network_file import atomic_save, inference_payload

    config = dict(channels=[8, 16, 16], num_residual_blocks=1, working_size=32)
    path = tmp_path / "w.pt"
    atomic_save(inference_payload(TransformerNet(**config), config, "w", {}), path)
    torch_path = stylenet.load(path, backend="torch")
    onnx_path = stylenet.load(path, backend="onnxruntime")
    assert torch_path.working_size == onnx_path.working_size == 32
    image = smooth_image(48, 64)
    assert (torch_path(image) - onnx_path(image)).abs().max() < 2e-3
