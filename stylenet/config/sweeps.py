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

from stylenet.common.images import labelled_sheet, read_image, save_image

log = logging.getLogger("stylenet.config.sweeps")


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
        cells = [
            (read_image(path), "  ".join(short(o) for o in overrides if o not in shared) or path.parent.name)
            for path, overrides in jobs
        ]
        columns = math.ceil(math.sqrt(len(cells)))
        sheet = labelled_sheet([cells[i : i + columns] for i in range(0, len(cells), columns)], self.cell)
        save_image(sheet, sweep_dir / "contact_sheet.png")
        log.info("contact sheet of %d results: %s", len(cells), sweep_dir / "contact_sheet.png")
