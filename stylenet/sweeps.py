"""What a Hydra sweep (`-m`) of an entry point leaves behind besides its jobs: a contact sheet of their results.

Named from conf/optimize.yaml (hydra.callbacks), so Hydra imports it by its dotted path; it lives
here rather than in the entry point, which nothing may import.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import yaml
from hydra.experimental.callback import Callback
from omegaconf import DictConfig
from PIL import Image, ImageDraw, ImageFont

from stylenet.images import read_image, resize_to_long_side, save_image

log = logging.getLogger("stylenet.sweeps")


def short(override: str) -> str:
    """'loss.style_weight=10000000000.0' -> 'loss.style_weight=1e+10': labels that fit under a picture."""
    key, _, value = override.partition("=")
    try:
        return f"{key}={float(value):g}"
    except ValueError:
        return override


class ContactSheet(Callback):
    """After a sweep (python -m stylenet.optimize -m ...): every job's result on one sheet, labelled
    with the overrides that differ between jobs, in <sweep dir>/contact_sheet.png."""

    def __init__(self, cell: int = 256) -> None:
        self.cell = cell

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        jobs = []
        for result in sorted(sweep_dir.glob("*/result.png"), key=lambda path: path.parent.name):
            overrides_file = result.parent / ".hydra" / "overrides.yaml"
            overrides = yaml.safe_load(overrides_file.read_text()) if overrides_file.exists() else []
            jobs.append((result, overrides))
        if not jobs:
            return
        shared = set.intersection(*(set(overrides) for _, overrides in jobs))
        cells = [(read_image(path), "  ".join(short(o) for o in overrides if o not in shared) or path.parent.name)
                 for path, overrides in jobs]
        sheet = self.compose(cells)
        save_image(sheet, sweep_dir / "contact_sheet.png")
        log.info("contact sheet of %d results: %s", len(cells), sweep_dir / "contact_sheet.png")

    def compose(self, cells: list[tuple[Image.Image, str]]) -> Image.Image:
        label_height = 18
        columns = math.ceil(math.sqrt(len(cells)))
        rows = math.ceil(len(cells) / columns)
        sheet = Image.new("RGB", (columns * self.cell, rows * (self.cell + label_height)), "white")
        draw = ImageDraw.Draw(sheet)
        font = ImageFont.load_default(size=13)  # Pillow's own TrueType face (the 10 px bitmap font lost the dots)
        for index, (picture, label) in enumerate(cells):
            x, y = (index % columns) * self.cell, (index // columns) * (self.cell + label_height)
            thumbnail = resize_to_long_side(picture, self.cell)
            sheet.paste(thumbnail, (x + (self.cell - thumbnail.width) // 2, y + (self.cell - thumbnail.height) // 2))
            draw.text((x + 4, y + self.cell + 2), label, fill="black", font=font)
        return sheet
