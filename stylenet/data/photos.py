"""Training images from any folder, and the style image from a path or an address."""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlparse

import numpy as np
import torch
from PIL import Image, ImageOps
from torch.utils.data import Dataset, Sampler

from stylenet.common.errors import StylenetError
from stylenet.common.images import (
    IMAGE_EXTENSIONS,
    UnreadableImageError,
    list_images,
    pil_to_tensor,
    read_image,
    resize_to_long_side,
    unit_float,
)
from stylenet.common.options import UNSET, at_least
from stylenet.common.paths import user_cache_dir

log = logging.getLogger(__name__)

# What a training DataLoader yields: uint8 images (N, 3, H, W), their precomputed content features or
# None (then the loss computes them), and messages about images that could not be read.
TrainingBatch = tuple[torch.Tensor, "torch.Tensor | None", list[str]]


class Photos(Protocol):
    """What training needs of a dataset of photos (ImageFolder, precomputed.CachedImages): items that start
    with a uint8 (3, H, W) crop or None where the file could not be read."""

    root: Path
    image_size: int

    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> tuple[torch.Tensor | None, Any]: ...


def center_crop_resized(image: Image.Image, size: int) -> Image.Image:
    """Scale the shorter side to `size` and cut the central size x size square (the PyTorch example's transform)."""
    return ImageOps.fit(image, (size, size), method=Image.Resampling.BILINEAR, centering=(0.5, 0.5))


def random_crop(image: Image.Image, size: int) -> Image.Image:
    """A size x size square at a random place (torch's generator: seeded per DataLoader worker)."""
    left = int(torch.randint(0, image.width - size + 1, ()))
    top = int(torch.randint(0, image.height - size + 1, ()))
    return image.crop((left, top, left + size, top + size))


class ImageFolder(Dataset):
    """Every image below `root` (recursive), as uint8 tensors (3, size, size).

    photo_size: scale each photo's shorter side to this and cut a random image_size square from it, so
    that a network learns to paint photos at that scale for the cost of small crops; None: the central
    square of the photo scaled to image_size.
    An unreadable file yields None and its message instead of raising, so that one corrupt COCO
    file does not end a run of hours; `collate_skipping_unreadable` drops it from the batch.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        image_size: int,
        files: Sequence[str] | None = None,
        photo_size: int | None = None,
    ) -> None:
        self.root = Path(root).expanduser()
        if not self.root.is_dir():
            raise StylenetError(
                f"training image folder not found: {self.root} (set data.root=/path/to/images; "
                f"for COCO: python scripts/download_coco.py --dest data/coco)"
            )
        # `files` (relative to root) pins the order, e.g. to a cache manifest's list; default: list the folder.
        self.files = [self.root / name for name in files] if files is not None else list_images(self.root)
        if not self.files:
            raise StylenetError(
                f"no training images in {self.root}: expected files ending in {', '.join(IMAGE_EXTENSIONS)}"
            )
        self.image_size = int(image_size)
        self.photo_size = photo_size

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> tuple[torch.Tensor | None, str]:
        try:
            image = read_image(self.files[index])
            if self.photo_size is None:
                image = center_crop_resized(image, self.image_size)
            else:
                image = random_crop(
                    ImageOps.cover(image, (self.photo_size, self.photo_size), Image.Resampling.BILINEAR),
                    self.image_size,
                )
        except UnreadableImageError as error:
            return None, str(error)
        return torch.from_numpy(np.asarray(image, dtype=np.uint8).copy()).permute(2, 0, 1), ""


class EpochSampler(Sampler[int]):
    """A new random order each epoch, drawn from (seed, epoch) alone, that can start mid-epoch.

    Resuming therefore needs only (epoch, offset), never a generator's state, and gives exactly
    the batches an uninterrupted run would have seen. With `world` > 1 (distributed training) each
    global batch of batch_size x world items of that order is split between the ranks, rank r
    taking the r-th slice, and an epoch's incomplete last global batch is dropped so that every
    rank takes every step; `offset` always counts items of the global order.
    """

    def __init__(self, num_items: int, seed: int, rank: int = 0, world: int = 1, batch_size: int = 1) -> None:
        self.num_items, self.seed = num_items, int(seed)
        self.rank, self.world, self.batch_size = rank, world, batch_size
        self.epoch, self.offset = 0, 0

    @property
    def epoch_length(self) -> int:
        """Items of the global order an epoch uses."""
        if self.world == 1:
            return self.num_items
        whole = self.batch_size * self.world
        return self.num_items // whole * whole

    def set_position(self, epoch: int, offset: int) -> None:
        """Start the next iteration at `offset` items into epoch `epoch`."""
        self.epoch, self.offset = epoch, offset

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        order = torch.randperm(self.num_items, generator=generator)[self.offset : self.epoch_length]
        if self.world > 1:
            order = order.view(-1, self.world, self.batch_size)[:, self.rank].flatten()
        return iter(order.tolist())

    def __len__(self) -> int:
        return (self.epoch_length - self.offset) // self.world


def readable_batch(dataset: Photos, limit: int | None = None) -> torch.Tensor:
    """The first `limit` (default: all) readable images of `dataset` as one float batch in [0, 1].

    Works with any dataset whose items start with a uint8 image or None (ImageFolder, cache.CachedImages).
    """
    images = []
    for index in range(len(dataset)):
        image = dataset[index][0]
        if image is not None:
            images.append(unit_float(image))
        if len(images) == limit:
            break
    if not images:
        raise StylenetError(f"none of the {len(dataset)} images in {dataset.root} could be read")
    return torch.stack(images)


def collate_skipping_unreadable(samples: Sequence[tuple[torch.Tensor | None, str]]) -> TrainingBatch:
    """Stack the readable images; pass the messages of unreadable ones on to the training loop to report."""
    images = [image for image, _ in samples if image is not None]
    problems = [problem for image, problem in samples if image is None]
    batch = torch.stack(images) if images else torch.empty(0, dtype=torch.uint8)
    return batch, None, problems


def cached_name(address: str) -> str:
    """The cache file of a downloaded style image: keyed on the whole address (two addresses that end in the
    same file name are two files), with the address's file name kept for people and for the image type."""
    key = hashlib.sha256(address.encode()).hexdigest()[:16]
    name = Path(urlparse(address).path).name
    return f"{key}-{name}" if name else key


def resolve_style_image(name: str, image: str | None) -> Path:
    """A local path as given; an http(s) address downloaded once into the cache folder."""
    if not image:
        raise StylenetError(
            f"style '{name}' has no image: pass style.image=/path/to/painting.jpg "
            f"(or style=custom style.image=... style.name=my_style)"
        )
    if urlparse(str(image)).scheme not in ("http", "https"):
        return Path(image).expanduser()
    target = user_cache_dir() / "styles" / cached_name(str(image))
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        log.info("downloading style image %s to %s", image, target)
        try:
            torch.hub.download_url_to_file(image, str(target), progress=True)
        except (OSError, RuntimeError) as error:
            raise StylenetError(
                f"could not download the '{name}' style image from {image} ({error}); "
                f"download it yourself and pass style.image=/path/to/{Path(urlparse(image).path).name or 'image.jpg'}"
            ) from None
    return target


def read_scaled(path: str | os.PathLike, size: int, what: str) -> torch.Tensor:
    """An image file as a float tensor (3, H, W) in [0, 1], its longer side scaled to `size`; a file
    that cannot be read is a StylenetError that says which image (`what`) it was meant to be."""
    try:
        picture = read_image(Path(path).expanduser())
    except UnreadableImageError as error:
        raise StylenetError(f"{what}: {error}") from None
    return pil_to_tensor(resize_to_long_side(picture, int(size)))


def load_style_image(name: str, image: str | None, size: int) -> torch.Tensor:
    """The style image as a float tensor (3, H, W) in [0, 1], its longer side scaled to `size`."""
    return read_scaled(resolve_style_image(name, image), size, f"style image for '{name}'")


@dataclass
class StyleOptions:
    """conf/style/<name>.yaml: one `image`, or several `images` for a multi-style network, either a list of
    paths or addresses (each named after its file) or a mapping from names to paths, addresses or style
    configs (a named set such as classics.yaml); `size` is each image's longer side. `sizes`, when set, replaces
    `size`: each painting at every one of these longer sides at once, strokes of every size between."""

    name: str = UNSET
    size: int = UNSET
    image: str | None = None
    images: Any = None
    sizes: list[int] | None = None

    def __post_init__(self) -> None:
        at_least("style.size", self.size)
        if self.sizes is not None:
            if not len(self.sizes):
                raise StylenetError("style.sizes must list at least one size, or be null (style.size alone)")
            for size in self.sizes:
                at_least("style.sizes", size)

    @classmethod
    def recorded(cls, options: Mapping[str, Any]) -> StyleOptions:
        """The style options a network file records (summary["config"]["style"])."""
        sizes = options.get("sizes")
        return cls(
            str(options["name"]),
            int(options["size"]),
            options.get("image"),
            options.get("images"),
            [int(size) for size in sizes] if sizes else None,
        )

    def entries(self) -> list[tuple[str, str | None, int]]:
        """(name, image, size) of each style image."""
        images = self.images
        if images is None:
            return [(str(self.name), self.image, self.size)]
        if isinstance(images, str) or not len(images):
            raise StylenetError(f"style.images must be a list or mapping of style images, got {images!r}")
        if isinstance(images, Mapping):
            entries = []
            for name, entry in images.items():
                if isinstance(entry, Mapping):
                    entries.append(
                        (str(entry.get("name", name)), entry.get("image"), int(entry.get("size", self.size)))
                    )
                else:
                    entries.append((str(name), entry, self.size))
        else:
            entries = [(Path(urlparse(str(image)).path).stem, image, self.size) for image in images]
        names = [name for name, _, _ in entries]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise StylenetError(
                f"style.images names {', '.join(repeated)} more than once: name each style with a "
                f"mapping, style.images={{name: path, ...}}"
            )
        return entries


@dataclass
class DataOptions:
    """conf/data/<name>.yaml: the training photos (a folder, or a cache made by precompute), the crop size and
    the global batch."""

    root: str | None = UNSET
    image_size: int = UNSET
    batch_size: int = UNSET
    workers: Any = UNSET  # a whole number or auto
    cache: str | None = None
    cache_on_device: bool = False
    photo_size: int | None = None

    def __post_init__(self) -> None:
        at_least("data.image_size", self.image_size)
        if self.photo_size is not None:
            at_least("data.photo_size", self.photo_size, self.image_size)
            if self.cache:
                raise StylenetError(
                    "data.photo_size cuts random crops from the photos themselves: it cannot read a precomputed "
                    "cache (set data.cache=null, or data.photo_size=null)"
                )
        at_least("data.batch_size", self.batch_size)
        at_least("data.workers", self.workers, 0, auto=True)


def load_painting(style: StyleOptions, name: str, image: str | None, size: int) -> list[torch.Tensor]:
    """One style image (an entry of `style`, `size` its own longer side) at each size it is trained against:
    style.sizes when set, else `size` alone."""
    return [load_style_image(name, image, each) for each in (style.sizes or [size])]


def load_style_images(style: StyleOptions) -> tuple[list[str], list[list[torch.Tensor]]]:
    """The names of every style and its image (float (3, H, W) in [0, 1]) at each size it is trained against."""
    entries = style.entries()
    return [name for name, _, _ in entries], [load_painting(style, *entry) for entry in entries]
