"""The precomputed training cache: decoded crops and content-layer VGG features, memory-mapped.

A cache folder holds
  manifest.json          what was computed from what; "complete" turns true only after the last row
  images.npy             (N, S, S, 3) uint8: row i is the centre crop of manifest["images"][i]
  features_<layer>.npy   (N, C, h, w) float16: the content layer's VGG activations of row i
  status.npy             (N,) uint8: 0 pending, 1 written, 2 unreadable (listed in manifest["skipped"])
Rows follow the image list, so a skipped image leaves its row unused and no index shifts. The arrays
are plain .npy files: numpy.load(path, mmap_mode="r") opens them anywhere.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler
from tqdm import tqdm

from stylenet.common.atomic import atomic_write
from stylenet.common.errors import StylenetError
from stylenet.common.images import unit_float
from stylenet.common.runtime import leave_stopping_to_the_main_process
from stylenet.data.photos import ImageFolder, TrainingBatch
from stylenet.vgg.encoder import VGGEncoder, layer_shape

log = logging.getLogger("stylenet.precompute")
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
PENDING, WRITTEN, UNREADABLE = 0, 1, 2
# Fields of manifest["identity"]: equal identities mean equal contents. The VGG fields are None for an
# images-only cache (precompute features=false).
VGG_FIELDS = ("network", "pooling", "digest", "content_layer")
PRECOMPUTE_HINT = "python -m stylenet.precompute data.cache=<folder> (same data and loss options as training)"


def human_bytes(count: float) -> str:
    """Decimal units, as disks are sold: 347.2 GB."""
    if count < 1000:
        return f"{int(count)} B"
    for unit in ("KB", "MB", "GB"):
        count /= 1000
        if count < 1000:
            return f"{count:.1f} {unit}"
    return f"{count / 1000:.1f} TB"


def identity(
    source_root: Path, image_size: int, encoder: VGGEncoder | None, content_layer: str | None
) -> dict[str, Any]:
    """What a cache's numbers depend on: the images, their size, and the VGG layers that made the features."""
    fields: dict[str, Any] = {"source_root": str(source_root.resolve()), "image_size": int(image_size)}
    if encoder is None:
        return {**fields, **dict.fromkeys(VGG_FIELDS), "weights": None}
    return {
        **fields,
        "network": encoder.network,
        "pooling": encoder.pooling,
        "weights": encoder.weights_id,
        "digest": encoder.digest(str(content_layer)),
        "content_layer": content_layer,
    }


def new_manifest(files: Sequence[str], ident: dict[str, Any]) -> dict[str, Any]:
    """The manifest of a cache about to be written: the image list fixes every row for good."""
    count, size, layer = len(files), ident["image_size"], ident["content_layer"]
    arrays = {
        "images": {"file": "images.npy", "dtype": "uint8", "shape": [count, size, size, 3]},
        "status": {"file": "status.npy", "dtype": "uint8", "shape": [count]},
    }
    if layer is not None:
        arrays["features"] = {
            "file": f"features_{layer}.npy",
            "dtype": "float16",
            "shape": [count, *layer_shape(ident["network"], layer, size)],
        }
    return {
        "format_version": FORMAT_VERSION,
        "complete": False,
        "identity": ident,
        "arrays": arrays,
        "images": list(files),
        "skipped": [],
        "created": _now(),
        "finished": None,
    }


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def read_manifest(folder: Path) -> dict[str, Any] | None:
    path = folder / MANIFEST
    if not path.exists():
        return None
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise StylenetError(f"cannot read the cache manifest {path}: {error}") from None
    if not isinstance(manifest, dict) or manifest.get("format_version") != FORMAT_VERSION:
        raise StylenetError(f"{path} is not a stylenet cache manifest of format {FORMAT_VERSION}")
    return manifest


def write_manifest(folder: Path, manifest: dict[str, Any]) -> None:
    atomic_write(folder / MANIFEST, lambda stream: stream.write(json.dumps(manifest, indent=1).encode()), durable=True)


def mismatches(cached: dict[str, Any], wanted: dict[str, Any]) -> list[str]:
    """'field: cache X, this run Y' for each field of `wanted` that differs from the cache's identity."""
    found = []
    for field, value in wanted.items():
        if field != "weights" and cached.get(field) != value:  # weights names a source; the digest decides
            if field == "digest":
                found.append(
                    f"VGG weights: cache made with {cached.get('weights')} (digest {cached.get(field)}), "
                    f"this run uses {wanted.get('weights', 'other weights')} (digest {value})"
                )
            else:
                found.append(f"{field}: cache {cached.get(field)}, this run {value}")
    return found


def array_bytes(manifest: dict[str, Any]) -> dict[str, int]:
    return {
        name: math.prod(spec["shape"]) * np.dtype(spec["dtype"]).itemsize for name, spec in manifest["arrays"].items()
    }


def check_disk_space(folder: Path, manifest: dict[str, Any]) -> str:
    """Refuse to start a cache the disk cannot hold; return a line that says what it takes."""
    sizes = array_bytes(manifest)
    allocated = sum(
        os.stat(folder / spec["file"]).st_blocks * 512
        for spec in manifest["arrays"].values()
        if (folder / spec["file"]).exists()
    )
    still_needed = max(0, sum(sizes.values()) - allocated)
    existing = next(parent for parent in (folder, *folder.parents) if parent.exists())
    free = shutil.disk_usage(existing).free
    parts = ", ".join(f"{name} {human_bytes(size)}" for name, size in sizes.items() if name != "status")
    summary = (
        f"the cache takes {human_bytes(sum(sizes.values()))} ({parts}); {human_bytes(still_needed)} still "
        f"to write, {human_bytes(free)} free on the disk of {existing}"
    )
    if still_needed > free:
        raise StylenetError(
            f"not enough disk space: {summary}. Free some space, choose another data.cache folder, "
            f"a smaller data.image_size, a deeper loss.content_layer, or features=false"
        )
    return summary


def _open_array(folder: Path, spec: dict[str, Any], mode: Literal["r", "r+"]) -> np.memmap:
    path = folder / spec["file"]
    if mode == "r+" and not path.exists():
        return np.lib.format.open_memmap(path, mode="w+", dtype=spec["dtype"], shape=tuple(spec["shape"]))
    array = np.load(path, mmap_mode=mode)
    if list(array.shape) != spec["shape"] or array.dtype != np.dtype(spec["dtype"]):
        raise StylenetError(
            f"{path} has shape {list(array.shape)} {array.dtype}, its manifest says "
            f"{spec['shape']} {spec['dtype']}: the cache is damaged; delete the folder and precompute again"
        )
    return array


class CacheWriter:
    """Fills the rows of a cache folder; progress counts only once `commit` has flushed the rows to disk.

    The status kept on disk is updated after the data it describes is flushed, so a kill at any point
    leaves a cache whose written rows are all whole; an interrupted run simply continues.
    """

    def __init__(self, folder: Path, manifest: dict[str, Any]) -> None:
        self.folder, self.manifest = folder, manifest
        if read_manifest(folder) is None:
            write_manifest(folder, manifest)
        self.arrays = {name: _open_array(folder, spec, "r+") for name, spec in manifest["arrays"].items()}
        self.status = np.array(self.arrays["status"])
        self.status[self.status == UNREADABLE] = PENDING  # retried: their messages are only kept in memory
        self.reasons: dict[int, str] = {}

    def pending(self) -> np.ndarray:
        return np.flatnonzero(self.status == PENDING)

    def write(self, rows: Sequence[int], images: np.ndarray, features: np.ndarray | None) -> None:
        """Rows of (N, S, S, 3) uint8 crops and (N, C, h, w) float16 features, in the order of `rows`."""
        if features is not None:
            if not np.isfinite(features).all():
                raise StylenetError("VGG features overflowed float16 (Inf); the cache cannot store them")
            self.arrays["features"][rows] = features
        self.arrays["images"][rows] = images
        self.status[rows] = WRITTEN

    def skip(self, row: int, reason: str) -> None:
        self.status[row] = UNREADABLE
        self.reasons[row] = reason

    def commit(self) -> None:
        for name, array in self.arrays.items():
            if name != "status":
                array.flush()
        self.arrays["status"][:] = self.status
        self.arrays["status"].flush()

    def finish(self) -> dict[str, Any]:
        """Commit, then mark the cache complete: from now on training may use it."""
        self.commit()
        files = self.manifest["images"]
        self.manifest.update(
            complete=True,
            finished=_now(),
            skipped=[
                {"index": int(row), "path": files[row], "reason": self.reasons.get(int(row), "unreadable")}
                for row in np.flatnonzero(self.status == UNREADABLE)
            ],
        )
        write_manifest(self.folder, self.manifest)
        return self.manifest


class CachedImages(Dataset):
    """A complete cache, read through memory maps (one open per worker, not per item).

    Item i is row i, as image i is in data.ImageFolder over the same list, so training from the cache
    sees the very batches training from the folder would; rows of unreadable images yield their message.
    """

    def __init__(self, folder: str | os.PathLike) -> None:
        self.root = Path(folder).expanduser()
        manifest = read_manifest(self.root)
        if manifest is None:
            raise StylenetError(
                f"no precomputed cache in {self.root} (no {MANIFEST}); create it with {PRECOMPUTE_HINT}"
            )
        self.status = np.array(_open_array(self.root, manifest["arrays"]["status"], "r"))
        if not manifest["complete"]:
            done = int(np.count_nonzero(self.status != PENDING))
            raise StylenetError(
                f"the cache in {self.root} is incomplete ({done} of {len(self.status)} images done): "
                f"run the same precompute command again to finish it"
            )
        if not np.any(self.status == WRITTEN):
            raise StylenetError(f"the cache in {self.root} holds no readable image")
        self.manifest = manifest
        self.identity: dict[str, Any] = manifest["identity"]
        self.image_size = int(self.identity["image_size"])
        self.problems = {entry["index"]: f"{entry['reason']} (skipped by precompute)" for entry in manifest["skipped"]}
        self._arrays: dict[str, np.ndarray] | None = None

    @property
    def has_features(self) -> bool:
        return "features" in self.manifest["arrays"]

    def require(self, **wanted: Any) -> None:
        """Refuse a cache made for another config, naming every difference."""
        if not self.has_features:
            wanted = {field: value for field, value in wanted.items() if field not in (*VGG_FIELDS, "weights")}
        found = mismatches(self.identity, wanted)
        if found:
            raise StylenetError(
                f"the cache in {self.root} was made for another config: {'; '.join(found)}. "
                f"Make one for this config: {PRECOMPUTE_HINT}"
            )

    def require_for(self, encoder: VGGEncoder, content_layer: str, image_size: int) -> None:
        """The one check of a cache against a loss: features from other VGG weights or layers, or crops of
        another size, would train silently against the wrong targets (the costliest silent error here)."""
        wanted = identity(self.root, image_size, encoder, content_layer)
        del wanted["source_root"]  # a cache stands in for its source folder wherever that is now
        self.require(**wanted)

    def _open(self) -> dict[str, np.ndarray]:
        if self._arrays is None:  # opened lazily so that each DataLoader worker maps the files itself
            self._arrays = {
                name: _open_array(self.root, spec, "r")
                for name, spec in self.manifest["arrays"].items()
                if name != "status"
            }
        return self._arrays

    def __len__(self) -> int:
        return len(self.status)

    def __getitem__(self, index: int) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        images, features, _ = self.__getitems__([index])
        if len(images) == 0:
            return None, None
        return images[0], None if features is None else features[0]

    def __getitems__(self, indices: Sequence[int]) -> TrainingBatch:
        """A whole batch in one indexed read per array (DataLoader calls this instead of __getitem__ per item)."""
        wanted = np.asarray(indices, dtype=np.int64)
        rows = wanted[self.status[wanted] == WRITTEN]
        problems = [
            self.problems.get(int(row), f"row {row} of {self.root}") for row in wanted if self.status[row] != WRITTEN
        ]
        arrays = self._open()
        # Contiguous NCHW, like ImageFolder's batches: the same tensors whichever source trains.
        images = torch.from_numpy(arrays["images"][rows]).permute(0, 3, 1, 2).contiguous()
        features = torch.from_numpy(arrays["features"][rows]) if "features" in arrays else None
        return images, features, problems

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_arrays": None}


class DeviceBatches:
    """A complete cache held in the training device's memory, iterated like the DataLoader it replaces:
    each batch is an index into tensors already there, so decoding, host-to-device copies and worker
    processes leave the training step's path (data.cache_on_device; on a GPU, COCO's 83k crops at 256 px
    take 16 GB as uint8). The batches are the ones the DataLoader over the same cache and sampler gives."""

    def __init__(self, cached: CachedImages, sampler: Sampler, batch_size: int, device: torch.device) -> None:
        arrays = cached._open()  # read-only memory maps: copied, so that on the CPU too the cache is in memory
        self.images = torch.from_numpy(np.array(arrays["images"])).to(device)
        self.features = torch.from_numpy(np.array(arrays["features"])).to(device) if "features" in arrays else None
        self.written, self.problems, self.root = cached.status == WRITTEN, cached.problems, cached.root
        self.sampler, self.batch_size, self.device = sampler, batch_size, device

    def __len__(self) -> int:
        return math.ceil(len(self.sampler) / self.batch_size)  # type: ignore[arg-type]

    def __iter__(self) -> Iterator[TrainingBatch]:
        order = list(self.sampler)
        for start in range(0, len(order), self.batch_size):
            indices = order[start : start + self.batch_size]
            rows = torch.tensor([row for row in indices if self.written[row]], dtype=torch.long, device=self.device)
            problems = [
                self.problems.get(int(row), f"row {row} of {self.root}") for row in indices if not self.written[row]
            ]
            features = None if self.features is None else self.features[rows]
            yield self.images[rows].permute(0, 3, 1, 2).contiguous(), features, problems


def pass_batch_through(batch: TrainingBatch) -> TrainingBatch:
    """collate_fn for CachedImages: __getitems__ already returns a whole batch."""
    return batch


def fill(
    writer: CacheWriter,
    dataset: ImageFolder,
    encoder: VGGEncoder | None,
    layer: str | None,
    *,
    batch_size: int,
    workers: int,
    device: torch.device,
    amp: bool,
    commit_interval: int,
    should_stop: Callable[[], bool] = lambda: False,
) -> bool:
    """Write every pending row; returns False when stopped early (progress up to the last batch is kept)."""
    pending = writer.pending()
    batches = [pending[start : start + batch_size].tolist() for start in range(0, len(pending), batch_size)]
    loader = DataLoader(
        dataset,
        batch_sampler=batches,
        num_workers=workers,
        collate_fn=list,
        worker_init_fn=leave_stopping_to_the_main_process,
    )
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
                        activations = encoder(unit_float(images.to(device)))[layer]
                    features = activations.to(torch.float16).cpu().numpy()
                writer.write([row for row, _ in readable], images.permute(0, 2, 3, 1).numpy(), features)
            progress.update(len(rows))
            stopped = should_stop()
            if number % commit_interval == 0 or stopped:
                writer.commit()
            if stopped:
                return False
    return True
