"""The one place where files become tensors and tensors become files.

Inside the package every image is float RGB in [0, 1], shape (3, H, W) or (N, 3, H, W).
"""

from __future__ import annotations

import math
import os
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont, ImageOps, UnidentifiedImageError

from stylenet.common.atomic import atomic_write
from stylenet.common.errors import StylenetError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif")  # a GIF is read as its first frame here


class UnreadableImageError(StylenetError):
    """A file that is not an image, or whose bytes are corrupt or truncated."""


def is_image_file(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS


def list_images(root: Path) -> list[Path]:
    """All image files below root, recursively, in a stable (sorted) order."""
    return sorted(p for p in Path(root).rglob("*") if p.is_file() and is_image_file(p))


def to_rgb(image: Image.Image) -> Image.Image:
    """Convert any Pillow mode (L, LA, P, CMYK, RGBA, I;16, I, F) to 8-bit RGB."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16-bit greyscale: scale to 8 bits instead of letting Pillow clip at 255.
        array = np.asarray(image, dtype=np.float64)
        peak = 65535.0 if image.mode.startswith("I;16") or array.max() > 255 else 255.0
        image = Image.fromarray(np.clip(array / peak * 255.0 + 0.5, 0, 255).astype(np.uint8))
    elif image.mode == "F":
        image = Image.fromarray(np.clip(np.asarray(image) * 255.0 + 0.5, 0, 255).astype(np.uint8))
    if has_alpha(image):
        # Flatten transparency onto white, the usual background of such artwork.
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, rgba)
    return image.convert("RGB")


def has_alpha(image: Image.Image) -> bool:
    return image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info)


def read_image(path: str | os.PathLike) -> Image.Image:
    """Decode an image file fully, apply its EXIF orientation and return it as RGB.

    Raises UnreadableImageError naming the file for anything that is not a readable image.
    """
    return read_image_and_alpha(path)[0]


def read_image_and_alpha(path: str | os.PathLike) -> tuple[Image.Image, Image.Image | None]:
    """read_image, plus the image's alpha channel (mode L) when it has one, for outputs that keep it."""
    path = Path(path)
    try:
        with warnings.catch_warnings():
            # Pillow refuses images over about 179 megapixels (decompression bombs) and only warns
            # above half that; treat the warning as a refusal too rather than decoding the file.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                image.load()
                oriented = ImageOps.exif_transpose(image)
                alpha = oriented.convert("RGBA").getchannel("A") if has_alpha(oriented) else None
                return to_rgb(oriented), alpha
    except FileNotFoundError:
        raise UnreadableImageError(f"image not found: {path}") from None
    except IsADirectoryError:
        raise UnreadableImageError(f"expected an image file, got a folder: {path}") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise UnreadableImageError(f"refused {path}: {error}") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise UnreadableImageError(f"cannot read image {path}: {error}") from None


def unit_float(pixels: torch.Tensor) -> torch.Tensor:
    """8-bit pixels (any shape, any device) -> float32 in [0, 1]: the one place this scale is written."""
    return pixels.to(torch.float32).div_(255.0)


def pil_to_tensor(image: Image.Image) -> torch.Tensor:
    """RGB PIL image -> float tensor (3, H, W) in [0, 1]."""
    array = np.asarray(image.convert("RGB"), dtype=np.uint8)
    return unit_float(torch.from_numpy(array.copy()).permute(2, 0, 1))


def tensor_to_pil(tensor: torch.Tensor) -> Image.Image:
    """Float tensor (3, H, W) or (1, 3, H, W) in [0, 1] -> 8-bit RGB PIL image (rounded, clamped)."""
    if tensor.dim() == 4:
        if tensor.shape[0] != 1:
            raise ValueError(f"expected one image, got a batch of {tensor.shape[0]}")
        tensor = tensor[0]
    levels = (
        tensor.detach().float().mul(255.0).clamp_(0, 255).round_().to(torch.uint8)
    )  # one new tensor, then in place: half the time of four
    return Image.fromarray(levels.permute(1, 2, 0).contiguous().cpu().numpy(), mode="RGB")


def image_grid(images: torch.Tensor, columns: int, padding: int = 2, pad_value: float = 1.0) -> torch.Tensor:
    """(N, C, H, W) images as one (C, H', W') picture, `columns` per row, `padding` pixels between and around
    them (torchvision's make_grid layout; torchvision itself takes seconds to import)."""
    count, channels, height, width = images.shape
    columns = min(columns, count)
    rows = math.ceil(count / columns)
    grid = images.new_full(
        (channels, rows * (height + padding) + padding, columns * (width + padding) + padding), pad_value
    )
    for index, image in enumerate(images):
        row, column = divmod(index, columns)
        top, left = padding + row * (height + padding), padding + column * (width + padding)
        grid[:, top : top + height, left : left + width] = image
    return grid


def labelled_sheet(rows: list[list[tuple[Image.Image, str]]], cell: int, label_height: int = 18) -> Image.Image:
    """Rows of (picture, label) for people to compare: each picture fitted into a cell x cell square, its label
    below in Pillow's TrueType default face (its 10 px bitmap font loses the dots of 'loss.style_weight')."""
    columns = max(len(row) for row in rows)
    canvas = Image.new("RGB", (columns * cell, len(rows) * (cell + label_height)), "white")
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default(size=label_height - 5)
    for r, row in enumerate(rows):
        for c, (picture, label) in enumerate(row):
            thumbnail = resize_to_long_side(picture, cell - 4)
            x, y = c * cell, r * (cell + label_height)
            canvas.paste(thumbnail, (x + (cell - thumbnail.width) // 2, y + (cell - thumbnail.height) // 2))
            draw.text((x + 4, y + cell + 2), label, fill="black", font=font)
    return canvas


def save_image(image: Image.Image | torch.Tensor, path: str | os.PathLike) -> None:
    """Write an 8-bit image, format chosen by the extension, atomically (never a half-written file)."""
    path = Path(path)
    if not is_image_file(path):
        raise StylenetError(
            f"unsupported output extension '{path.suffix}' for {path}; use one of {', '.join(IMAGE_EXTENSIONS)}"
        )
    if isinstance(image, torch.Tensor):
        image = tensor_to_pil(image)
    image_format = Image.registered_extensions()[path.suffix.lower()]
    options = {"quality": 95} if image_format in ("JPEG", "WEBP") else {}
    atomic_write(path, lambda stream: image.save(stream, format=image_format, **options))


def resize_to_long_side(image: Image.Image, size: int) -> Image.Image:
    """Scale so that the longer side is `size` pixels, keeping the aspect ratio."""
    scale = size / max(image.size)
    if scale == 1:
        return image
    width, height = (max(1, round(side * scale)) for side in image.size)
    return image.resize((width, height), Image.Resampling.LANCZOS)


def keep_colours(styled: Image.Image, content: Image.Image) -> Image.Image:
    """The styled image's luminance with the content's chroma (YCbCr), so that only the style's
    strokes and textures carry over, not its palette (Gatys et al. 2016, "Preserving colour")."""
    luminance = styled.convert("YCbCr").getchannel("Y")
    _, blue, red = content.convert("YCbCr").split()
    return Image.merge("YCbCr", (luminance, blue, red)).convert("RGB")
