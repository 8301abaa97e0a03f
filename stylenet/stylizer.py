"""The Python API: stylenet.load(path) -> a callable that stylises PIL images or tensor batches."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Protocol, overload

import torch
from PIL import Image

from stylenet.checkpoint import build_model, load_checkpoint
from stylenet.errors import StylenetError
from stylenet.images import keep_colours, pil_to_tensor, tensor_to_pil
from stylenet.models import TransformerNet
from stylenet.runtime import pick_device
from stylenet.tiling import stylize_in_tiles


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

    def __call__(self, image: Image.Image | torch.Tensor) -> Image.Image | torch.Tensor:
        """A PIL image gives a PIL image; a float batch (N, 3, H, W) in [0, 1] gives a batch on the same device."""
        if isinstance(image, Image.Image):
            return tensor_to_pil(self.run(pil_to_tensor(image.convert("RGB")).unsqueeze(0)))
        if image.dim() != 4 or image.shape[1] != 3:
            raise ValueError(f"expected a float batch of shape (N, 3, H, W), got {tuple(image.shape)}")
        return self.run(image).to(image.device)

    def describe(self) -> str:
        layout = ", channels_last" if self.memory_format == torch.channels_last else ""
        return f"PyTorch on {self.device}, {str(self.dtype).split('.')[-1]}{layout}"

    @torch.inference_mode()
    def run(self, batch: torch.Tensor) -> torch.Tensor:
        batch = batch.to(self.device, self.dtype).contiguous(memory_format=self.memory_format)
        return self.model(batch).float()

    @torch.inference_mode()
    def tiled(self, image: torch.Tensor, tile: int, overlap: int) -> torch.Tensor:
        """One (1, 3, H, W) image in overlapping tiles of at most `tile` pixels a side (stylenet.tiling)."""
        return stylize_in_tiles(self.run, self.model, image, tile, overlap)


@dataclass(frozen=True)
class PictureOptions:
    """What users tune after training, applied in this order:

    stroke_scale: run the network on the picture scaled by this factor and bring the result back to
    the picture's size (below 1: larger brush strokes, above 1: finer ones); tile_size/tile_overlap:
    a picture with a side longer than tile_size goes through the network in overlapping tiles
    (stylenet.tiling), so memory stays bounded; preserve_color: keep the picture's colours, take only
    the luminance of the styled result; strength: blend the result with the picture (0: the picture
    itself, 1: fully styled)."""

    strength: float = 1.0
    preserve_color: bool = False
    stroke_scale: float = 1.0
    tile_size: int | None = None
    tile_overlap: int = 64

    def __post_init__(self) -> None:
        if not 0 <= self.strength <= 1:
            raise StylenetError(f"strength must be between 0 and 1, got {self.strength}")
        if self.stroke_scale <= 0:
            raise StylenetError(f"stroke_scale must be positive, got {self.stroke_scale}")
        if self.tile_size is not None and self.tile_size < 32:
            raise StylenetError(f"tile_size must be at least 32 pixels (or null), got {self.tile_size}")

    @property
    def edits_pictures(self) -> bool:
        """Whether anything beyond the network's own output is asked for (stroke scale, colour, strength)."""
        return self.stroke_scale != 1 or self.preserve_color or self.strength < 1


class Network(Protocol):
    """What stylize_pictures needs of a backend: Stylizer (PyTorch) or onnx_backend.OnnxStylizer."""

    def run(self, batch: torch.Tensor) -> torch.Tensor: ...
    def tiled(self, image: torch.Tensor, tile: int, overlap: int) -> torch.Tensor: ...


def stylize_pictures(stylizer: Network, pictures: list[Image.Image], options: PictureOptions = PictureOptions()
                     ) -> list[Image.Image]:
    """Stylise several pictures: those of the same working size go through the network as one batch,
    those larger than options.tile_size in tiles."""
    contents = [picture.convert("RGB") for picture in pictures]
    works = [content if options.stroke_scale == 1 else content.resize(
        (max(1, round(content.width * options.stroke_scale)), max(1, round(content.height * options.stroke_scale))),
        Image.Resampling.LANCZOS) for content in contents]
    styled: dict[int, Image.Image] = {}
    same_size: dict[tuple[int, int], list[int]] = {}
    for index, work in enumerate(works):
        if options.tile_size is not None and max(work.size) > options.tile_size:
            styled[index] = tensor_to_pil(stylizer.tiled(pil_to_tensor(work).unsqueeze(0), options.tile_size,
                                                         options.tile_overlap))
        else:
            same_size.setdefault(work.size, []).append(index)
    for indices in same_size.values():
        batch = stylizer.run(torch.stack([pil_to_tensor(works[index]) for index in indices]))
        for index, image in zip(indices, batch):
            styled[index] = tensor_to_pil(image.unsqueeze(0))
    results = []
    for index, content in enumerate(contents):
        result = styled[index]
        if result.size != content.size:
            result = result.resize(content.size, Image.Resampling.LANCZOS)
        if options.preserve_color:
            result = keep_colours(result, content)
        results.append(Image.blend(content, result, options.strength) if options.strength < 1 else result)
    return results


def stylize_picture(stylizer: Network, picture: Image.Image, **options: Any) -> Image.Image:
    """One picture; options as in PictureOptions."""
    return stylize_pictures(stylizer, [picture], PictureOptions(**options))[0]


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
