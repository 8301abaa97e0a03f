"""The Python API: stylenet.load(path) -> a callable that stylises PIL images or tensor batches."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, overload

import torch
import torch.nn.functional as F
from PIL import Image

from stylenet.common.errors import StylenetError
from stylenet.common.images import keep_colours, pil_to_tensor, tensor_to_pil
from stylenet.inference.tiling import stylize_in_tiles
from stylenet.nets.transformer import TransformerNet


def style_weights(
    names: Sequence[str],
    name: str | None = None,
    index: int | None = None,
    mix: Mapping[str | int, float] | None = None,
) -> torch.Tensor | None:
    """The weights (len(names),) of the style a user chose from a network's styles: by name, by index,
    or a mix {name (or index): weight} with weights from 0 that add up to 1 (Dumoulin et al.'s
    blending of the conditional instance norm parameters). None: a network of one style, not chosen."""
    given = [
        option
        for option, value in (("style_name", name), ("style_index", index), ("style_mix", mix))
        if value is not None
    ]
    listing = ", ".join(f"{position} {name}" for position, name in enumerate(names))
    if len(given) > 1:
        raise StylenetError(f"choose the style in one way, not with {' and '.join(given)}")
    if not given:
        if len(names) == 1:
            return None
        raise StylenetError(
            f"this network has {len(names)} styles ({listing}): choose one with style_name=<name>, "
            f"style_index=<k> or style_mix={{name: weight, ...}}"
        )

    def position(key: object, option: str) -> int:
        if isinstance(key, int) and not isinstance(key, bool) and 0 <= key < len(names):
            return key
        if isinstance(key, str) and key in names:
            return names.index(key)
        raise StylenetError(f"{option}: no style {key!r} in this network; its styles are {listing}")

    if mix is None:
        chosen = {position(name, "style_name") if name is not None else position(index, "style_index"): 1.0}
    else:
        if not isinstance(mix, Mapping) or not mix:
            raise StylenetError(f"style_mix must be a mapping {{name: weight, ...}}, got {mix!r}")
        chosen = {}
        for key, weight in mix.items():
            if not isinstance(weight, (int, float)) or isinstance(weight, bool) or weight < 0:
                raise StylenetError(f"style_mix: the weight of {key!r} must be a number from 0, got {weight!r}")
            chosen[position(key, "style_mix")] = chosen.get(position(key, "style_mix"), 0.0) + float(weight)
        total = sum(chosen.values())
        if abs(total - 1) > 1e-6:
            raise StylenetError(f"style_mix weights must add up to 1, got {total:g}")
    weights = torch.zeros(len(names))
    for key, weight in chosen.items():
        weights[key] = weight
    return weights


def describe_styles(name: str, names: Sequence[str], weights: torch.Tensor | None) -> str:
    """'name', or for a network of several styles 'name: style' or 'name: 0.7 a + 0.3 b'."""
    if weights is None:
        return name
    parts = [(weight, names[position]) for position, weight in enumerate(weights.tolist()) if weight]
    if len(parts) == 1:
        return f"{name}: {parts[0][1]}"
    return f"{name}: " + " + ".join(f"{weight:g} {style}" for weight, style in parts)


class Stylizer:
    """A loaded network, whatever runs it (TorchStylizer here, onnx_backend.OnnxStylizer): PIL images or
    float batches in, the same out. A network of several styles runs with `weights` (see style_weights);
    select() changes them. Subclasses say how a batch runs (run, tiled) and describe themselves."""

    def __init__(
        self,
        device: torch.device,
        name: str,
        summary: dict[str, Any],
        styles: Sequence[str] | None = None,
        weights: torch.Tensor | None = None,
        working_size: int | None = None,
    ) -> None:
        self.device = device
        self.name = name  # the network's name (its file's), e.g. 'pair'; `styles` are the styles it paints
        self.styles = list(styles or [name])
        self.summary = summary
        self.weights = weights
        self.working_size = working_size

    def select(
        self, name: str | None = None, index: int | None = None, mix: Mapping[str | int, float] | None = None
    ) -> Stylizer:
        """Use another of the network's styles, or a mix of them (see style_weights); returns self."""
        self.weights = style_weights(self.styles, name, index, mix)
        return self

    @property
    def chosen(self) -> str:
        return describe_styles(self.name, self.styles, self.weights)

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
        raise NotImplementedError

    def working_shape(self, height: int, width: int, stroke_scale: float = 1.0) -> tuple[int, int]:
        """The (height, width) the network paints a picture of this size at: scaled down to the network's
        working size where it has one (the longer side it learned to paint at), times stroke_scale."""
        scale = stroke_scale
        if self.working_size is not None and max(height, width) > self.working_size:
            scale *= self.working_size / max(height, width)
        if scale == 1:
            return height, width
        return max(1, round(height * scale)), max(1, round(width * scale))

    def run(self, batch: torch.Tensor) -> torch.Tensor:
        """A float32 batch (N, 3, H, W) in [0, 1], painted at the network's working size and scaled back
        (bicubic) to its own."""
        height, width = batch.shape[-2:]
        shape = self.working_shape(height, width)
        if shape == (height, width):
            return self.paint(batch)
        small = F.interpolate(batch.float(), shape, mode="bilinear", align_corners=False, antialias=True)
        painted = self.paint(small.clamp(0, 1))
        return F.interpolate(painted, (height, width), mode="bicubic", align_corners=False).clamp(0, 1)

    def paint(self, batch: torch.Tensor) -> torch.Tensor:
        """A float32 batch (N, 3, H, W) in [0, 1] through the network as it is, whole."""
        raise NotImplementedError

    def tiled(self, image: torch.Tensor, tile: int, overlap: int) -> torch.Tensor:
        """One (1, 3, H, W) image in overlapping tiles of at most `tile` pixels a side (stylenet.inference.tiling)."""
        raise NotImplementedError


class TorchStylizer(Stylizer):
    """The network in PyTorch: no autograd, eval mode, on its device, in its precision and memory format
    (the input is converted; the output is always float32)."""

    def __init__(
        self,
        model: TransformerNet,
        device: torch.device,
        name: str,
        summary: dict[str, Any],
        dtype: torch.dtype = torch.float32,
        channels_last: bool = False,
        styles: Sequence[str] | None = None,
        weights: torch.Tensor | None = None,
    ) -> None:
        super().__init__(device, name, summary, styles, weights, model.working_size)
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.dtype = dtype
        self.model = model.to(device, dtype=dtype).to(memory_format=self.memory_format).eval().requires_grad_(False)

    def describe(self) -> str:
        layout = ", channels_last" if self.memory_format == torch.channels_last else ""
        return f"PyTorch on {self.device}, {str(self.dtype).split('.')[-1]}{layout}"

    @torch.inference_mode()
    def paint(self, batch: torch.Tensor) -> torch.Tensor:
        batch = batch.to(self.device, self.dtype).contiguous(memory_format=self.memory_format)
        if self.weights is None:
            return self.model(batch).float()
        return self.model(batch, self.weights.to(self.device, self.dtype)).float()

    @torch.inference_mode()
    def tiled(self, image: torch.Tensor, tile: int, overlap: int) -> torch.Tensor:
        return stylize_in_tiles(self.paint, self.model, image, tile, overlap)


@dataclass(frozen=True)
class PictureOptions:
    """What users tune after training, applied in this order:

    stroke_scale: run the network on the picture scaled by this factor and bring the result back to
    the picture's size (below 1: larger brush strokes, above 1: finer ones); tile_size/tile_overlap:
    a picture with a side longer than tile_size goes through the network in overlapping tiles
    (stylenet.inference.tiling), so memory stays bounded; preserve_color: keep the picture's colours, take only
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


def stylize_pictures(
    stylizer: Stylizer, pictures: list[Image.Image], options: PictureOptions = PictureOptions()
) -> list[Image.Image]:
    """Stylise several pictures: those of the same working size go through the network as one batch,
    those larger than options.tile_size in tiles."""
    contents = [picture.convert("RGB") for picture in pictures]
    works = []
    for content in contents:
        height, width = stylizer.working_shape(content.height, content.width, options.stroke_scale)
        works.append(
            content if (width, height) == content.size else content.resize((width, height), Image.Resampling.LANCZOS)
        )
    styled: dict[int, Image.Image] = {}
    same_size: dict[tuple[int, int], list[int]] = {}
    for index, work in enumerate(works):
        if options.tile_size is not None and max(work.size) > options.tile_size:
            styled[index] = tensor_to_pil(
                stylizer.tiled(pil_to_tensor(work).unsqueeze(0), options.tile_size, options.tile_overlap)
            )
        else:
            same_size.setdefault(work.size, []).append(index)
    for indices in same_size.values():
        batch = stylizer.paint(torch.stack([pil_to_tensor(works[index]) for index in indices]))
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


def stylize_picture(stylizer: Stylizer, picture: Image.Image, **options: Any) -> Image.Image:
    """One picture; options as in PictureOptions."""
    return stylize_pictures(stylizer, [picture], PictureOptions(**options))[0]
