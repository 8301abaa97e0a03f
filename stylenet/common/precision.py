"""The one precision vocabulary of training and inference: auto | fp32 | bf16 | fp16.

auto means the fastest precision that is safe on the device: half precision on CUDA, fp32 elsewhere
(training picks bf16 there, which needs no loss scaling; inference picks bf16 where the GPU has it,
else fp16). fp16 is for inference only: training in fp16 would need loss scaling, which bf16 avoids.
"""

from __future__ import annotations

import torch

from stylenet.common.errors import StylenetError

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def _known(precision: str) -> str:
    if precision not in PRECISIONS:
        raise StylenetError(f"precision must be one of {', '.join(PRECISIONS)}, got '{precision}'")
    return precision


def inference_dtype(device: torch.device, precision: str = "auto") -> torch.dtype:
    """The dtype a network runs in for inference."""
    if _known(precision) == "auto":
        if device.type != "cuda":
            return torch.float32
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return DTYPES[precision]


def trains_in_bf16(precision: str, device: torch.device) -> bool:
    """Whether training steps run under bf16 autocast (the weights and the optimiser stay fp32)."""
    if _known(precision) == "fp16":
        raise StylenetError(
            "precision=fp16 is for inference; train in half precision with precision=bf16 (no loss scaling needed)"
        )
    return precision == "bf16" or (precision == "auto" and device.type == "cuda")
