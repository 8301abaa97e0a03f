"""python -m stylenet.export: a trained network as ONNX or TorchScript, for other runtimes (stylenet.inference.exported).

Before the file is published it is run on an odd-sized image and compared with PyTorch; a
difference above `tolerance` leaves nothing behind and exits with an error.
"""

from __future__ import annotations

import logging
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from stylenet.common.atomic import atomic_path
from stylenet.nets.network_file import build_model, load_checkpoint
from stylenet.common.errors import StylenetError, exits_cleanly
from stylenet.inference.exported import MIN_EXPORTED_SIZE, export_onnx, export_torchscript, largest_difference, metadata
from stylenet.config.options import check_options

log = logging.getLogger("stylenet.export")


@hydra.main(version_base="1.3", config_path="conf", config_name="export")
@exits_cleanly
def main(cfg: DictConfig) -> None:
    check_options(cfg, "export")
    tolerance = float(cfg.tolerance)
    check_size = tuple(cfg.check_size) if OmegaConf.is_list(cfg.check_size) else (cfg.check_size,)
    if len(check_size) != 2 or not all(isinstance(side, int) and side >= MIN_EXPORTED_SIZE for side in check_size):
        raise StylenetError(f"check_size must be [height, width], each at least {MIN_EXPORTED_SIZE}, got {list(check_size)}")
    output = Path(cfg.output).expanduser()
    if output.exists() and not cfg.overwrite:
        raise StylenetError(f"{output} exists: pass overwrite=true to replace it")
    payload = load_checkpoint(cfg.checkpoint, kind="inference")
    model = build_model(payload, cfg.checkpoint).eval().requires_grad_(False)
    about = metadata(payload)
    with atomic_path(output) as temporary:
        if cfg.format == "onnx":
            export_onnx(model, temporary, about, cfg.opset)
        else:
            export_torchscript(model, temporary, about)
        difference = largest_difference(model, temporary, cfg.format, check_size)
        if difference > tolerance:
            raise StylenetError(f"the exported model differs from PyTorch by {difference:.2e} (more than "
                                f"tolerance={tolerance:g}) on a {check_size[0]}x{check_size[1]} image; nothing written")
    log.info("wrote %s (%s, style '%s'); largest difference from PyTorch on a %dx%d image: %.2e",
             output, cfg.format, payload["style"], check_size[0], check_size[1], difference)


if __name__ == "__main__":
    main()
