"""python -m stylenet.export: a trained network as ONNX or TorchScript, for other runtimes.

The exported model takes a float32 image batch (N, 3, H, W) in [0, 1], any height and width from
16 pixels, and returns the stylised batch of the same size. A network of several styles is exported
once, whole, with the style weights as a second input "style" (N, styles): one-hot rows pick a style,
other rows that add up to 1 blend them, as in stylenet.infer. The style names and the training
summary travel inside the file (ONNX metadata "stylenet"; TorchScript extra file "stylenet.json").
Before the file is published it is run on an odd-sized image and compared with PyTorch; a
difference above `tolerance` leaves nothing behind and exits with an error.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any, Callable, Iterator

import hydra
import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from stylenet.checkpoint import build_model, load_checkpoint, style_names
from stylenet.configs import flag_option, number_option, require_whole_numbers
from stylenet.errors import StylenetError, exits_cleanly, needs
from stylenet.models import TransformerNet

log = logging.getLogger("stylenet.export")
FORMATS = ("onnx", "torchscript")
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
    with quiet():
        torch.onnx.export(model, example_inputs(model, EXAMPLE_SIZE), str(path), dynamo=True, opset_version=opset,
                          input_names=list(shapes), output_names=["styled"], dynamic_shapes=shapes)
    exported = onnx.load(str(path))
    exported.metadata_props.add(key=METADATA_KEY, value=metadata)
    onnx.save(exported, str(path))


def export_torchscript(model: TransformerNet, path: Path, metadata: str) -> None:
    """Traced: the shape arithmetic of the padding is recorded symbolically, so any size from 16 px works."""
    with quiet():  # TorchScript is deprecated upstream, and the tracer warns about the padding
        traced = torch.jit.trace(model, example_inputs(model, EXAMPLE_SIZE))
        torch.jit.save(traced, str(path), _extra_files={"stylenet.json": metadata})


def exported_runner(path: Path, fmt: str) -> Callable[..., np.ndarray]:
    """The exported file as a function of its float32 inputs (image, and style weights), run by its own runtime."""
    if fmt == "onnx":
        onnxruntime = needs("onnxruntime", "onnx")
        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
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


@hydra.main(version_base="1.3", config_path="../conf", config_name="export")
@exits_cleanly
def main(cfg: DictConfig) -> None:
    if cfg.format not in FORMATS:
        raise StylenetError(f"format must be one of {', '.join(FORMATS)}, got '{cfg.format}'")
    tolerance = number_option(cfg, "tolerance")
    require_whole_numbers(cfg, ("opset",))
    check_size = tuple(cfg.check_size) if OmegaConf.is_list(cfg.check_size) else (cfg.check_size,)
    if len(check_size) != 2 or not all(isinstance(side, int) and side >= MIN_EXPORTED_SIZE for side in check_size):
        raise StylenetError(f"check_size must be [height, width], each at least {MIN_EXPORTED_SIZE}, got {list(check_size)}")
    output = Path(cfg.output).expanduser()
    if output.exists() and not flag_option(cfg, "overwrite"):
        raise StylenetError(f"{output} exists: pass overwrite=true to replace it")
    payload = load_checkpoint(cfg.checkpoint, kind="inference")
    model = build_model(payload, cfg.checkpoint).eval().requires_grad_(False)
    metadata = json.dumps({"style": payload["style"], "styles": style_names(payload),
                           "summary": payload.get("summary", {}), "model_cfg": payload["model_cfg"]})
    output.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=output.parent, prefix=f".{output.name}.") as workdir:
        temporary = Path(workdir) / output.name
        if cfg.format == "onnx":
            export_onnx(model, temporary, metadata, cfg.opset)
        else:
            export_torchscript(model, temporary, metadata)
        difference = largest_difference(model, temporary, cfg.format, check_size)
        if difference > tolerance:
            raise StylenetError(f"the exported model differs from PyTorch by {difference:.2e} (more than "
                                f"tolerance={tolerance:g}) on a {check_size[0]}x{check_size[1]} image; nothing written")
        os.replace(temporary, output)
    log.info("wrote %s (%s, style '%s'); largest difference from PyTorch on a %dx%d image: %.2e",
             output, cfg.format, payload["style"], check_size[0], check_size[1], difference)


if __name__ == "__main__":
    main()
