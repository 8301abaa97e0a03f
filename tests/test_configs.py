"""Every config in conf/ composes, and every variant it names builds."""

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from stylenet.config.compose import CONF_DIR
from stylenet.nets.transformer import TransformerNet
from stylenet.vgg.encoder import VGGEncoder

GROUPS = {
    group: sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml")) for group in ("style", "model", "loss", "data")
}


@pytest.mark.parametrize("group,option", [(g, o) for g, options in GROUPS.items() for o in options])
def test_train_config_composes_with_every_option(group: str, option: str) -> None:
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="train", overrides=[f"{group}={option}"], return_hydra_config=True)
    container = OmegaConf.to_container(cfg[group], resolve=False)
    if group == "model":
        TransformerNet(**container)
    if group == "loss":
        VGGEncoder(
            cfg.loss.network, [cfg.loss.content_layer, *cfg.loss.style_layers], cfg.loss.pooling, pretrained=False
        )
    if group == "style":
        assert cfg.style.name == option and "size" in cfg.style


@pytest.mark.parametrize("name", sorted(p.stem for p in CONF_DIR.glob("*.yaml")))
def test_entry_point_configs_compose(name: str) -> None:
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        compose(config_name=name)


def test_style_addresses_are_pinned_or_absent() -> None:
    # An address must be one we know to be real; we pin them to commits so they cannot drift.
    for path in (CONF_DIR / "style").glob("*.yaml"):
        image = OmegaConf.load(path).get("image")
        if isinstance(image, str) and image.startswith("http"):
            assert image.startswith("https://raw.githubusercontent.com/") and len(image.split("/")[5]) == 40, path
