"""onnxruntime behind the Stylizer API: the fast path on a CPU (BENCHMARKS.md, "The default path").

Two ways in: a .onnx file written by `python -m stylenet.export` (OnnxStylizer.open), or an inference
file (`stylenet.load`, backend auto or onnxruntime), exported to ONNX once and kept in the cache
(user_cache_dir()/onnx, keyed on the file's bytes, torch's version, the opset and the graph version), since exporting takes
seconds (about 10 s here) and running it saves a third of every call after that.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from stylenet.common.atomic import atomic_path
from stylenet.common.errors import StylenetError
from stylenet.common.paths import user_cache_dir
from stylenet.common.runtime import pick_device
from stylenet.inference.exported import METADATA_KEY, export_onnx, metadata, open_session
from stylenet.inference.stylizer import Stylizer, TorchStylizer, style_weights
from stylenet.nets.network_file import style_names

log = logging.getLogger("stylenet.onnx")
OPSET = 18
# Raised whenever the exported graph of the same network changes (2: plain upsampling, no index gather), so
# that cached exports are redone rather than kept.
GRAPH_VERSION = 2


class OnnxStylizer(Stylizer):
    """An onnxruntime session. A network of several styles was exported with the style weights as a
    second input ("style", (N, styles)). Pictures larger than tile_size go through `tiles` (the same
    network in PyTorch) where there is one: the exported graph computes instance-norm statistics itself."""

    def __init__(
        self,
        session: Any,
        name: str,
        summary: dict[str, Any],
        styles: list[str] | None = None,
        weights: torch.Tensor | None = None,
        tiles: TorchStylizer | None = None,
        working_size: int | None = None,
    ) -> None:
        self.session = session
        self.provider = session.get_providers()[0]
        device = torch.device("cuda" if self.provider == "CUDAExecutionProvider" else "cpu")
        super().__init__(device, name, summary, styles, weights, working_size)
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
            session,
            style,
            about.get("summary", {}),
            styles,
            style_weights(styles, style_name, style_index, style_mix),
            working_size=about.get("model_cfg", {}).get("working_size"),
        )

    def describe(self) -> str:
        return f"onnxruntime, {self.provider}"

    def paint(self, batch: torch.Tensor) -> torch.Tensor:
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
    """The network as ONNX in the cache, exported the first time it is asked for (one graph for each style of a
    network of several that is loaded as a network of its own, <network>@<style>)."""
    styles = ",".join(style_names(payload))
    key = hashlib.sha256(
        network_file.read_bytes() + f"{torch.__version__} opset {OPSET} graph {GRAPH_VERSION} {styles}".encode()
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
    return OnnxStylizer(
        session, network.name, network.summary, network.styles, network.weights, network, network.working_size
    )
