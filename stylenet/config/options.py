"""The types and choices of every entry point's options, declared once, one schema per entry point, and
checked before anything is built: a bad value ends in one line naming the option (exit 2).

Hydra passes an override it cannot type as a string (`strength=lots`), and a YAML value may be
anything: each entry point calls check_options(cfg, "<entry>") first. The vocabularies (precisions,
health modes, ...) belong to the modules that act on them; this module only says which option takes
which.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any
from collections.abc import Mapping, Sequence

from omegaconf import DictConfig, OmegaConf

from stylenet.common.errors import EXIT_USER_ERROR, StylenetError
from stylenet.inference.onnx_backend import BACKENDS
from stylenet.common.precision import PRECISIONS



@dataclass(frozen=True)
class Whole:
    """A whole number from `least`; `auto` also accepts the word auto; `nullable` also null."""

    least: int = 1
    nullable: bool = False
    auto: bool = False

    def problem(self, value: Any) -> str | None:
        if (value is None and self.nullable) or (value == "auto" and self.auto):
            return None
        if isinstance(value, int) and not isinstance(value, bool) and value >= self.least:
            return None
        wanted = "a positive whole number" if self.least == 1 else f"{self.least} or more"
        return f"must be {'auto or ' if self.auto else ''}{wanted}, got {value}"


@dataclass(frozen=True)
class Number:
    def problem(self, value: Any) -> str | None:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        return None if ok else f"must be a number, got {value}"


@dataclass(frozen=True)
class Flag:
    def problem(self, value: Any) -> str | None:
        return None if isinstance(value, bool) else f"must be true or false, got {value}"


@dataclass(frozen=True)
class Choice:
    """One of `values`; true/false too when `flags` (e.g. compile: false, true or a mode's name); null too
    when `nullable`."""

    values: tuple[str, ...]
    flags: bool = False
    nullable: bool = False

    def problem(self, value: Any) -> str | None:
        if value in self.values and not isinstance(value, bool) or (self.flags and isinstance(value, bool)):
            return None
        if value is None and self.nullable:
            return None
        listed = ", ".join(self.values)
        return f"must be {'null, ' if self.nullable else ''}{'true, false or ' if self.flags else ''}one of {listed}, got '{value}'"


# Keys renamed since they shipped, and what to write instead: Hydra would only say the old key is unknown.
RENAMED = {"model.half_resolution": "model.downsample=2 (for true) or model.downsample=1 (for false)"}


def refuse_renamed(arguments: Sequence[str]) -> None:
    """Exit 2 with the new key's name when a command line still gives a renamed one."""
    for argument in arguments:
        key = argument.lstrip("+~").split("=", 1)[0]
        if key in RENAMED:
            print(f"error: {key} was renamed: use {RENAMED[key]}", file=sys.stderr, flush=True)
            sys.exit(EXIT_USER_ERROR)


POSITIVE, NON_NEGATIVE, WORKERS = Whole(1), Whole(0), Whole(0, auto=True)

Schema = Mapping[str, "Whole | Number | Flag | Choice"]


def schema(entry: str) -> Schema:
    """`entry`'s options and what each takes. The vocabularies are imported by the entry that needs them,
    so that checking inference's options does not load the training modules."""
    if entry == "train":
        from stylenet.training.health import MODES
        from stylenet.loss.perceptual import STYLE_LAYER_NORMS
        from stylenet.training.loop import COMPILE_MODES

        return {
            "data.image_size": POSITIVE, "data.batch_size": POSITIVE, "data.workers": WORKERS,
            "data.cache_on_device": Flag(), "style.size": POSITIVE, "log_interval": POSITIVE,
            "preview.interval": POSITIVE, "preview.count": POSITIVE, "checkpoint_interval": POSITIVE,
            "keep_checkpoints": POSITIVE, "precision": Choice(PRECISIONS), "compile": Choice(COMPILE_MODES, flags=True),
            "channels_last": Flag(), "health": Choice(MODES), "loss.style_layer_norm": Choice(STYLE_LAYER_NORMS),
            "lr": Number(), "distill.weight": Number(),
        }
    if entry == "infer":
        return {
            "backend": Choice(BACKENDS), "precision": Choice(PRECISIONS), "channels_last": Flag(),
            "batch_size": POSITIVE, "max_size": Whole(1, nullable=True), "overwrite": Flag(), "strength": Number(),
            "preserve_color": Flag(), "stroke_scale": Number(), "tile_size": Whole(1, nullable=True),
            "tile_overlap": NON_NEGATIVE, "temporal_smoothing": Number(), "video_pipeline": Flag(),
        }
    if entry == "export":
        from stylenet.inference.exported import FORMATS, QUANTIZATIONS

        return {"format": Choice(FORMATS), "tolerance": Number(), "opset": POSITIVE, "overwrite": Flag(),
                "quantize": Choice(QUANTIZATIONS, nullable=True), "int8_tolerance": Number()}
    if entry in ("optimize", "evaluate"):
        from stylenet.loss.gatys import INITS, METHODS

        if entry == "evaluate":
            return {"image_size": POSITIVE, "init": Choice(INITS)}
        return {"iterations": POSITIVE, "image_size": POSITIVE, "style.size": POSITIVE, "save_every": NON_NEGATIVE,
                "method": Choice(METHODS), "init": Choice(INITS)}
    if entry == "precompute":
        return {"data.image_size": POSITIVE, "data.workers": WORKERS, "batch_size": POSITIVE,
                "commit_interval": POSITIVE, "features": Flag()}
    if entry == "score":
        return {"size": POSITIVE}
    raise ValueError(f"no option schema for entry point '{entry}'")


def check_options(cfg: DictConfig, entry: str) -> None:
    """Refuse the first option of `entry`'s schema whose value has the wrong type or is not a choice."""
    for key, option in schema(entry).items():
        problem = option.problem(OmegaConf.select(cfg, key))
        if problem is not None:
            raise StylenetError(f"{key} {problem}")
