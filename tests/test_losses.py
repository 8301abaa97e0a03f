import pytest
import torch
import torch.nn.functional as F

from stylenet.config.compose import model_config
from stylenet.loss.equivariance import equivariance_loss, lattice_shift, moved
from stylenet.loss.grain import Weave
from stylenet.loss.perceptual import (
    PerceptualLoss,
    content_loss,
    gram_matrix,
    sliced_wasserstein,
    style_loss,
    total_variation,
)
from stylenet.nets.transformer import TransformerNet
from stylenet.training.loop import Interval, StepSettings, train_step
from stylenet.vgg.encoder import VGGEncoder


def test_gram_matrix_by_hand() -> None:
    # Two channels over two pixels: [1, 2] and [3, 4]; divided by C*H*W = 2*1*2 = 4.
    features = torch.tensor([[[[1.0, 2.0]], [[3.0, 4.0]]]])
    expected = torch.tensor([[[1 + 4, 3 + 8], [3 + 8, 9 + 16]]]) / 4
    assert torch.allclose(gram_matrix(features), expected)


def test_content_loss_is_mean_squared_error() -> None:
    a, b = torch.zeros(1, 2, 2, 2), torch.full((1, 2, 2, 2), 3.0)
    assert content_loss(a, b).item() == pytest.approx(9.0)


def test_style_loss_zero_for_own_gram_and_broadcast_over_batch() -> None:
    features = torch.rand(3, 4, 5, 5)
    target = gram_matrix(features[:1])
    losses = torch.stack([style_loss(features[i : i + 1], target) for i in range(3)])
    assert losses[0] == 0 and (losses[1:] > 0).all()
    assert style_loss(features, target).item() == pytest.approx(losses.mean().item(), rel=1e-5)


def test_sliced_wasserstein_sees_distributions_that_gram_matrices_cannot_tell_apart() -> None:
    """A feature of values +-1 and a Gaussian one have (nearly) the same Gram matrix, their second moment; only
    the distribution differs, and the sliced Wasserstein distance sees it."""
    generator = torch.Generator().manual_seed(0)
    signs = torch.randint(0, 2, (1, 1, 64, 64), generator=generator).float() * 2 - 1
    gaussian = torch.randn(1, 1, 64, 64, generator=generator)
    target = [signs[0].flatten(1)]
    assert style_loss(gaussian, gram_matrix(signs)).item() < 1e-3
    assert sliced_wasserstein(signs, target).item() == pytest.approx(0.0, abs=1e-6)
    assert sliced_wasserstein(gaussian, target).item() > 0.3  # E[(|z| - 1)^2] = 0.40
    assert sliced_wasserstein(signs + 1, target).item() > 0.5  # a shift
    # Each image against its own style's features: two styles of different sizes, in any order in the batch.
    two = [gaussian[0].flatten(1), (gaussian[0, :, :40] + 3).flatten(1)]
    distances = sliced_wasserstein(torch.cat([gaussian + 3, gaussian]), two, torch.tensor([1, 0]))
    assert distances.max().item() < 0.1
    # The images of a style are one distribution: half the batch dark, half light, matches a half-and-half style,
    # which neither image alone does.
    dark, light = torch.zeros(1, 1, 32, 32), torch.ones(1, 1, 32, 32)
    half = [torch.cat([dark, light], dim=3)[0].flatten(1)]
    assert sliced_wasserstein(torch.cat([dark, light]), half).max().item() < 1e-6
    assert sliced_wasserstein(dark, half).item() > 0.2


def descend(loss: PerceptualLoss, term: str, photos: torch.Tensor, lr: float, steps: int) -> torch.Tensor:
    """The photos moved by Adam down one term of the loss (content against the photos themselves)."""
    image = photos.clone().requires_grad_(True)
    optimiser = torch.optim.Adam([image], lr=lr)
    for _ in range(steps):
        optimiser.zero_grad()
        loss(image, photos)[term].backward()
        optimiser.step()
    return image.detach()


def test_a_sliced_wasserstein_style_term_can_be_descended_and_weighed_by_the_photos() -> None:
    torch.manual_seed(0)
    encoder = VGGEncoder("vgg16", ["relu1_2", "relu2_2"], pretrained=False)
    painting, photos = torch.rand(3, 40, 40) ** 3, torch.rand(2, 3, 32, 32)
    loss = PerceptualLoss(
        encoder, painting, "relu2_2", {"relu1_2": 1.0, "relu2_2": 2.0}, 0.0, 5.0, 0.0, "sliced_wasserstein"
    )
    loss.relative_to_photos(loss.style_layer_losses(photos))
    assert loss.style_term(photos) == pytest.approx(5.0 * 3.0, rel=0.15)  # random directions: near, not equal
    image = descend(loss, "style", photos, lr=0.02, steps=60)
    assert loss.style_term(image) < 0.5 * loss.style_term(photos)
    gram = PerceptualLoss(encoder, painting, "relu2_2", {"relu1_2": 1.0}, 0.0, 5.0, 0.0)
    assert not gram.same_objective(loss) and loss.same_objective(loss)


def test_the_palette_term_pulls_the_colours_to_the_paintings_and_adds_to_the_total() -> None:
    torch.manual_seed(0)
    encoder = VGGEncoder("vgg16", ["relu1_2", "relu2_2"], pretrained=False)
    painting = torch.zeros(3, 40, 40)
    painting[0, :20], painting[2, 20:] = 1.0, 1.0  # half red, half blue
    photos = torch.full((2, 3, 32, 32), 0.5)  # grey
    loss = PerceptualLoss(encoder, painting, "relu2_2", {"relu1_2": 1.0}, 1.0, 5.0, 0.0, palette_weight=10.0)
    losses = loss(photos, photos)
    assert losses["palette"].item() > 0.5  # grey is far from a red and blue palette
    assert losses["total"].item() == pytest.approx((losses["content"] + losses["style"] + losses["palette"]).item())
    image = descend(loss, "palette", photos, lr=0.05, steps=100)
    assert loss(image, photos)["palette"].item() < 0.1 * losses["palette"].item()
    # The batch is one distribution: a red picture beside a blue one already has the painting's colours.
    red, blue = torch.zeros(1, 3, 32, 32), torch.zeros(1, 3, 32, 32)
    red[:, 0], blue[:, 2] = 1.0, 1.0
    assert loss(torch.cat([red, blue]), photos)["palette"].item() < 0.01 * losses["palette"].item()
    plain = PerceptualLoss(encoder, painting, "relu2_2", {"relu1_2": 1.0}, 1.0, 5.0, 0.0)
    assert "palette" not in plain(photos, photos) and not plain.same_objective(loss)


def squares(size: int, block: int) -> torch.Tensor:
    """(1, 3, size, size): red and blue squares of `block` px."""
    red = ((torch.arange(size).view(-1, 1) // block + torch.arange(size) // block) % 2 == 0).float()
    return torch.stack([red, torch.zeros_like(red), 1 - red]).unsqueeze(0)


def test_the_coarse_style_term_is_the_style_term_of_picture_and_painting_shrunk_and_can_be_descended() -> None:
    torch.manual_seed(0)
    encoder = VGGEncoder("vgg16", ["relu1_2", "relu2_2"], pretrained=False)
    painting, layers = squares(96, 24)[0], {"relu1_2": 1.0, "relu2_2": 3.0}
    loss = PerceptualLoss(encoder, painting, "relu2_2", layers, 1.0, 5.0, 1.0, coarse_style_weight=2.0)
    picture, noise = squares(96, 4), torch.rand(1, 3, 96, 96)
    # At a third of the size (32 px): what a loss of the painting at 32 px says of the picture at 32 px, times 2.
    small = F.interpolate(picture, size=(32, 32), mode="area")
    shrunk = PerceptualLoss(
        encoder, F.interpolate(painting[None], size=(32, 32), mode="area"), "relu2_2", layers, 1.0, 5.0, 1.0
    )
    terms = loss(picture, noise)
    assert terms["coarse_style"].item() == pytest.approx(2.0 * shrunk(small, small)["style"].item(), rel=1e-4)
    parts = terms["content"] + terms["style"] + terms["tv"] + terms["coarse_style"]
    assert terms["total"].item() == pytest.approx(parts.item())
    start = loss(noise, noise)["coarse_style"].item()
    assert loss(descend(loss, "coarse_style", noise, lr=0.1, steps=20), noise)["coarse_style"].item() < 0.5 * start
    plain = PerceptualLoss(encoder, painting, "relu2_2", layers, 1.0, 5.0, 1.0)
    assert "coarse_style" not in plain(noise, noise) and not plain.same_objective(loss)


def test_palette_patch_compares_block_colours_so_a_fine_dither_does_not_match() -> None:
    torch.manual_seed(0)
    encoder = VGGEncoder("vgg16", ["relu1_2", "relu2_2"], pretrained=False)
    painting = torch.zeros(3, 40, 40)
    painting[0, :20], painting[2, 20:] = 1.0, 1.0  # half red, half blue
    dither = torch.zeros(1, 3, 32, 32)  # red and blue pixels in a checkerboard: the painting's pixels, not its patches
    checker = (torch.arange(32).view(-1, 1) + torch.arange(32)) % 2 == 0
    dither[0, 0], dither[0, 2] = checker.float(), (~checker).float()
    red, blue = torch.zeros(1, 3, 32, 32), torch.zeros(1, 3, 32, 32)
    red[:, 0], blue[:, 2] = 1.0, 1.0
    photos = torch.full((2, 3, 32, 32), 0.5)

    one, four = (
        PerceptualLoss(
            encoder, painting, "relu2_2", {"relu1_2": 1.0}, 1.0, 5.0, 0.0, palette_weight=10.0, palette_patch=patch
        )
        for patch in (1, 4)
    )

    def palette(loss: PerceptualLoss, pictures: torch.Tensor) -> float:
        return loss(pictures, photos[: len(pictures)])["palette"].item()

    # Per pixel the dither has the painting's colours; per 4x4 block it is purple.
    assert palette(one, dither) < 0.05 and palette(four, dither) > 0.5
    assert palette(four, torch.cat([red, blue])) < 0.05  # large areas of the painting's colours still match
    assert not one.same_objective(four)


def test_a_painting_at_several_sizes_is_the_mean_of_drawing_one_size_at_random() -> None:
    torch.manual_seed(0)
    encoder = VGGEncoder("vgg16", ["relu1_2", "relu2_2"], pretrained=False)
    stripes = ((torch.arange(64) // 2) % 2).float().expand(3, 64, 64).clone()  # 4 px stripes
    sizes = [stripes, F.interpolate(stripes[None], size=32, mode="area")[0]]  # and the same painting at half size
    layers = {"relu1_2": 1.0, "relu2_2": 2.0}
    each = [PerceptualLoss(encoder, size, "relu2_2", layers, 0.0, 5.0, 0.0) for size in sizes]
    both = PerceptualLoss(encoder, [sizes], "relu2_2", layers, 0.0, 5.0, 0.0)
    pictures = [torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32) ** 3]
    # mean over sizes of |G - T_s|^2 = |G - mean T|^2 + the targets' own spread: the same for every picture.
    gaps = [sum(loss.style_term(picture) for loss in each) / 2 - both.style_term(picture) for picture in pictures]
    assert gaps[0] > 0 and gaps[0] == pytest.approx(gaps[1], rel=1e-4)
    assert not both.same_objective(each[0]) and not each[0].same_objective(each[1])


def test_total_variation_by_hand() -> None:
    # One row 0, 1, 3: horizontal differences 1 and 2 -> mean square 2.5; no vertical neighbours in a
    # 1-row image gives an empty mean, so use two identical rows: vertical differences are 0.
    image = torch.tensor([[[[0.0, 1.0, 3.0], [0.0, 1.0, 3.0]]]])
    assert total_variation(image).item() == pytest.approx(2.5)
    assert total_variation(torch.ones(1, 3, 4, 4)).item() == 0


@pytest.fixture(scope="module")
def perceptual() -> PerceptualLoss:
    torch.manual_seed(0)
    layers = {"relu1_2": 1.0, "relu2_2": 0.5}
    encoder = VGGEncoder("vgg16", ["relu2_2", *layers], pretrained=False)
    return PerceptualLoss(
        encoder, torch.rand(3, 40, 30), "relu2_2", layers, content_weight=2.0, style_weight=10.0, tv_weight=3.0
    )


def test_perceptual_loss_terms_add_up(perceptual: PerceptualLoss) -> None:
    output, content = torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32)
    losses = perceptual(output, content)
    assert set(losses) == {"content", "style", "style/relu1_2", "style/relu2_2", "tv", "total"}
    assert losses["style"] == pytest.approx((losses["style/relu1_2"] + losses["style/relu2_2"]).item())
    assert losses["total"] == pytest.approx((losses["content"] + losses["style"] + losses["tv"]).item())
    assert losses["tv"].item() == pytest.approx(3.0 * total_variation(output).item())
    features = perceptual.encoder(output)["relu2_2"]
    expected = 2.0 * content_loss(features, perceptual.encoder(content)["relu2_2"])
    assert losses["content"].item() == pytest.approx(expected.item(), rel=1e-5)
    layer = 10.0 * 0.5 * style_loss(features, perceptual.target_gram("relu2_2"))
    assert losses["style/relu2_2"].item() == pytest.approx(layer.item(), rel=1e-5)


def test_content_features_give_the_same_loss_as_content_images(perceptual: PerceptualLoss) -> None:
    output, content = torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32)
    from_images = perceptual(output, content)
    from_features = perceptual(output, content_features=perceptual.encoder(content)["relu2_2"])
    for name in from_images:
        assert from_features[name].item() == pytest.approx(from_images[name].item(), rel=1e-5)


def test_loss_is_zero_when_output_is_content_and_style(perceptual: PerceptualLoss) -> None:
    style = torch.rand(1, 3, 32, 32)
    own = PerceptualLoss(perceptual.encoder, style[0], "relu2_2", {"relu1_2": 1.0}, 1.0, 1.0, 0.0)
    assert own(style, style)["total"].item() == pytest.approx(0.0, abs=1e-9)


def test_balancing_makes_each_layer_proportional_to_its_weight_and_keeps_the_total(perceptual: PerceptualLoss) -> None:
    output = torch.rand(2, 3, 32, 32)
    before = perceptual(output, torch.rand(2, 3, 32, 32))
    weights = perceptual.balance_style_layers(perceptual.style_layer_losses(output))
    after = perceptual(output, torch.rand(2, 3, 32, 32))
    assert weights == perceptual.style_layer_weights and weights["relu1_2"] != 1.0
    # Configured layer weights 1.0 and 0.5: the terms become 2:1, their sum unchanged.
    assert after["style/relu1_2"].item() == pytest.approx(2 * after["style/relu2_2"].item(), rel=1e-4)
    assert after["style"].item() == pytest.approx(before["style"].item(), rel=1e-4)


def test_stored_layer_weights_must_name_the_losss_layers() -> None:
    import pytest
    import torch

    from stylenet.common.errors import StylenetError
    from stylenet.loss.perceptual import PerceptualLoss
    from stylenet.vgg.encoder import VGGEncoder

    encoder = VGGEncoder("vgg16", ["relu1_2", "relu2_2"], pretrained=False)
    loss = PerceptualLoss(encoder, torch.rand(3, 16, 16), "relu2_2", {"relu1_2": 1.0, "relu2_2": 1.0}, 1, 1, 1)
    loss.use_layer_weights({"relu1_2": 3.0, "relu2_2": 0.5})
    assert loss.style_layer_weights == {"relu1_2": 3.0, "relu2_2": 0.5}
    with pytest.raises(StylenetError, match=r"stored style layer weights are for layers \['relu3_3'\], this loss has"):
        loss.use_layer_weights({"relu3_3": 1.0})
    assert loss.style_layer_weights == {"relu1_2": 3.0, "relu2_2": 0.5}  # unchanged by the refused ones


def test_weights_relative_to_the_photos_make_every_painting_as_far_from_an_unchanged_photo(
    perceptual: PerceptualLoss,
) -> None:
    photos = torch.rand(4, 3, 32, 32)
    configured = {"relu1_2": 1.0, "relu2_2": 3.0}
    owns = []
    for seed in (0, 1):  # two paintings far apart: a faint one and a loud one
        painting = torch.rand(3, 40, 30, generator=torch.Generator().manual_seed(seed)) ** (1 + 3 * seed)
        loss = PerceptualLoss(perceptual.encoder, painting, "relu2_2", dict(configured), 1.0, 7.0, 0.0)
        before = loss.style_term(photos)
        raw = {name: float(value) for name, value in loss.style_layer_losses(photos).items()}
        loss.relative_to_photos(raw)
        shares = {
            name: float(value) * loss.style_layer_weights[name]
            for name, value in loss.style_layer_losses(photos).items()
        }
        assert shares == pytest.approx(configured, rel=1e-4)  # each layer counts as configured
        owns.append((before, loss.style_term(photos)))
    assert owns[0][0] != pytest.approx(owns[1][0], rel=0.1)  # the paintings differ before ...
    assert owns[0][1] == pytest.approx(owns[1][1], rel=1e-4) == pytest.approx(7.0 * 4.0)  # ... and not after


def test_moved_photos_are_the_photos_moved_and_the_shifts_miss_the_lattice() -> None:
    photos = torch.rand(2, 3, 20, 24)
    shifted = moved(photos, (2, 3))
    assert shifted.shape == photos.shape and torch.equal(shifted[..., :18, :21], photos[..., 2:, 3:])
    shifts = {lattice_shift(step) for step in range(9)}
    assert len(shifts) == 9 and all(1 <= d <= 3 for shift in shifts for d in shift)
    assert lattice_shift(4) == lattice_shift(13), "a function of the step: a resumed run takes the same shifts"


def test_the_equivariance_term_sees_a_pattern_on_the_lattice_and_not_a_translation_equivariant_network() -> None:
    photos = torch.rand(2, 3, 64, 64)
    blur = torch.nn.Sequential(torch.nn.ReflectionPad2d(1), torch.nn.Conv2d(3, 3, 3))  # moves with the photo
    grid = torch.zeros(64, 64)
    grid[::4, :] = grid[:, ::4] = 0.5  # a 4 px grid fixed to the picture's pixels, as two stride-2 stages can draw
    for shift in [(1, 1), (2, 3), (3, 2)]:
        with torch.no_grad():
            assert equivariance_loss(blur(photos), blur(moved(photos, shift)), shift).item() < 1e-12
            on_lattice = equivariance_loss(photos + grid, moved(photos, shift) + grid, shift).item()
        assert on_lattice > 0.02
    with pytest.raises(ValueError, match="too small to compare"):
        equivariance_loss(photos[..., :3, :3], photos[..., :3, :3], (3, 3))


def test_training_with_the_equivariance_term_makes_a_strided_network_move_with_its_photo() -> None:
    """Through the training step (photos and moved photos in one pass), the term alone as the loss: it must
    fall, and it is logged beside the loss's own terms in the total."""
    torch.manual_seed(0)
    model = TransformerNet(**model_config("tiny"))
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    photos = torch.rand(4, 3, 48, 48)

    def no_loss(output: torch.Tensor, content: torch.Tensor, **_: object) -> dict[str, torch.Tensor]:
        return {"total": output.sum() * 0}

    settings = StepSettings(torch.device("cpu"), equivariance_weight=100.0)
    terms = []
    for step in range(60):
        interval = Interval()
        output = train_step(model, no_loss, optimizer, photos, None, step, settings, interval)
        assert output.shape == photos.shape
        terms.append(float(interval.losses["equivariance"]))
        assert float(interval.losses["total"]) == pytest.approx(terms[-1])
    assert sum(terms[-9:]) < 0.3 * sum(terms[:9])


def grid_pattern(size: int, period: int) -> torch.Tensor:
    """A fine square grid of `period` px, the same in every picture it is added to."""
    grid = torch.zeros(size, size)
    grid[::period, :] = grid[:, ::period] = 0.3
    return grid


def test_the_weave_term_sees_a_pattern_on_every_picture_of_a_style_and_not_the_photos_own() -> None:
    """A grid drawn on every picture of one style is that style's weave; a regular pattern that is the photos' own
    (here a grid in the photos themselves) is not, nor is a picture that is its photo with its detail."""
    torch.manual_seed(0)
    photos = torch.rand(8, 3, 64, 64) * 0.5 + grid_pattern(64, 8)  # the photos' own regular detail
    styles = torch.arange(8) % 2
    weave = Weave(styles=2)
    terms = [weave(photos, photos, styles).item() for _ in range(3)]
    assert max(terms) < 0.01
    painted = photos.clone()
    painted[styles == 1] += grid_pattern(64, 3)  # style 1 draws a 3 px grid on every picture
    weave = Weave(styles=2)
    for _ in range(3):
        term = weave(painted, photos, styles).item()
    assert term > 0.1
    assert weave(painted[styles == 0], photos[styles == 0], styles[styles == 0]).item() < 0.01  # style 0's clean


def test_the_weave_term_lowers_a_pattern_drawn_on_every_picture() -> None:
    """Its gradient lowers the weave (not the pictures' other detail): a learnt pattern added to every picture,
    starting as a 3 px grid, fades under the term alone."""
    torch.manual_seed(0)
    pattern = torch.nn.Parameter(grid_pattern(48, 3).clone())
    optimizer = torch.optim.Adam([pattern], lr=1e-2)
    weave, terms = Weave(), []
    for _ in range(60):
        photos = torch.rand(4, 3, 48, 48) * 0.5
        term = weave(photos + pattern, photos)
        optimizer.zero_grad()
        term.backward()
        optimizer.step()
        terms.append(term.item())
    assert sum(terms[-9:]) < 0.3 * sum(terms[:9])
    grid = grid_pattern(48, 3)[6:-6, 6:-6]  # inside, where the spectrum's window sees it
    left = pattern.detach()[6:-6, 6:-6]
    grid, left = grid - grid.mean(), left - left.mean()
    assert (left * grid).sum() / grid.square().sum() < 0.5  # less than half the grid is left
