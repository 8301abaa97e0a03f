"""stylenet.load: a network file, a zoo name or an exported .onnx file -> a Stylizer, on the runtime that suits
the device (the backend choice sits here, above both runtimes: stylizer's PyTorch and onnx_backend's onnxruntime)."""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Mapping

import torch

from stylenet.common.errors import StylenetError
from stylenet.common.precision import inference_dtype
from stylenet.common.runtime import pick_device
from stylenet.inference import onnx_backend
from stylenet.inference.stylizer import Stylizer, TorchStylizer, style_weights
from stylenet.nets.network_file import build_model, load_network_file, resolve_network_file, style_names

BACKENDS = ("auto", "torch", "onnxruntime")
BACKEND_VARIABLE = "STYLENET_BACKEND"  # what backend=auto means when set: torch or onnxruntime


def installed() -> bool:
    """Whether onnxruntime and the exporter's packages (the onnx extra) are all here."""
    return all(importlib.util.find_spec(name) is not None for name in ("onnxruntime", "onnx", "onnxscript"))


def chosen_backend(backend: str, device: torch.device, dtype: torch.dtype, channels_last: bool) -> str:
    """torch or onnxruntime. auto: $STYLENET_BACKEND if set, else onnxruntime for float32 on the CPU where
    installed (the faster of the two here), else torch (CUDA, MPS, half precision, channels_last)."""
    if backend not in BACKENDS:
        raise StylenetError(f"unknown backend '{backend}'; choose one of {', '.join(BACKENDS)}")
    if backend == "auto":
        backend = os.environ.get(BACKEND_VARIABLE) or "auto"
        if backend not in BACKENDS:
            raise StylenetError(f"{BACKEND_VARIABLE}={backend}: choose one of {', '.join(BACKENDS)}")
    if backend == "auto":
        fits = device.type == "cpu" and dtype == torch.float32 and not channels_last
        return "onnxruntime" if fits and installed() else "torch"
    if backend == "onnxruntime" and (dtype != torch.float32 or channels_last):
        raise StylenetError(
            "backend=onnxruntime runs the network in float32 and its own memory format: "
            "use precision=fp32 and channels_last=false, or backend=torch"
        )
    return backend


def load(
    path: str | os.PathLike,
    device: str = "auto",
    precision: str = "auto",
    channels_last: bool = False,
    style_name: str | None = None,
    style_index: int | None = None,
    style_mix: Mapping[str | int, float] | None = None,
    backend: str = "auto",
) -> Stylizer:
    """Load a network safely and return a Stylizer for it: an inference file (checkpoints/<style>.pt, or a
    name such as "candy"), or a .onnx file of stylenet.export.

    backend: auto | torch | onnxruntime. auto runs float32 networks on the CPU with onnxruntime where it
    is installed (the faster path here: BENCHMARKS.md), exported once and cached (stylenet.inference.onnx_backend),
    and everything else with PyTorch; $STYLENET_BACKEND=torch|onnxruntime sets what auto means.
    precision: auto | fp32 | bf16 | fp16 (auto: half precision on CUDA, fp32 elsewhere);
    channels_last: NHWC memory format, off by default: without torch.compile it measured slower for
    every variant on an H100 and on CPU (BENCHMARKS.md). A network of several styles needs one of
    style_name, style_index or style_mix ({name: weight} adding up to 1); see Stylizer.select."""
    if str(path).endswith(".onnx"):
        if backend == "torch":
            raise StylenetError(f"{path} is an ONNX file: it runs with backend=auto or onnxruntime")
        return onnx_backend.OnnxStylizer.open(path, device, style_name, style_index, style_mix)
    payload = load_network_file(path)
    names = style_names(payload)
    weights = style_weights(names, style_name, style_index, style_mix)
    target = pick_device(device)
    dtype = inference_dtype(target, precision)
    network = TorchStylizer(
        build_model(payload, path),
        target,
        payload["style"],
        payload.get("summary", {}),
        dtype,
        channels_last,
        names,
        weights,
    )
    if chosen_backend(backend, target, dtype, channels_last) == "torch":
        return network
    return onnx_backend.onnx_stylizer(resolve_network_file(path), network, payload)
