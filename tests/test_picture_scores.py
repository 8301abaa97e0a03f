"""The picture scores (stylenet.loss.scores.PictureScorer) and python -m stylenet.score: the photo itself, a blurred
photo, a photo under a repeated cross-hatch and the style image itself each score as a person would judge them."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from stylenet.common.images import pil_to_tensor, save_image
from stylenet.loss.scores import MEASURE_LAYERS, PictureScorer, palette_distance
from stylenet.vgg.encoder import VGGEncoder
from tests.helpers import random_image, run_entry, write_images

SIZE = 96


def scene(seed: int = 3) -> torch.Tensor:
    """A photo-like picture: smooth colours with sharp-edged rectangles (contours to keep or lose)."""
    image = pil_to_tensor(random_image(SIZE, SIZE, seed=seed)).unsqueeze(0)
    generator = torch.Generator().manual_seed(seed)
    for _ in range(6):
        top, left = torch.randint(0, SIZE - 24, (2,), generator=generator).tolist()
        image[..., top : top + 20, left : left + 20] = torch.rand(3, 1, 1, generator=generator)
    return image


def cross_hatch(image: torch.Tensor, period: int = 4, strength: float = 0.35) -> torch.Tensor:
    y, x = torch.meshgrid(torch.arange(image.shape[-2]), torch.arange(image.shape[-1]), indexing="ij")
    pattern = (((x + y) % period < period // 2) ^ ((x - y) % period < period // 2)).float() - 0.5
    return (image * (1 - strength) + strength * (pattern + 0.5)).clamp(0, 1)


def blurred(image: torch.Tensor) -> torch.Tensor:
    return F.interpolate(F.avg_pool2d(image, 4), size=image.shape[-2:], mode="bilinear", align_corners=False)


@pytest.fixture(scope="module")
def scorer() -> PictureScorer:
    torch.manual_seed(0)  # the layout, edge and repetition scores need no meaning from the VGG; the style score's
    encoder = VGGEncoder("vgg16", MEASURE_LAYERS, pretrained=False)  # zero for the style itself needs none either
    return PictureScorer(encoder, pil_to_tensor(random_image(64, 80, seed=99)))


def test_the_photo_itself_keeps_everything_and_is_not_stylised(scorer: PictureScorer) -> None:
    scores = scorer.score(scene(), scene())
    assert scores["style"] == pytest.approx(1.0) and scores["strokes"] == pytest.approx(1.0)
    assert scores["layout"] == pytest.approx(1.0) and scores["edges"] == pytest.approx(1.0)
    assert scores["sharpness"] == pytest.approx(1.0)


def test_the_style_image_itself_is_fully_stylised_and_keeps_nothing(scorer: PictureScorer) -> None:
    photo = scene()
    style = F.interpolate(
        pil_to_tensor(random_image(64, 80, seed=99)).unsqueeze(0),
        size=photo.shape[-2:],
        mode="bilinear",
        align_corners=False,
        antialias=True,
    )
    scores = scorer.score(style, photo)
    assert scores["style"] < 0.2 and scores["strokes"] < 0.2, scores
    assert scores["layout"] < 0.5 and scores["edges"] < 0.5, scores


def test_strokes_see_the_picture_at_a_quarter_of_the_size(scorer: PictureScorer) -> None:
    """A pixel grain that averages out over 4x4 blocks is invisible to `strokes` (the same score as the photo
    washed out by the same amount), not to `style`: strokes are judged at the scale of forms, not of pixels."""
    photo = pil_to_tensor(random_image(128, 128, seed=3)).unsqueeze(0)  # 4x4 blocks exactly (32 px: the VGG's least)
    y, x = torch.meshgrid(torch.arange(128), torch.arange(128), indexing="ij")
    checkerboard = ((x + y) % 2).float()
    grain, washed = photo * 0.65 + 0.35 * checkerboard, photo * 0.65 + 0.35 * 0.5
    grainy, flat = scorer.score(grain, photo), scorer.score(washed, photo)
    assert grainy["strokes"] == pytest.approx(flat["strokes"], rel=1e-3)
    assert abs(grainy["style"] - flat["style"]) > 0.2 * flat["style"], (grainy, flat)


def test_a_blurred_photo_scores_badly_on_edges_and_sharpness(scorer: PictureScorer) -> None:
    photo = scene()
    scores = scorer.score(blurred(photo), photo)
    assert scores["layout"] > 0.9, scores  # the light and the shapes are still there
    assert scores["sharpness"] < 0.75 and scores["edges"] < 0.7, scores


def test_a_repeated_cross_hatch_is_caught_whatever_else_it_scores(scorer: PictureScorer) -> None:
    photo = scene()
    plain, hatched = scorer.score(photo, photo), scorer.score(cross_hatch(photo), photo)
    assert hatched["repetition"] > 0.8 and plain["repetition"] < 0.5, (plain, hatched)
    assert hatched["layout"] > 0.99  # at 64 px the pattern averages out: only the repetition score sees it


def test_an_even_weave_that_repetition_misses_is_seen_by_grain(scorer: PictureScorer) -> None:
    """A faint diagonal hatch of period 4 px over a photo (what the zoo's starry_night lays over a picture):
    grain rises far above the photo's own; a blurred photo does not (its band is weak but still even)."""
    photo = pil_to_tensor(random_image(256, 256, seed=3)).unsqueeze(0)
    y, x = torch.meshgrid(torch.arange(256), torch.arange(256), indexing="ij")
    hatch = torch.sin((x + y).float() * (2 * math.pi / 4)) * 0.04
    plain, woven, soft = (scorer.score(picture, photo) for picture in (photo, photo + hatch, blurred(photo)))
    assert plain["grain"] < 0.1 and soft["grain"] < 0.1, (plain, soft)
    assert woven["grain"] > 0.25, woven


def test_palette_is_zero_for_the_paintings_own_colours_and_grows_away_from_them(scorer: PictureScorer) -> None:
    photo = scene()
    painting = scorer.painting
    same = palette_distance(painting, painting)
    assert same < 0.01
    tinted = palette_distance((painting * 0.5 + 0.5).clamp(0, 1), painting)
    assert tinted > 5 * max(same, 1e-3)
    assert scorer.score(photo, photo)["palette"] > same


def test_a_picture_of_another_size_is_compared_at_the_photos_size(scorer: PictureScorer) -> None:
    photo = scene()
    larger = F.interpolate(photo, scale_factor=2, mode="bilinear", align_corners=False)
    assert scorer.score(larger, photo)["layout"] > 0.99


def test_the_photos_own_features_are_computed_once_for_all_its_pictures() -> None:
    """Every method's picture of a photo is scored against the photo's own distances: one VGG pass per photo and
    scale, not one per method, with the same scores as a scorer that never saw the photo before."""
    torch.manual_seed(0)
    encoder = VGGEncoder("vgg16", MEASURE_LAYERS, pretrained=False)
    passes: list[int] = []
    encoder.register_forward_hook(lambda module, inputs, output: passes.append(inputs[0].shape[-1]))
    style = pil_to_tensor(random_image(64, 80, seed=99))
    scorer, fresh = PictureScorer(encoder, style), PictureScorer(encoder, style)
    photo, other = scene(), scene(seed=5)
    pictures = [blurred(photo), cross_hatch(photo), photo.flip(-1)]
    passes.clear()
    scores = [scorer.score(picture, photo) for picture in pictures]
    assert len(passes) == 2 + 2 * len(pictures)  # the photo at two scales once, each picture at two
    assert scores[-1] == fresh.score(pictures[-1], photo)
    passes.clear()
    scorer.score(other, other.clone())  # another photo: its own distances, not the last photo's
    assert len(passes) == 4


@pytest.mark.slow
def test_score_entry_point_scores_networks_and_finished_pictures(workspace: Path, trained_run, tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    paths = write_images(photos, 2, size=(48, 48))
    pictures = tmp_path / "elsewhere"
    for path in paths:
        save_image(blurred(pil_to_tensor(random_image(48, 48, seed=1)).unsqueeze(0)), pictures / f"{path.stem}.png")
    common = [
        f"photos={photos}",
        f"style_image={workspace / 'style.png'}",
        "size=48",
        "vgg.pretrained=false",
        "vgg.weights=null",
    ]
    result = run_entry(
        "score",
        *common,
        f"checkpoint=[{trained_run.checkpoint}]",
        f"pictures=[{pictures}]",
        f"output={tmp_path / 'report'}",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = (tmp_path / "report" / "report.md").read_text()
    assert "| photo | 1.000 | 1.000 | 1.000 | 1.000 |" in report
    assert f"| {trained_run.checkpoint} |" in report and f"| {pictures} |" in report
    rows = (tmp_path / "report" / "scores.csv").read_text().splitlines()
    assert (
        rows[0] == "method,photo,style,strokes,layout,edges,sharpness,repetition,grain,palette"
        and len(rows) == 1 + 3 * 2
    )

    (pictures / f"{paths[0].stem}.png").unlink()
    missing = run_entry("score", *common, f"pictures=[{pictures}]", cwd=tmp_path)
    assert missing.returncode == 2 and "Traceback" not in missing.stderr
    assert f"has no picture of photo '{paths[0].stem}'" in missing.stderr
    empty = run_entry("score", *common[1:], f"photos={tmp_path / 'nothing'}", cwd=tmp_path)
    assert empty.returncode == 2 and "photos: no images in" in empty.stderr
