import pytest
import torch

from stylenet.models import TransformerNet


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


@pytest.mark.parametrize("kwargs,message", [({"channels": (8, 16)}, "3 widths"), ({"norm": "layer"}, "norm must be")])
def test_bad_config_is_refused_with_a_message(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        TransformerNet(**kwargs)
