"""python -m stylenet.precompute: decode the training images and run the content VGG pass once, into data.cache."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable

import hydra
import numpy as np
import torch
from omegaconf import DictConfig
from torch.utils.data import DataLoader
from tqdm import tqdm

from stylenet.cache import CacheWriter, check_disk_space, identity, mismatches, new_manifest, read_manifest
from stylenet.configs import require_whole_numbers
from stylenet.data import ImageFolder
from stylenet.errors import StylenetError, exits_cleanly
from stylenet.runtime import StopRequest, pick_device, seed_everything
from stylenet.vgg import VGGEncoder

log = logging.getLogger("stylenet.precompute")


def fill(writer: CacheWriter, dataset: ImageFolder, encoder: VGGEncoder | None, layer: str | None, *,
         batch_size: int, workers: int, device: torch.device, amp: bool, commit_interval: int,
         should_stop: Callable[[], bool] = lambda: False) -> bool:
    """Write every pending row; returns False when stopped early (progress up to the last batch is kept)."""
    pending = writer.pending()
    batches = [pending[start:start + batch_size].tolist() for start in range(0, len(pending), batch_size)]
    loader = DataLoader(dataset, batch_sampler=batches, num_workers=workers, collate_fn=list)
    total = len(writer.status)
    log.info("%d of %d images to do", len(pending), total)
    use_amp = amp and device.type == "cuda"
    with tqdm(total=total, initial=total - len(pending), desc="precompute", unit="img", dynamic_ncols=True) as progress:
        for number, (rows, samples) in enumerate(zip(batches, loader), 1):
            readable = [(row, image) for row, (image, _) in zip(rows, samples) if image is not None]
            for row, (image, problem) in zip(rows, samples):
                if image is None:
                    log.warning("skipped unreadable image: %s", problem)
                    writer.skip(row, problem)
            if readable:
                images = torch.stack([image for _, image in readable])
                features = None
                if encoder is not None:
                    with torch.no_grad(), torch.autocast(device.type, dtype=torch.float16, enabled=use_amp):
                        activations = encoder(images.to(device).float().div_(255.0))[layer]
                    features = activations.to(torch.float16).cpu().numpy()
                writer.write([row for row, _ in readable], images.permute(0, 2, 3, 1).numpy(), features)
            progress.update(len(rows))
            stopped = should_stop()
            if number % commit_interval == 0 or stopped:
                writer.commit()
            if stopped:
                return False
    return True


@hydra.main(version_base="1.3", config_path="../conf", config_name="precompute")
@exits_cleanly
def main(cfg: DictConfig) -> None:
    require_whole_numbers(cfg, positive=("data.image_size", "batch_size", "commit_interval"),
                          non_negative=("data.workers",))
    folder = Path(cfg.data.cache).expanduser()
    seed_everything(cfg.seed)
    device = pick_device(cfg.device)
    existing = read_manifest(folder)
    if existing is None and folder.exists() and any(folder.iterdir()):
        raise StylenetError(f"data.cache={folder} is a folder with other files in it and no cache manifest; "
                            f"choose a new or empty folder")
    if existing is not None:
        root = Path(existing["identity"]["source_root"])
        dataset = ImageFolder(root, cfg.data.image_size, files=existing["images"])
        log.info("continuing the cache in %s (%d images listed in its manifest)", folder, len(dataset))
    else:
        dataset = ImageFolder(cfg.data.root, cfg.data.image_size)
        log.info("%d images in %s", len(dataset), dataset.root)

    layer = str(cfg.loss.content_layer) if cfg.features else None
    encoder = None
    if layer is not None:
        encoder = VGGEncoder(cfg.loss.network, [layer], cfg.loss.pooling, cfg.loss.pretrained, cfg.loss.weights).to(device)
    ident = identity(dataset.root, cfg.data.image_size, encoder, layer)
    if existing is not None:
        found = mismatches(existing["identity"], ident)
        if found:
            raise StylenetError(f"{folder} holds a cache made for another config ({'; '.join(found)}); "
                                f"choose another data.cache folder, or delete this one to start over")
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
        finished = fill(writer, dataset, encoder, layer, batch_size=cfg.batch_size, workers=cfg.data.workers,
                        device=device, amp=cfg.amp, commit_interval=cfg.commit_interval, should_stop=stop.event.is_set)
    if not finished:
        done = int(np.count_nonzero(writer.status))
        raise StylenetError(f"stopped with {done} of {len(writer.status)} images done; the cache is not usable yet: "
                            f"run the same command again to continue")
    manifest = writer.finish()
    log.info("cache complete: %d images in %s, %d unreadable skipped (listed in its manifest)",
             len(manifest["images"]) - len(manifest["skipped"]), folder, len(manifest["skipped"]))


if __name__ == "__main__":
    main()
