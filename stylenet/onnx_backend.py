"""`python -m stylenet.infer backend=onnxruntime`: an exported ONNX model run by onnxruntime."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

from stylenet.errors import StylenetError, needs
from stylenet.export import METADATA_KEY
from stylenet.runtime import pick_device


class OnnxStylizer:
    """The interface of stylizer.Stylizer that stylize_pictures uses, over an onnxruntime session."""

    def __init__(self, path: str | os.PathLike, device: str = "auto") -> None:
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
        self.summary = metadata.get("summary", {})
        self.provider = self.session.get_providers()[0]

    def describe(self) -> str:
        return f"onnxruntime, {self.provider}"

    def run(self, batch: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(self.session.run(None, {"image": batch.float().contiguous().numpy()})[0])

    def tiled(self, image: torch.Tensor, tile: int, overlap: int) -> torch.Tensor:
        height, width = image.shape[-2:]
        raise StylenetError(f"a {width}x{height} image is larger than tile_size={tile}, and tiles need the torch "
                            "backend (the exported graph computes instance-norm statistics itself): pass "
                            "tile_size=null to run it whole with onnxruntime, or use backend=torch")
