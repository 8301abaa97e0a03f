"""Atomic file writes, for every file stylenet writes: a crash or a kill leaves the old file or the new
one, never a half-written file."""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from stylenet.common.errors import StylenetError


def unwritable(path: Path, error: BaseException) -> StylenetError:
    """One line that names the path a write failed on and why, in words a user can act on."""
    number = getattr(error, "errno", None)
    blocker = next((folder for folder in path.parents if folder.exists() and not folder.is_dir()), None)
    if blocker is not None or number in (errno.ENOTDIR, errno.EEXIST):
        reason = f"{blocker or path.parent} is a file, not a folder"
    elif path.is_dir() or number == errno.EISDIR:
        reason = "it is a folder; give a file name"
    elif number in (errno.EACCES, errno.EPERM):
        reason = "no permission to write there"
    elif number == errno.EROFS:
        reason = "the file system is read-only"
    elif number in (errno.ENOSPC, errno.EDQUOT) or _nearly_full(path):
        reason = "no space left on the device"
    else:
        reason = getattr(error, "strerror", None) or str(error)
    return StylenetError(f"cannot write {path}: {reason} (nothing was changed there)")


@contextmanager
def atomic_path(path: str | os.PathLike, durable: bool = False) -> Iterator[Path]:
    """A temporary file next to `path` for writers that want a file name (FFmpeg, ONNX): renamed over
    `path` when the block ends without an error, removed when it raises. It ends in `path`'s suffix,
    so writers that choose a format by the name choose the same one. A write that fails for the file system's
    reasons (a file where a folder should be, no permission, a full disk) is a StylenetError naming `path`; the
    file that was there stays as it was.

    durable=True also fsyncs the file and its folder, so the new contents survive a power cut.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=f".tmp{path.suffix}")
    except OSError as error:
        raise unwritable(path, error) from None
    os.fchmod(handle, 0o666 & ~_umask())  # mkstemp makes the file private; give it the usual permissions
    os.close(handle)
    temporary = Path(name)
    try:
        try:
            yield temporary
            if durable:
                _fsync(temporary, os.O_RDONLY)
            os.replace(temporary, path)
        except OSError as error:
            raise unwritable(path, error) from None
    finally:
        temporary.unlink(missing_ok=True)
    if durable:
        _fsync(path.parent, os.O_RDONLY)


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], object], durable: bool = False) -> None:
    """Call `write` on a stream to a temporary file next to `path`, then rename it over `path` (atomic_path).
    torch.save reports a failed write as a RuntimeError of its own: that too names `path`."""
    with atomic_path(path, durable=durable) as temporary:
        with open(temporary, "wb") as stream:
            try:
                write(stream)
            except RuntimeError as error:
                if "write" not in str(error).lower():
                    raise
                raise unwritable(Path(path), error) from None


def _nearly_full(path: Path) -> bool:
    try:
        return shutil.disk_usage(next(folder for folder in path.parents if folder.is_dir())).free < 1 << 20
    except (OSError, StopIteration):
        return False


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
