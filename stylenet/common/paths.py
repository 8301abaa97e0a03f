"""The user's cache folder: downloaded style images, converted VGG weights, exported ONNX files. (The
precomputed training data is another thing: `stylenet.data.precomputed`.)"""

from __future__ import annotations

import os
from pathlib import Path


def user_cache_dir() -> Path:
    """$STYLENET_CACHE, else $XDG_CACHE_HOME/stylenet, else ~/.cache/stylenet."""
    if "STYLENET_CACHE" in os.environ:
        return Path(os.environ["STYLENET_CACHE"]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")).expanduser() / "stylenet"
