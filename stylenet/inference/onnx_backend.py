"""onnxruntime behind the Stylizer API: the fast path on a CPU (BENCHMARKS.md, "The default path").

Two ways in: a .onnx file written by `python -m stylenet.export` (OnnxStylizer.open), or an inference
file (`stylenet.load`, backend auto or onnxruntime), exported to ONNX once and kept in the cache
(user_cache_dir()/onnx, keyed on the file's bytes, torch's version, the opset and the graph version), since exporting takes
seconds (about 10 s here) and running it saves a third of every call after that.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from stylenet.common.atomic import atomic_path
from stylenet.common.errors import StylenetError, needs
from stylenet.common.paths import user_cache_dir
from stylenet.common.runtime import pick_device
from stylenet.inference.exported import METADATA_KEY, export_onnx, metadata
from stylenet.inference.stylizer import Stylizer, TorchStylizer, style_weights

log = logging.getLogger("stylenet.onnx")
BACKENDS = ("auto", "torch", "onnxruntime")
BACKEND_VARIABLE = "STYLENET_BACKEND"  # what backend=auto means when set: torch or onnxruntime
OPSET = 18
# Raised whenever the exported graph of the same network changes (2: plain upsampling, no index gather), so
# that cached exports are redone rather than kept.
GRAPH_VERSION = 2


def installed() -> bool:
    """Whether onnxruntime and the exporter's packages (the onnx extra) are all here."""
    return all(importlib.util.find_spec(name) is not None for name in ("onnxruntime", "onnx", "onnxscript"))


def chosen_backend(backend: str, device: torch.device, dtype: torch.dtype, channels_last: bool) -> str:
    """torch or onnxruntime. auto: $STYLENET_BACKEND if set, else onnxruntime for float32 on the CPU where
    installed (the faster of the two here), else torch (CUDA, MPS, half precision, channels_last)."""
    if backend not in BACKENDS:
        raise StylenetError(f"unknown backend '{backend}'; choose one of {', '.join(BACKENDS)}")
    if backend == "auto":
        backend = os.environ.get(BACKEND_VARIABLE) or "auto"
        if backend not in BACKENDS:
            raise StylenetError(f"{BACKEND_VARIABLE}={backend}: choose one of {', '.join(BACKENDS)}")
    if backend == "auto":
        fits = device.type == "cpu" and dtype == torch.float32 and not channels_last
        return "onnxruntime" if fits and installed() else "torch"
    if backend == "onnxruntime" and (dtype != torch.float32 or channels_last):
        raise StylenetError(
            "backend=onnxruntime runs the network in float32 and its own memory format: "
            "use precision=fp32 and channels_last=false, or backend=torch"
        )
    return backend


def open_session(path: Path, device: torch.device) -> Any:
    onnxruntime = needs("onnxruntime", "onnx")
    providers = ["CPUExecutionProvider"]
    if device.type == "cuda" and "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        providers.insert(0, "CUDAExecutionProvider")
    try:
        return onnxruntime.InferenceSession(str(path), providers=providers)
    except Exception as error:  # onnxruntime raises its own untyped errors for files it cannot read
        raise StylenetError(f"onnxruntime cannot load {path}: {str(error).splitlines()[0]}") from None


class OnnxStylizer(Stylizer):
    """An onnxruntime session. A network of several styles was exported with the style weights as a
    second input ("style", (N, styles)). Pictures larger than tile_size go through `tiles` (the same
    network in PyTorch) where there is one: the exported graph computes instance-norm statistics itself."""

    def __init__(
        self,
        session: Any,
        style: str,
        summary: dict[str, Any],
        styles: list[str] | None = None,
        weights: torch.Tensor | None = None,
        tiles: TorchStylizer | None = None,
    ) -> None:
        self.session = session
        self.provider = session.get_providers()[0]
        device = torch.device("cuda" if self.provider == "CUDAExecutionProvider" else "cpu")
        super().__init__(device, style, summary, styles, weights)
        self.tiles = tiles

    @classmethod
    def open(
        cls,
        path: str | os.PathLike,
        device: str = "auto",
        style_name: str | None = None,
        style_index: int | None = None,
        style_mix: Mapping[str | int, float] | None = None,
    ) -> OnnxStylizer:
        """A .onnx file written by stylenet.export, with the style chosen as in stylenet.load."""
        path = Path(path).expanduser()
        if not path.is_file():
            raise StylenetError(f"ONNX model not found: {path}")
        session = open_session(path, pick_device(device))
        about: dict[str, Any] = json.loads(session.get_modelmeta().custom_metadata_map.get(METADATA_KEY, "{}"))
        style = about.get("style", path.stem)
        styles = about.get("styles", [style])
        return cls(
            session, style, about.get("summary", {}), styles, style_weights(styles, style_name, style_index, style_mix)
        )

    def describe(self) -> str:
        return f"onnxruntime, {self.provider}"

    def run(self, batch: torch.Tensor) -> torch.Tensor:
        inputs = {"image": batch.float().contiguous().cpu().numpy()}
        if self.weights is not None:
            inputs["style"] = self.weights.expand(len(batch), -1).contiguous().numpy()
        return torch.from_numpy(self.session.run(None, inputs)[0])

    def tiled(self, image: torch.Tensor, tile: int, overlap: int) -> torch.Tensor:
        if self.tiles is not None:
            self.tiles.weights = self.weights
            return self.tiles.tiled(image, tile, overlap)
        height, width = image.shape[-2:]
        raise StylenetError(
            f"a {width}x{height} image is larger than tile_size={tile}, and tiles need the network "
            "in PyTorch (the exported graph computes instance-norm statistics itself): pass "
            "tile_size=null to run it whole with onnxruntime, or stylise with the inference file"
        )


def cached_export(network_file: Path, network: TorchStylizer, payload: dict[str, Any]) -> Path:
    """The network as ONNX in the cache, exported the first time it is asked for."""
    key = hashlib.sha256(
        network_file.read_bytes() + f"{torch.__version__} opset {OPSET} graph {GRAPH_VERSION}".encode()
    ).hexdigest()[:20]
    path = user_cache_dir() / "onnx" / f"{key}.onnx"
    if not path.is_file():
        log.info("onnxruntime: exporting %s to ONNX once (about 10 s here), kept as %s", network_file.name, path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as temporary:
            export_onnx(network.model, temporary, metadata(payload), OPSET)
    return path


def onnx_stylizer(network_file: Path, network: TorchStylizer, payload: dict[str, Any]) -> OnnxStylizer:
    """The inference file's network run by onnxruntime, with `network` kept for pictures in tiles."""
    session = open_session(cached_export(network_file, network, payload), network.device)
    return OnnxStylizer(session, network.style, network.summary, network.styles, network.weights, tiles=network)
