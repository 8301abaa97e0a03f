"""The Python API: stylenet.load(path) -> a callable that stylises PIL images or tensor batches."""

from __future__ import annotations

import os
from typing import Any, overload

import torch
from PIL import Image

from stylenet.checkpoint import build_model, load_checkpoint
from stylenet.errors import StylenetError
from stylenet.images import keep_colours, pil_to_tensor, tensor_to_pil
from stylenet.models import TransformerNet
from stylenet.runtime import pick_device


PRECISIONS = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def inference_dtype(device: torch.device, precision: str = "auto") -> torch.dtype:
    """auto: half precision on CUDA (bf16 where the GPU has it, else fp16), fp32 elsewhere."""
    if precision == "auto":
        if device.type == "cuda":
            precision = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        else:
            precision = "fp32"
    if precision not in PRECISIONS:
        raise StylenetError(f"precision must be auto or one of {', '.join(PRECISIONS)}, got '{precision}'")
    return PRECISIONS[precision]


class Stylizer:
    """A trained network ready for inference: no autograd, eval mode, on its device, in its precision
    and memory format (the input is converted; the output is always float32)."""

    def __init__(self, model: TransformerNet, device: torch.device, style: str, summary: dict[str, Any],
                 dtype: torch.dtype = torch.float32, channels_last: bool = False) -> None:
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.dtype = dtype
        self.model = model.to(device, dtype=dtype, memory_format=self.memory_format).eval().requires_grad_(False)
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
            return tensor_to_pil(self.run(pil_to_tensor(image.convert("RGB")).unsqueeze(0)))
        if image.dim() != 4 or image.shape[1] != 3:
            raise ValueError(f"expected a float batch of shape (N, 3, H, W), got {tuple(image.shape)}")
        return self.run(image).to(image.device)

    def run(self, batch: torch.Tensor) -> torch.Tensor:
        batch = batch.to(self.device, self.dtype).contiguous(memory_format=self.memory_format)
        return self.model(batch).float()


def stylize_picture(stylizer: Stylizer, picture: Image.Image, *, strength: float = 1.0, preserve_color: bool = False,
                    stroke_scale: float = 1.0) -> Image.Image:
    """One picture with the options users tune after training, in this order:

    stroke_scale: run the network on the picture scaled by this factor and bring the result back to
    the picture's size (below 1: larger brush strokes, above 1: finer ones); preserve_color: keep the
    picture's colours, take only the luminance of the styled result; strength: blend the result
    with the picture (0: the picture itself, 1: fully styled).
    """
    if not 0 <= strength <= 1:
        raise StylenetError(f"strength must be between 0 and 1, got {strength}")
    if stroke_scale <= 0:
        raise StylenetError(f"stroke_scale must be positive, got {stroke_scale}")
    content = picture.convert("RGB")
    work = content
    if stroke_scale != 1:
        work = content.resize((max(1, round(content.width * stroke_scale)), max(1, round(content.height * stroke_scale))),
                              Image.Resampling.LANCZOS)
    styled = stylizer(work)
    if styled.size != content.size:
        styled = styled.resize(content.size, Image.Resampling.LANCZOS)
    if preserve_color:
        styled = keep_colours(styled, content)
    return Image.blend(content, styled, strength) if strength < 1 else styled


def load(path: str | os.PathLike, device: str = "auto", precision: str = "auto",
         channels_last: bool = False) -> Stylizer:
    """Load an inference file (checkpoints/<style>.pt) safely and return a Stylizer for it.

    precision: auto | fp32 | bf16 | fp16 (auto: half precision on CUDA, fp32 elsewhere);
    channels_last: NHWC memory format, off by default: without torch.compile it measured slower for
    every variant on an H100 and on CPU (BENCHMARKS.md)."""
    payload = load_checkpoint(path, kind="inference")
    target = pick_device(device)
    dtype = inference_dtype(target, precision)
    return Stylizer(build_model(payload, path), target, payload["style"], payload.get("summary", {}), dtype,
                    channels_last)
