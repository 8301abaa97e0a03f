"""Atomic file writes, for every file stylenet writes: a crash or a kill leaves the old file or the new
one, never a half-written file."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO


@contextmanager
def atomic_path(path: str | os.PathLike, durable: bool = False) -> Iterator[Path]:
    """A temporary file next to `path` for writers that want a file name (FFmpeg, ONNX): renamed over
    `path` when the block ends without an error, removed when it raises. It ends in `path`'s suffix,
    so writers that choose a format by the name choose the same one.

    durable=True also fsyncs the file and its folder, so the new contents survive a power cut.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=f".tmp{path.suffix}")
    os.fchmod(handle, 0o666 & ~_umask())  # mkstemp makes the file private; give it the usual permissions
    os.close(handle)
    temporary = Path(name)
    try:
        yield temporary
        if durable:
            _fsync(temporary, os.O_RDONLY)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    if durable:
        _fsync(path.parent, os.O_RDONLY)


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], object], durable: bool = False) -> None:
    """Call `write` on a stream to a temporary file next to `path`, then rename it over `path` (atomic_path)."""
    with atomic_path(path, durable=durable) as temporary:
        with open(temporary, "wb") as stream:
            write(stream)


def _fsync(path: Path, flags: int) -> None:
    descriptor = os.open(path, flags)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current
