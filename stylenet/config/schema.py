"""Every entry point's options, typed, in one place: one dataclass per entry point, registered with Hydra's
ConfigStore as the base of conf/<entry>.yaml. The YAML files hold the defaults users edit; these classes say
what each option takes. Hydra checks the types while it composes (`strength=lots` ends there), `__post_init__`
checks what a type cannot say (a positive size, one of a few words) when the entry point turns its config into
these objects with `typed`, once; from there on the library gets plain, typed values.

The groups are the library's own option classes (StyleOptions, DataOptions, LossOptions, VGGOptions), so a
loss or a style is described by the code that uses it. The vocabularies (precisions, health modes, ...) are
imported where a check needs them, so that checking inference's options does not load the training modules.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, is_dataclass
from typing import Any, TypeVar, get_type_hints

from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import MissingMandatoryValue

from stylenet.common.errors import StylenetError
from stylenet.common.options import UNSET, at_least, one_of
from stylenet.common.precision import PRECISIONS
from stylenet.data.photos import DataOptions, StyleOptions
from stylenet.loss.perceptual import LossOptions
from stylenet.vgg.encoder import VGGOptions

Config = TypeVar("Config")


@dataclass
class ModelOptions:
    """conf/model/<variant>.yaml: TransformerNet's arguments (its constructor checks their values)."""

    channels: list[int] = UNSET
    num_residual_blocks: int = UNSET
    norm: str = UNSET
    separable: bool = UNSET
    downsample: int = UNSET
    detail_skip: bool = UNSET
    width_multiplier: float = UNSET
    num_styles: int | None = None
    upsampling: str = UNSET
    working_size: int | None = None
    decoder_upsampling: str = "nearest"


@dataclass
class Preview:
    images: list[str] = field(default_factory=list)
    count: int = UNSET
    interval: int = UNSET

    def __post_init__(self) -> None:
        at_least("preview.count", self.count)
        at_least("preview.interval", self.interval)


@dataclass
class Distill:
    teacher: str | None = None
    weight: float = UNSET


@dataclass
class TrainConfig:
    style: StyleOptions = UNSET
    model: ModelOptions = UNSET
    loss: LossOptions = UNSET
    data: DataOptions = UNSET
    steps: int = UNSET
    epochs: int | None = None
    max_minutes: float | None = None
    lr: float = UNSET
    seed: int = UNSET
    device: str = UNSET
    precision: str = UNSET
    channels_last: bool = UNSET
    compile: Any = UNSET  # false, true or a mode's name
    health: str = UNSET
    log_interval: int = UNSET
    checkpoint_interval: int = UNSET
    keep_checkpoints: int = UNSET
    resume: str | None = None
    checkpoint_dir: str = UNSET
    add_style_to: str | None = None
    init: str | None = None
    distill: Distill = UNSET
    preview: Preview = UNSET
    optimizer: Any = UNSET  # {_target_: an optimiser class, its arguments}

    def __post_init__(self) -> None:
        from stylenet.training.health import MODES
        from stylenet.training.setup import COMPILE_MODES

        one_of("precision", self.precision, PRECISIONS)
        one_of("health", self.health, MODES)
        if not isinstance(self.compile, bool) and self.compile not in COMPILE_MODES:
            raise StylenetError(
                f"compile must be true, false or one of {', '.join(COMPILE_MODES)}, got '{self.compile}'"
            )
        for name in ("log_interval", "checkpoint_interval", "keep_checkpoints"):
            at_least(name, getattr(self, name))
        if self.max_minutes is not None and not self.max_minutes > 0:
            raise StylenetError(f"max_minutes must be a positive number of minutes or null, got {self.max_minutes}")

    def hyperparameters(self, choices: Mapping[str, Any]) -> dict[str, Any]:
        """What TensorBoard's HParams tab compares runs by: the config group choices (Hydra's `choices`) and
        the numbers people tune."""
        return {
            "style": self.style.name,
            "model": choices.get("model"),
            "loss": choices.get("loss"),
            "content_layer": self.loss.content_layer,
            "content_weight": self.loss.content_weight,
            "style_weight": self.loss.style_weight,
            "tv_weight": self.loss.tv_weight,
            "style_layer_norm": self.loss.style_layer_norm,
            "lr": self.lr,
            "batch_size": self.data.batch_size,
            "image_size": self.data.image_size,
            "style_size": self.style.size,
            "seed": self.seed,
            "add_style_to": str(self.add_style_to),
            "optimizer": str(self.optimizer["_target_"]),
        }


@dataclass
class InferConfig:
    checkpoint: str = UNSET
    input: str = UNSET
    output: str = UNSET
    max_size: int | None = None
    stroke_scale: float = UNSET
    preserve_color: bool = UNSET
    strength: float = UNSET
    tile_size: int | None = None
    tile_overlap: int = UNSET
    batch_size: int = UNSET
    temporal_smoothing: float = UNSET
    video_pipeline: bool = UNSET
    style_name: str | None = None
    style_index: int | None = None
    style_mix: Any = None  # {name or index: weight}
    backend: str = UNSET
    device: str = UNSET
    precision: str = UNSET
    channels_last: bool = UNSET
    overwrite: bool = UNSET

    def __post_init__(self) -> None:
        from stylenet.inference.loading import BACKENDS

        one_of("backend", self.backend, BACKENDS)
        one_of("precision", self.precision, PRECISIONS)
        at_least("batch_size", self.batch_size)
        at_least("max_size", self.max_size)
        at_least("tile_size", self.tile_size)
        at_least("tile_overlap", self.tile_overlap, 0)


@dataclass
class ExportConfig:
    checkpoint: str = UNSET
    format: str = UNSET
    output: str = UNSET
    opset: int = UNSET
    check_size: list[int] = UNSET
    tolerance: float = UNSET
    overwrite: bool = UNSET
    quantize: str | None = None
    calibration: str | None = None
    int8_tolerance: float = UNSET

    def __post_init__(self) -> None:
        from stylenet.inference.exported import FORMATS, MIN_EXPORTED_SIZE, QUANTIZATIONS

        one_of("format", self.format, FORMATS)
        one_of("quantize", self.quantize, QUANTIZATIONS, nullable=True)
        at_least("opset", self.opset)
        if len(self.check_size) != 2 or min(self.check_size) < MIN_EXPORTED_SIZE:
            raise StylenetError(
                f"check_size must be [height, width], each at least {MIN_EXPORTED_SIZE}, got {list(self.check_size)}"
            )


@dataclass
class OptimizeConfig:
    style: StyleOptions = UNSET
    loss: LossOptions = UNSET
    content: str = UNSET
    output: str | None = None
    iterations: int = UNSET
    method: str = UNSET
    lr: float | None = None
    init: str = UNSET
    image_size: int = UNSET
    save_every: int = UNSET
    device: str = UNSET
    seed: int = UNSET

    def __post_init__(self) -> None:
        from stylenet.loss.gatys import INITS, METHODS

        one_of("method", self.method, METHODS)
        one_of("init", self.init, INITS)
        at_least("iterations", self.iterations)
        at_least("image_size", self.image_size)
        at_least("save_every", self.save_every, 0)


@dataclass
class RecordedVGG:
    """evaluate's loss: where this machine keeps the VGG weights; null keeps what the network file records."""

    pretrained: bool | None = None
    weights: str | None = None


@dataclass
class EvaluateConfig:
    checkpoint: Any = UNSET  # one inference file, or a list of them
    photos: str = UNSET
    output: str | None = None
    image_size: int = UNSET
    iterations: list[int] = UNSET
    init: str = UNSET
    style_image: str | None = None
    style_name: str | None = None
    style_index: int | None = None
    loss: RecordedVGG = field(default_factory=RecordedVGG)
    device: str = UNSET
    seed: int = UNSET

    def __post_init__(self) -> None:
        from stylenet.loss.gatys import INITS

        if not self.iterations or min(self.iterations) < 1:
            raise StylenetError(f"iterations must be positive whole numbers, got {list(self.iterations)}")
        one_of("init", self.init, INITS)
        at_least("image_size", self.image_size)


@dataclass
class PrecomputeConfig:
    loss: LossOptions = UNSET
    data: DataOptions = UNSET
    features: bool = UNSET
    batch_size: int = UNSET
    commit_interval: int = UNSET
    device: str = UNSET
    amp: bool = UNSET
    seed: int = UNSET

    def __post_init__(self) -> None:
        at_least("batch_size", self.batch_size)
        at_least("commit_interval", self.commit_interval)


@dataclass
class ScoreConfig:
    photos: str = UNSET
    style_image: str = UNSET
    checkpoint: list[str] = field(default_factory=list)
    pictures: list[str] = field(default_factory=list)
    size: int = UNSET
    paint_size: int | None = None
    output: str | None = None
    vgg: VGGOptions = UNSET
    device: str = UNSET

    def __post_init__(self) -> None:
        at_least("size", self.size)
        at_least("paint_size", self.paint_size)


SCHEMAS = {
    "train": TrainConfig,
    "infer": InferConfig,
    "export": ExportConfig,
    "optimize": OptimizeConfig,
    "evaluate": EvaluateConfig,
    "precompute": PrecomputeConfig,
    "score": ScoreConfig,
}
for _entry, _schema in SCHEMAS.items():
    ConfigStore.instance().store(name=f"{_entry}_schema", node=_schema)


def unknown_keys(given: Any, schema: type, prefix: str = "") -> list[str]:
    """Keys of `given` (plain nested dicts) that `schema` has no field for: Hydra lets `+key=value` add them, and
    a misspelt option must not be ignored in silence."""
    if not isinstance(given, dict):
        return []
    hints = get_type_hints(schema)
    found = []
    for key, value in given.items():
        if key not in hints:
            found.append(f"{prefix}{key}")
        elif is_dataclass(hints[key]):
            found += unknown_keys(value, hints[key], f"{prefix}{key}.")
    return found


def typed(cfg: DictConfig, schema: type[Config]) -> Config:
    """The composed config as its entry point's dataclass: every value resolved, every range and choice checked."""
    unknown = unknown_keys(OmegaConf.to_container(cfg, resolve=False), schema)
    if unknown:
        raise StylenetError(f"{', '.join(unknown)}: no such option (see conf/ or README for the options there are)")
    try:
        options = OmegaConf.to_object(cfg)
    except MissingMandatoryValue as error:
        raise StylenetError(f"missing required option '{error.full_key}': pass it as {error.full_key}=...") from None
    if not isinstance(options, schema):
        raise TypeError(
            f"conf/ composed {type(options).__name__}, not {schema.__name__}: its defaults must name the schema first"
        )
    return options
