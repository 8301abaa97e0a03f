"""python -m stylenet.precompute: decode the training images and run the content VGG pass once, into data.cache."""

from __future__ import annotations

import logging
from pathlib import Path

import hydra
import numpy as np
from omegaconf import DictConfig

from stylenet.common.errors import StylenetError, exits_cleanly
from stylenet.common.runtime import StopRequest, data_workers, pick_device, seed_everything
from stylenet.config import cli
from stylenet.config.schema import PrecomputeConfig, typed
from stylenet.data.photos import ImageFolder
from stylenet.data.precomputed import (
    CacheWriter,
    check_disk_space,
    fill,
    identity,
    mismatches,
    new_manifest,
    read_manifest,
)

log = logging.getLogger("stylenet.precompute")


@hydra.main(version_base="1.3", config_path="conf", config_name="precompute")
@exits_cleanly
def main(config: DictConfig) -> None:
    cfg = typed(config, PrecomputeConfig)
    workers = data_workers(cfg.data.workers)
    if cfg.data.cache is None:
        raise StylenetError("data.cache: give the folder to write the cache into")
    folder = Path(cfg.data.cache).expanduser()
    seed_everything(cfg.seed)
    device = pick_device(cfg.device)
    existing = read_manifest(folder)
    if existing is None and folder.exists() and any(folder.iterdir()):
        raise StylenetError(
            f"data.cache={folder} is a folder with other files in it and no cache manifest; "
            f"choose a new or empty folder"
        )
    if existing is not None:
        root = Path(existing["identity"]["source_root"])
        dataset = ImageFolder(root, cfg.data.image_size, files=existing["images"])
        log.info("continuing the cache in %s (%d images listed in its manifest)", folder, len(dataset))
    else:
        if cfg.data.root is None:
            raise StylenetError("data.root: give the folder of training photos to precompute")
        dataset = ImageFolder(cfg.data.root, cfg.data.image_size)
        log.info("%d images in %s", len(dataset), dataset.root)

    layer = cfg.loss.content_layer if cfg.features else None
    encoder = None
    if layer is not None:
        encoder = cfg.loss.encoder([layer]).to(device)
    ident = identity(dataset.root, cfg.data.image_size, encoder, layer)
    if existing is not None:
        found = mismatches(existing["identity"], ident)
        if found:
            raise StylenetError(
                f"{folder} holds a cache made for another config ({'; '.join(found)}); "
                f"choose another data.cache folder, or delete this one to start over"
            )
        if existing["complete"]:
            log.info("the cache in %s is already complete; nothing to do", folder)
            return
        manifest = existing
    else:
        files = [path.relative_to(dataset.root).as_posix() for path in dataset.files]
        manifest = new_manifest(files, ident)
    log.info("%s", check_disk_space(folder, manifest))

    writer = CacheWriter(folder, manifest)
    with StopRequest() as stop:
        finished = fill(
            writer,
            dataset,
            encoder,
            layer,
            batch_size=cfg.batch_size,
            workers=workers,
            device=device,
            amp=cfg.amp,
            commit_interval=cfg.commit_interval,
            should_stop=stop.event.is_set,
        )
    if not finished:
        done = int(np.count_nonzero(writer.status))
        raise StylenetError(
            f"stopped with {done} of {len(writer.status)} images done; the cache is not usable yet: "
            f"run the same command again to continue"
        )
    manifest = writer.finish()
    log.info(
        "cache complete: %d images in %s, %d unreadable skipped (listed in its manifest)",
        len(manifest["images"]) - len(manifest["skipped"]),
        folder,
        len(manifest["skipped"]),
    )


if __name__ == "__main__":
    cli.run(main)
