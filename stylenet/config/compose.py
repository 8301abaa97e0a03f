"""Compose the Hydra configs in conf/ from Python, for scripts and tests that are not entry points."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, OmegaConf

from stylenet.config import schema  # noqa: F401  (registers each entry point's schema, the base of its YAML)

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"


def compose_config(name: str = "train", overrides: Sequence[str] = ()) -> DictConfig:
    """The config `python -m stylenet.<name> overrides...` would see."""
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name=name, overrides=list(overrides))


def compose_options(name: str = "train", overrides: Sequence[str] = ()) -> Any:
    """The typed options `python -m stylenet.<name> overrides...` would run with (stylenet.config.schema)."""
    return schema.typed(compose_config(name, overrides), schema.SCHEMAS[name])


def model_config(variant: str, overrides: Sequence[str] = ()) -> dict[str, Any]:
    """TransformerNet keyword arguments of conf/model/<variant>.yaml (plus `model.` overrides)."""
    cfg = compose_config("train", [f"model={variant}", *overrides])
    return OmegaConf.to_container(cfg.model, resolve=True)  # type: ignore[return-value]
