"""Writing a network as ONNX or TorchScript, and checking the written file against PyTorch.

The exported model takes a float32 image batch (N, 3, H, W) in [0, 1], any height and width from
16 pixels, and returns the stylised batch of the same size. A network of several styles is exported
once, whole, with the style weights as a second input "style" (N, styles): one-hot rows pick a style,
other rows that add up to 1 blend them, as in stylenet.infer. The style names and the training
summary travel inside the file (ONNX metadata "stylenet"; TorchScript extra file "stylenet.json").
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import tempfile
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from stylenet.common.errors import StylenetError, needs
from stylenet.common.images import pil_to_tensor, read_image, resize_to_long_side
from stylenet.nets.network_file import style_names
from stylenet.nets.transformer import TransformerNet

FORMATS = ("onnx", "torchscript")
QUANTIZATIONS = ("int8",)
METADATA_KEY = "stylenet"
MIN_EXPORTED_SIZE = 16
EXAMPLE_SIZE = (67, 93)  # an example that needs padding, so that the padding stays symbolic in the graph


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """The exporters' progress lines, optimiser notes and deprecation warnings stay out of the user's way."""
    loggers = [logging.getLogger(name) for name in ("onnxscript", "onnx_ir", "torch.onnx", "torch.export")]
    levels = [logger.level for logger in loggers]
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        for logger in loggers:
            logger.setLevel(logging.ERROR)
        try:
            yield
        finally:
            for logger, level in zip(loggers, levels):
                logger.setLevel(level)


def example_inputs(model: TransformerNet, size: tuple[int, int], seed: int | None = None) -> tuple[torch.Tensor, ...]:
    """A batch of two images, and for a network of several styles two rows of style weights adding up to 1."""
    generator = torch.Generator().manual_seed(seed) if seed is not None else None
    image = torch.rand(2, 3, *size, generator=generator)
    if model.num_styles == 1:
        return (image,)
    weights = torch.rand(2, model.num_styles, generator=generator)
    return image, weights / weights.sum(1, keepdim=True)


def export_onnx(model: TransformerNet, path: Path, metadata: str, opset: int) -> None:
    onnx = needs("onnx", "onnx")
    needs("onnxscript", "onnx")
    batch = torch.export.Dim("batch")
    size = torch.export.Dim("height", min=MIN_EXPORTED_SIZE), torch.export.Dim("width", min=MIN_EXPORTED_SIZE)
    shapes: dict[str, Any] = {"image": {0: batch, 2: size[0], 3: size[1]}}
    if model.num_styles > 1:
        shapes["style"] = {0: batch}
    # The exporter may put the weights in a side file (<name>.data): export into a folder of its own,
    # then write one self-contained file at `path` (a transform network is far below ONNX's 2 GB limit).
    with tempfile.TemporaryDirectory(dir=path.parent, prefix=".onnx-export.") as workdir:
        exported_path = Path(workdir) / "model.onnx"
        with quiet():
            torch.onnx.export(
                model,
                example_inputs(model, EXAMPLE_SIZE),
                str(exported_path),
                dynamo=True,
                opset_version=opset,
                input_names=list(shapes),
                output_names=["styled"],
                dynamic_shapes=shapes,
            )
        exported = onnx.load(str(exported_path))
    exported.metadata_props.add(key=METADATA_KEY, value=metadata)
    onnx.save(exported, str(path), save_as_external_data=False)


def quantize_int8(source: Path, target: Path, photos: Sequence[Path], size: int = 256) -> None:
    """onnxruntime's static int8 quantisation of an exported float32 graph, calibrated on `photos` at `size` px:
    int8 weights per channel, uint8 activations (QDQ). Only the convolutions: onnxruntime's quantised Add cannot
    broadcast the detail skip's sum, and the convolutions are the time (BENCHMARKS.md "int8")."""
    needs("onnxruntime", "onnx")
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quant_pre_process,
        quantize_static,
    )

    class Calibration(CalibrationDataReader):
        def __init__(self) -> None:
            self.items = ({"image": calibration_photo(path, size).numpy()} for path in photos)

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.items, None)

    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".int8.") as workdir, quiet():
        prepared = Path(workdir) / "prepared.onnx"
        # Symbolic shape inference cannot follow the edge padding's computed sizes; the optimiser's own suffices.
        quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)
        quantize_static(
            str(prepared),
            str(target),
            Calibration(),
            quant_format=QuantFormat.QDQ,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            per_channel=True,
            op_types_to_quantize=["Conv"],
        )


def calibration_photo(path: Path, size: int) -> torch.Tensor:
    """A photo as the batch of one the network takes, its longer side `size` px."""
    return pil_to_tensor(resize_to_long_side(read_image(path), size)).unsqueeze(0)


def mean_difference(model: TransformerNet, path: Path, photos: Sequence[Path], size: int = 256) -> float:
    """The mean absolute difference (0-1 scale) between the ONNX file's pictures and PyTorch's on real photos:
    an int8 graph differs everywhere by a little, so its largest difference on noise says nothing."""
    run = exported_runner(path, "onnx")
    differences = []
    for photo in photos:
        batch = calibration_photo(photo, size)
        with torch.inference_mode():
            expected = model(batch).clamp(0, 1).numpy()
        differences.append(float(np.abs(np.clip(run(batch.numpy()), 0, 1) - expected).mean()))
    return float(np.mean(differences))


def export_torchscript(model: TransformerNet, path: Path, metadata: str) -> None:
    """Traced: the shape arithmetic of the padding is recorded symbolically, so any size from 16 px works."""
    with quiet():  # TorchScript is deprecated upstream, and the tracer warns about the padding
        traced = torch.jit.trace(model, example_inputs(model, EXAMPLE_SIZE))
        torch.jit.save(traced, str(path), _extra_files={"stylenet.json": metadata})


def open_session(path: Path, device: torch.device) -> Any:
    onnxruntime = needs("onnxruntime", "onnx")
    providers = ["CPUExecutionProvider"]
    if device.type == "cuda" and "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        providers.insert(0, "CUDAExecutionProvider")
    try:
        return onnxruntime.InferenceSession(str(path), providers=providers)
    except Exception as error:  # onnxruntime raises its own untyped errors for files it cannot read
        raise StylenetError(f"onnxruntime cannot load {path}: {str(error).splitlines()[0]}") from None


def exported_runner(path: Path, fmt: str) -> Callable[..., np.ndarray]:
    """The exported file as a function of its float32 inputs (image, and style weights), run by its own runtime."""
    if fmt == "onnx":
        session = open_session(path, torch.device("cpu"))
        names = [node.name for node in session.get_inputs()]
        return lambda *inputs: session.run(None, dict(zip(names, inputs)))[0]
    with quiet():
        module = torch.jit.load(str(path), map_location="cpu")
    return lambda *inputs: module(*(torch.from_numpy(value) for value in inputs)).numpy()


def largest_difference(model: TransformerNet, path: Path, fmt: str, size: tuple[int, int]) -> float:
    inputs = example_inputs(model, size, seed=0)
    with torch.inference_mode():
        expected = model(*inputs).numpy()
    produced = exported_runner(path, fmt)(*(value.numpy() for value in inputs))
    if produced.shape != expected.shape:
        raise StylenetError(f"the exported model returned shape {produced.shape} for {expected.shape}")
    return float(np.abs(produced - expected).max())


def metadata(payload: dict[str, Any]) -> str:
    """What travels inside an exported file: the style names, the training summary and the model config."""
    return json.dumps(
        {
            "style": payload["style"],
            "styles": style_names(payload),
            "summary": payload.get("summary", {}),
            "model_cfg": payload["model_cfg"],
        }
    )
