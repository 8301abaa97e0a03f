"""The Python API: stylenet.load(path) -> a callable that stylises PIL images or tensor batches."""

from __future__ import annotations

import os
from typing import Any, overload

import torch
from PIL import Image

from stylenet.checkpoint import build_model, load_checkpoint
from stylenet.images import pil_to_tensor, tensor_to_pil
from stylenet.models import TransformerNet
from stylenet.runtime import pick_device


class Stylizer:
    """A trained network ready for inference: no autograd, eval mode, on its device."""

    def __init__(self, model: TransformerNet, device: torch.device, style: str, summary: dict[str, Any]) -> None:
        self.model = model.to(device).eval().requires_grad_(False)
        self.device = device
        self.style = style
        self.summary = summary

    @overload
    def __call__(self, image: Image.Image) -> Image.Image: ...
    @overload
    def __call__(self, image: torch.Tensor) -> torch.Tensor: ...

    @torch.inference_mode()
    def __call__(self, image: Image.Image | torch.Tensor) -> Image.Image | torch.Tensor:
        """A PIL image gives a PIL image; a float batch (N, 3, H, W) in [0, 1] gives a batch on the same device."""
        if isinstance(image, Image.Image):
            batch = pil_to_tensor(image.convert("RGB")).unsqueeze(0).to(self.device)
            return tensor_to_pil(self.model(batch))
        if image.dim() != 4 or image.shape[1] != 3:
            raise ValueError(f"expected a float batch of shape (N, 3, H, W), got {tuple(image.shape)}")
        return self.model(image.to(self.device, torch.float32)).to(image.device)


def load(path: str | os.PathLike, device: str = "auto") -> Stylizer:
    """Load an inference file (checkpoints/<style>.pt) safely and return a Stylizer for it."""
    payload = load_checkpoint(path, kind="inference")
    return Stylizer(build_model(payload, path), pick_device(device), payload["style"], payload.get("summary", {}))
