import pytest
import torch

from stylenet.config.compose import model_config
from stylenet.nets.transformer import FusedUpsampleConv, TransformerNet


@pytest.mark.parametrize("height,width", [(1, 1), (5, 7), (33, 17), (31, 64), (64, 64)])
def test_output_has_exactly_the_input_size(height: int, width: int) -> None:
    model = TransformerNet(channels=(8, 16, 16), num_residual_blocks=1)
    output = model(torch.rand(2, 3, height, width))
    assert output.shape == (2, 3, height, width)
    assert output.min() >= 0 and output.max() <= 1


def test_johnson_architecture_size() -> None:
    # Johnson et al. 2016's network (32/64/128 channels, 5 residual blocks) has about 1.68 M parameters.
    model = TransformerNet()
    assert sum(p.numel() for p in model.parameters()) == pytest.approx(1.68e6, rel=0.01)
    assert not any(isinstance(m, torch.nn.ConvTranspose2d) for m in model.modules())


def test_gradients_reach_every_parameter() -> None:
    model = TransformerNet(channels=(8, 16, 16), num_residual_blocks=2)
    model(torch.rand(1, 3, 20, 24)).mean().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"channels": (8, 16)}, "3 widths"),
        ({"norm": "layer"}, "norm must be"),
        ({"downsample": 3}, "downsample must be one of 1, 2, 4"),
        ({"upsampling": "cubic"}, "upsampling must be one of learned, bilinear"),
    ],
)
def test_bad_config_is_refused_with_a_message(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        TransformerNet(**kwargs)


VARIANTS = ("johnson", "separable", "resize", "fast", "realtime")


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("height,width", [(1, 1), (13, 7), (30, 50), (33, 17)])
def test_every_variant_returns_exactly_the_input_size(variant: str, height: int, width: int) -> None:
    model = TransformerNet(**model_config(variant, ["model.width_multiplier=0.25", "model.num_residual_blocks=1"]))
    output = model(torch.rand(1, 3, height, width))
    assert output.shape == (1, 3, height, width)


def test_variants_are_what_their_names_say() -> None:
    counts = {v: sum(p.numel() for p in TransformerNet(**model_config(v)).parameters()) for v in VARIANTS}
    assert counts["separable"] < counts["johnson"] / 5 and counts["fast"] < counts["johnson"] / 5
    assert TransformerNet(**model_config("resize")).downsample == 2
    realtime = TransformerNet(**model_config("realtime"))
    assert realtime.downsample == 1 and realtime.working_size == 384 and counts["realtime"] < counts["johnson"] / 3
    grouped = [
        m
        for m in TransformerNet(**model_config("separable")).modules()
        if isinstance(m, torch.nn.Conv2d) and m.groups > 1
    ]
    assert grouped and all(m.groups == m.in_channels for m in grouped)


def test_the_detail_skip_passes_the_photo_through_at_full_resolution() -> None:
    torch.manual_seed(0)
    plain = TransformerNet(channels=(8, 16, 16), num_residual_blocks=1, downsample=2)
    skipped = TransformerNet(channels=(8, 16, 16), num_residual_blocks=1, downsample=2, detail_skip=True)
    assert sum(p.numel() for p in skipped.parameters()) - sum(p.numel() for p in plain.parameters()) == 3 * 3 * 9 + 3
    skipped.load_state_dict(plain.state_dict(), strict=False)
    photo = torch.rand(1, 3, 37, 45)
    with torch.no_grad():
        skipped.detail[1].weight.zero_()
        skipped.detail[1].bias.zero_()
        assert torch.allclose(skipped(photo), plain(photo), atol=1e-6)  # a zero skip is the plain network
        skipped.detail[1].weight[:, :, 1, 1] = torch.eye(3)
        # The identity skip adds the photo before the sigmoid: a pixel-level change reaches the output pixel.
        changed = photo.clone()
        changed[..., 20, 20] += 0.5
        through_skip = (skipped(changed) - skipped(photo)).abs().sum(1)[0, 20, 20]
        through_network = (plain(changed) - plain(photo)).abs().sum(1)[0, 20, 20]
        assert through_skip > 3 * through_network


def test_bilinear_upsampling_draws_the_picture_at_the_low_resolution() -> None:
    """upsampling=bilinear: nothing learned runs at full resolution, so a change in one low-resolution pixel's
    picture spreads smoothly; the network's last convolution works on the 1/4-resolution features."""
    torch.manual_seed(0)
    model = TransformerNet(channels=(8, 16, 16), num_residual_blocks=1, downsample=4, upsampling="bilinear").eval()
    seen: list[torch.Size] = []
    model.decoder[-1].register_forward_hook(lambda module, inputs, output: seen.append(output.shape))
    assert model(torch.rand(1, 3, 64, 96)).shape == (1, 3, 64, 96)
    assert seen == [torch.Size([1, 3, 16, 24])]


def test_width_multiplier_and_depth_are_config() -> None:
    model = TransformerNet(**model_config("johnson", ["model.width_multiplier=0.5", "model.num_residual_blocks=2"]))
    assert len(model.residuals) == 2
    assert model.encoder[0][0][1].out_channels == 16 and model.residuals[0].body[0][0][1].in_channels == 64


@pytest.mark.parametrize("groups,in_channels,out_channels", [(1, 5, 3), (6, 6, 6)])
def test_fused_upsample_conv_equals_upsample_pad_conv(groups: int, in_channels: int, out_channels: int) -> None:
    fused = FusedUpsampleConv(in_channels, out_channels, groups=groups)
    reference = torch.nn.Sequential(
        torch.nn.Upsample(scale_factor=2, mode="nearest"), torch.nn.ReflectionPad2d(1), fused.conv
    )
    image = torch.randn(2, in_channels, 7, 10)
    assert torch.allclose(fused(image), reference(image), atol=1e-5)
    fused(image).sum().backward()
    assert fused.conv.weight.grad is not None and fused.conv.weight.grad.abs().sum() > 0


def test_bilinear_decoder_stages_keep_the_parameters_and_change_the_picture() -> None:
    """model.decoder_upsampling=bilinear: the same weights (a network file of either kind loads into the other), a
    smoother upsampling, so another picture."""
    torch.manual_seed(0)
    nearest = TransformerNet(channels=(8, 16, 16), num_residual_blocks=1).eval()
    bilinear = TransformerNet(channels=(8, 16, 16), num_residual_blocks=1, decoder_upsampling="bilinear").eval()
    bilinear.load_state_dict(nearest.state_dict())
    image = torch.rand(1, 3, 40, 48)
    with torch.no_grad():
        a, b = nearest(image), bilinear(image)
    assert a.shape == b.shape == image.shape and (a - b).abs().max() > 1e-3
