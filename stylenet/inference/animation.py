"""Animated GIFs: every frame stylised and written back as an animated GIF with the same frame
durations and loop setting. A GIF of one frame is an ordinary image (images.py reads it)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from PIL import Image, ImageSequence

from stylenet.common.atomic import atomic_write
from stylenet.common.images import UnreadableImageError, to_rgb

DEFAULT_DURATION_MS = 100  # what browsers show for a frame that states no duration


def is_animated(path: str | os.PathLike) -> bool:
    """A GIF of more than one frame (False for anything unreadable: the still-image path reports it)."""
    if Path(path).suffix.lower() != ".gif":
        return False
    try:
        with Image.open(path) as image:
            return bool(getattr(image, "is_animated", False))
    except (OSError, SyntaxError, ValueError):
        return False


def read_animation(path: str | os.PathLike) -> tuple[list[Image.Image], list[int], int | None]:
    """Every frame as a whole RGB picture (earlier frames composited in, as a viewer shows it), each
    frame's duration in milliseconds, and the loop count (None: the file plays once)."""
    try:
        with Image.open(path) as image:
            loop = image.info.get("loop")
            frames, durations = [], []
            for frame in ImageSequence.Iterator(image):
                durations.append(int(frame.info.get("duration") or DEFAULT_DURATION_MS))
                frames.append(to_rgb(frame.copy()))
    except (OSError, SyntaxError, ValueError) as error:
        raise UnreadableImageError(f"cannot read animated GIF {path}: {error}") from None
    return frames, durations, loop


def save_animation(frames: list[Image.Image], durations: list[int], loop: int | None, path: str | os.PathLike) -> None:
    """Write an animated GIF atomically; `loop` None writes no loop block, so it plays once like its source."""
    options: dict[str, Any] = {"save_all": True, "append_images": frames[1:], "duration": durations}
    if loop is not None:
        options["loop"] = loop
    atomic_write(path, lambda stream: frames[0].save(stream, format="GIF", **options))
