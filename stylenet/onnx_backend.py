"""`python -m stylenet.infer backend=onnxruntime`: an exported ONNX model run by onnxruntime."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Mapping

import torch

from stylenet.errors import StylenetError, needs
from stylenet.exporting import METADATA_KEY
from stylenet.runtime import pick_device
from stylenet.stylizer import describe_styles, style_weights


class OnnxStylizer:
    """The interface of stylizer.Stylizer that stylize_pictures uses, over an onnxruntime session.
    A network of several styles was exported with the style weights as a second input ("style",
    (N, styles)); the choice of style is made here as in stylizer.load."""

    def __init__(self, path: str | os.PathLike, device: str = "auto", style_name: str | None = None,
                 style_index: int | None = None, style_mix: Mapping[str | int, float] | None = None) -> None:
        onnxruntime = needs("onnxruntime", "onnx")
        path = Path(path).expanduser()
        if not path.is_file():
            raise StylenetError(f"ONNX model not found: {path}")
        wanted = pick_device(device)
        providers = ["CPUExecutionProvider"]
        if wanted.type == "cuda" and "CUDAExecutionProvider" in onnxruntime.get_available_providers():
            providers.insert(0, "CUDAExecutionProvider")
        try:
            self.session = onnxruntime.InferenceSession(str(path), providers=providers)
        except Exception as error:  # onnxruntime raises its own untyped errors for files it cannot read
            raise StylenetError(f"onnxruntime cannot load {path}: {str(error).splitlines()[0]}") from None
        metadata: dict[str, Any] = json.loads(self.session.get_modelmeta().custom_metadata_map.get(METADATA_KEY, "{}"))
        self.style = metadata.get("style", path.stem)
        self.styles = metadata.get("styles", [self.style])
        self.summary = metadata.get("summary", {})
        self.provider = self.session.get_providers()[0]
        self.weights = style_weights(self.styles, style_name, style_index, style_mix)
        self.chosen = describe_styles(self.style, self.styles, self.weights)

    def describe(self) -> str:
        return f"onnxruntime, {self.provider}"

    def run(self, batch: torch.Tensor) -> torch.Tensor:
        inputs = {"image": batch.float().contiguous().numpy()}
        if self.weights is not None:
            inputs["style"] = self.weights.expand(len(batch), -1).contiguous().numpy()
        return torch.from_numpy(self.session.run(None, inputs)[0])

    def tiled(self, image: torch.Tensor, tile: int, overlap: int) -> torch.Tensor:
        height, width = image.shape[-2:]
        raise StylenetError(f"a {width}x{height} image is larger than tile_size={tile}, and tiles need the torch "
                            "backend (the exported graph computes instance-norm statistics itself): pass "
                            "tile_size=null to run it whole with onnxruntime, or use backend=torch")
