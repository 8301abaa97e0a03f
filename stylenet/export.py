"""python -m stylenet.export: a trained network as ONNX or TorchScript, for other runtimes (stylenet.inference.exported),
or as an int8 ONNX graph (quantize=int8, calibrated on a folder of photos).

Before the file is published it is run and compared with PyTorch: a float graph on an odd-sized image
(largest difference, `tolerance`), an int8 graph on calibration photos (mean difference, `int8_tolerance`);
above the bound nothing is left behind and it exits with an error.
"""

from __future__ import annotations

import logging
from pathlib import Path

import hydra
from omegaconf import DictConfig

from stylenet.common.atomic import atomic_path
from stylenet.common.errors import StylenetError, exits_cleanly
from stylenet.common.images import list_images
from stylenet.config import cli
from stylenet.config.schema import ExportConfig, typed
from stylenet.inference.exported import (
    export_onnx,
    export_torchscript,
    largest_difference,
    mean_difference,
    metadata,
    quantize_int8,
)
from stylenet.nets.network_file import build_model, load_network_file

log = logging.getLogger("stylenet.export")
CALIBRATION_PHOTOS = 16  # at 256 px: as many as changed the pictures no further (BENCHMARKS.md "int8")


@hydra.main(version_base="1.3", config_path="conf", config_name="export")
@exits_cleanly
def main(config: DictConfig) -> None:
    cfg = typed(config, ExportConfig)
    tolerance, check_size = cfg.tolerance, (cfg.check_size[0], cfg.check_size[1])
    photos = calibration_photos(cfg.quantize, cfg.calibration, cfg.format)
    output = Path(cfg.output).expanduser()
    if output.exists() and not cfg.overwrite:
        raise StylenetError(f"{output} exists: pass overwrite=true to replace it")
    payload = load_network_file(cfg.checkpoint)
    model = build_model(payload, cfg.checkpoint).eval().requires_grad_(False)
    about = metadata(payload)
    with atomic_path(output) as temporary:
        if cfg.format == "onnx":
            export_onnx(model, temporary, about, cfg.opset)
        else:
            export_torchscript(model, temporary, about)
        difference = largest_difference(model, temporary, cfg.format, check_size)
        if difference > tolerance:
            raise StylenetError(
                f"the exported model differs from PyTorch by {difference:.2e} (more than "
                f"tolerance={tolerance:g}) on a {check_size[0]}x{check_size[1]} image; nothing written"
            )
        if photos:
            quantize_int8(temporary, temporary, photos)
            mean = mean_difference(model, temporary, photos[:2])
            if mean > float(cfg.int8_tolerance):
                raise StylenetError(
                    f"the int8 graph's pictures differ from PyTorch's by {mean:.3f} on average (more "
                    f"than int8_tolerance={cfg.int8_tolerance:g}); nothing written"
                )
    if photos:
        log.info(
            "wrote %s (int8 onnx, style '%s', calibrated on %d photos of %s); mean difference from PyTorch "
            "on two of them: %.4f (%.1f levels)",
            output,
            payload["style"],
            len(photos),
            cfg.calibration,
            mean,
            mean * 255,
        )
    else:
        log.info(
            "wrote %s (%s, style '%s'); largest difference from PyTorch on a %dx%d image: %.2e",
            output,
            cfg.format,
            payload["style"],
            check_size[0],
            check_size[1],
            difference,
        )


def calibration_photos(quantize: str | None, calibration: str | None, fmt: str) -> list[Path]:
    """The photos an int8 export is calibrated on (none without quantize=int8)."""
    if quantize is None:
        return []
    if fmt != "onnx":
        raise StylenetError(f"quantize={quantize} needs format=onnx (onnxruntime's quantiser), got format={fmt}")
    if calibration is None:
        raise StylenetError("quantize=int8 needs calibration=<a folder of photos like the ones you will stylise>")
    folder = Path(calibration).expanduser()
    if not folder.is_dir():
        raise StylenetError(f"calibration={calibration}: no such folder")
    photos = list_images(folder)[:CALIBRATION_PHOTOS]
    if not photos:
        raise StylenetError(f"calibration={calibration}: no images in it")
    return photos


if __name__ == "__main__":
    cli.run(main)
