"""Compose the Hydra configs in conf/ from Python, for scripts and tests that are not entry points."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, OmegaConf

from stylenet.errors import StylenetError

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"


def compose_config(name: str = "train", overrides: Sequence[str] = ()) -> DictConfig:
    """The config `python -m stylenet.<name> overrides...` would see."""
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name=name, overrides=list(overrides))


def model_config(variant: str, overrides: Sequence[str] = ()) -> dict[str, Any]:
    """TransformerNet keyword arguments of conf/model/<variant>.yaml (plus `model.` overrides)."""
    cfg = compose_config("train", [f"model={variant}", *overrides])
    return OmegaConf.to_container(cfg.model, resolve=True)  # type: ignore[return-value]


def require_whole_numbers(cfg: DictConfig, positive: Sequence[str] = (), non_negative: Sequence[str] = (),
                          nullable: Sequence[str] = ()) -> None:
    """Refuse nonsensical numbers before anything is built, naming the option (keys in `nullable` may be null)."""
    for keys, least, wanted in ((positive, 1, "a positive whole number"), (non_negative, 0, "0 or more")):
        for key in keys:
            value = OmegaConf.select(cfg, key)
            if value is None and key in nullable:
                continue
            if not isinstance(value, int) or isinstance(value, bool) or value < least:
                raise StylenetError(f"{key} must be {wanted}, got {value}")


def number_option(cfg: DictConfig, key: str) -> float:
    """A float option, or a clear error naming it (Hydra passes `strength=lots` through as a string)."""
    value = OmegaConf.select(cfg, key)
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise StylenetError(f"{key} must be a number, got {value}")
    return float(value)


def flag_option(cfg: DictConfig, key: str) -> bool:
    """A true/false option, or a clear error naming it (bool('maybe') would silently be True)."""
    value = OmegaConf.select(cfg, key)
    if not isinstance(value, bool):
        raise StylenetError(f"{key} must be true or false, got {value}")
    return value
