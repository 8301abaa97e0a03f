"""python -m stylenet.score: how stylised each method's pictures of the same photos are, and how much of
the photos they keep, on one scale that no training loss's weights enter (stylenet.loss.scores.PictureScorer).

Methods: trained networks (`checkpoint=[...]`, run here on each photo) and folders of finished pictures
(`pictures=[...]`: the optimisation's, another tool's), one per photo with the photo's file stem. The photo
itself is scored too, as the method that changes nothing.
"""

from __future__ import annotations

import logging
import statistics
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from stylenet.common.atomic import atomic_write
from stylenet.common.errors import StylenetError, exits_cleanly
from stylenet.common.images import list_images
from stylenet.common.options import all_different
from stylenet.common.runtime import pick_device
from stylenet.config import cli
from stylenet.config.schema import ScoreConfig, typed
from stylenet.data.photos import read_scaled
from stylenet.inference.loading import load
from stylenet.loss.scores import MEASURE_LAYERS, SCORES, PictureScorer

log = logging.getLogger("stylenet.score")


def picture_for(folder: Path, stem: str) -> Path:
    found = [path for path in list_images(folder) if path.stem == stem]
    if not found:
        raise StylenetError(f"pictures: {folder} has no picture of photo '{stem}' (expected {stem}.png, .jpg, ...)")
    return found[0]


@hydra.main(version_base="1.3", config_path="conf", config_name="score")
@exits_cleanly
def main(config: DictConfig) -> None:
    cfg = typed(config, ScoreConfig)
    device = pick_device(cfg.device)
    photos = list_images(Path(cfg.photos)) if Path(cfg.photos).is_dir() else []
    if not photos:
        raise StylenetError(f"photos: no images in {cfg.photos}")
    folders = [Path(str(folder)) for folder in cfg.pictures]
    for folder in folders:
        if not folder.is_dir():
            raise StylenetError(f"pictures: {folder} is not a folder")
    networks = {str(name): load(str(name), device=str(device), precision="fp32") for name in cfg.checkpoint}
    labels = ["photo", *networks, *map(str, folders)]
    all_different(labels, "a method is given twice")
    scorer = PictureScorer(
        cfg.vgg.encoder(MEASURE_LAYERS).to(device), read_scaled(cfg.style_image, cfg.size, "style_image").to(device)
    )

    rows: list[tuple[str, str, dict[str, float]]] = []
    for path in photos:
        photo = read_scaled(path, cfg.size, "photo").unsqueeze(0).to(device)
        pictures = {"photo": photo}
        painted_from = read_scaled(path, cfg.paint_size, "photo").unsqueeze(0).to(device) if cfg.paint_size else photo
        # PictureScorer.score brings a picture made at paint_size to the photo's size itself.
        pictures.update({label: network(painted_from) for label, network in networks.items()})
        pictures.update(
            {
                str(folder): read_scaled(picture_for(folder, path.stem), cfg.size, "picture").unsqueeze(0).to(device)
                for folder in folders
            }
        )
        for label, picture in pictures.items():
            rows.append((label, path.stem, scorer.score(picture, photo)))
        log.info(
            "%s: %s",
            path.name,
            ", ".join(
                f"{label} style {scores['style']:.3f} edges {scores['edges']:.3f}"
                for label, stem, scores in rows[-len(pictures) :]
            ),
        )

    output = Path(cfg.output) if cfg.output else Path(HydraConfig.get().runtime.output_dir)
    lines = [
        f"Picture scores on {len(photos)} photos from {cfg.photos} at {cfg.size} px"
        f"{f' (the networks painted them at {cfg.paint_size} px)' if cfg.paint_size else ''}, style {cfg.style_image} "
        f"(VGG weights {scorer.encoder.weights_id}); means over the photos. style: lower is more stylised (1 = the "
        f"photo's own distance); layout, edges: higher keeps more of the photo; sharpness: 1 = as crisp as the "
        f"photo; repetition: high = a repeated pattern.",
        "",
        "| method | " + " | ".join(SCORES) + " |",
        "|" + " --- |" * (len(SCORES) + 1),
    ]
    for label in labels:
        mine = [scores for name, _, scores in rows if name == label]
        lines.append(
            f"| {label} | " + " | ".join(f"{statistics.fmean(s[key] for s in mine):.3f}" for key in SCORES) + " |"
        )
    text = "\n".join(lines)
    table = "\n".join(
        [
            "method,photo," + ",".join(SCORES),
            *(f"{label},{stem}," + ",".join(f"{scores[key]:.5f}" for key in SCORES) for label, stem, scores in rows),
        ]
    )
    atomic_write(output / "report.md", lambda stream: stream.write(text.encode() + b"\n"))
    atomic_write(output / "scores.csv", lambda stream: stream.write(table.encode() + b"\n"))
    print(text)


if __name__ == "__main__":
    cli.run(main)
