"""Inference latency of every model variant at several image sizes; writes a Markdown table.

    python scripts/bench_inference.py                     # CPU, and CUDA when present
    python scripts/bench_inference.py --smoke             # tiny sizes, one run: checks the script works

For each variant (conf/model/<variant>.yaml, or `<variant>:key=value,...` to change some of its
options, e.g. `realtime:num_residual_blocks=3`) and size: median latency over --repeats runs after
--warmup runs, parameters, multiply-accumulates (counted by torch's FLOP counter, so the fused
layers count what they really compute) and "MB moved", the fp32 bytes every layer reads and writes
if each reads its input and writes its output once (half that in bf16/fp16): with the GPU's
bandwidth and matrix rate these give the two floors of a roofline reading. On CPU the thread count is reported; on CUDA fp32 and
bf16/fp16 with channels_last are measured; --compile adds each of them under torch.compile.
Cells give the latency, frames per second and the ratio to the first variant. --ablation
measures each CPU optimisation of the fast path separately, all in the same run; --onnxruntime
compares PyTorch with onnxruntime on the CPU, each variant exported as stylenet.export does.
--styles 1 5 measures each variant also as a network of 5 styles (conditional instance norm), run
with an even blend of all of them: what a choice of style costs at inference.
"""

from __future__ import annotations

import argparse
import copy
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from shelf import describe_machine, median_seconds, parse_size
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from stylenet.common.errors import StylenetError, needs
from stylenet.config.compose import model_config
from stylenet.inference.exported import export_onnx
from stylenet.nets.transformer import FusedUpsampleConv, TransformerNet

SIZES = ["256x256", "512x512", "1000x1000", "1280x720", "1920x1080"]
VARIANTS = ["johnson", "separable", "resize", "fast"]


def multiply_accumulates(model: nn.Module, image: torch.Tensor) -> int:
    counter = FlopCounterMode(display=False)
    with counter, torch.inference_mode():
        model(image)
    return counter.get_total_flops() // 2


def activation_bytes(model: nn.Module, image: torch.Tensor) -> int:
    """Bytes every layer reads and writes if each reads its input and writes its output once: the least
    memory traffic of an unfused forward pass, for the bandwidth side of the roofline."""
    total = 0

    def count(_: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        nonlocal total
        total += sum(t.numel() * t.element_size() for t in (*inputs, output) if isinstance(t, torch.Tensor))

    leaves = [module for module in model.modules() if not list(module.children())]
    handles = [module.register_forward_hook(count) for module in leaves]
    try:
        with torch.inference_mode():
            model(image)
    finally:
        for handle in handles:
            handle.remove()
    return total


def unfused(model: TransformerNet) -> TransformerNet:
    """The same network with every FusedUpsampleConv as the plain upsample -> pad -> conv it equals."""
    model = copy.deepcopy(model)
    for parent in list(model.modules()):
        for name, child in parent.named_children():
            if isinstance(child, FusedUpsampleConv):
                setattr(
                    parent,
                    name,
                    nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), nn.ReflectionPad2d(1), child.conv),
                )
    return model


class Blended(nn.Module):
    """A network of several styles run with an even blend of all of them (the most work a choice of style makes)."""

    def __init__(self, model: TransformerNet) -> None:
        super().__init__()
        self.model = model
        self.register_buffer("weights", torch.full((model.num_styles,), 1 / model.num_styles))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.model(image, self.weights)


def variant_config(variant: str, *overrides: str) -> dict:
    """conf/model/<name>.yaml's arguments; a variant written `name:key=value,key=value` changes some of them
    (e.g. `realtime:num_residual_blocks=3`: the depth and width levers without a YAML file per setting)."""
    name, _, changes = variant.partition(":")
    return model_config(name, [f"model.{change}" for change in changes.split(",") if change] + list(overrides))


def build(variant: str, styles: int) -> nn.Module:
    model = TransformerNet(**variant_config(variant, f"model.num_styles={styles}"))
    return model if styles == 1 else Blended(model)


def bench_variants(
    device: torch.device,
    variants: list[str],
    sizes: list[str],
    warmup: int,
    repeats: int,
    precisions: list[tuple[str, torch.dtype, bool]],
    compile_mode: str | None = None,
    batch: int = 1,
    styles: Sequence[int] = (1,),
) -> list[str]:
    if compile_mode:
        precisions = precisions + [(f"{label}, compiled", dtype, last) for label, dtype, last in precisions]
    header = "| variant | size | params | GMAC | MB moved | " + " | ".join(label for label, _, _ in precisions) + " |"
    rows = [header, "|" + " --- |" * (5 + len(precisions))]
    print("\n".join(rows), flush=True)
    baseline: dict[tuple[str, str], float] = {}
    for variant, count in ((variant, count) for variant in variants for count in styles):
        model = build(variant, count).to(device).eval()
        name = variant if count == 1 else f"{variant}, {count} styles"
        params = sum(p.numel() for p in model.parameters())
        for size in sizes:
            width, height = parse_size(size)
            cells = []
            macs = multiply_accumulates(model, torch.rand(1, 3, height, width, device=device))
            moved = activation_bytes(model, torch.rand(1, 3, height, width, device=device))
            for label, dtype, channels_last in precisions:
                memory_format = torch.channels_last if channels_last else torch.contiguous_format
                net = copy.deepcopy(model).to(dtype=dtype, memory_format=memory_format)
                if label.endswith("compiled"):
                    net = torch.compile(net, mode=compile_mode)
                image = torch.rand(batch, 3, height, width, device=device, dtype=dtype).to(memory_format=memory_format)
                with torch.inference_mode():
                    seconds = median_seconds(lambda: net(image), device, warmup, repeats)
                baseline.setdefault((label, size), seconds)
                ratio = baseline[(label, size)] / seconds
                cells.append(f"{seconds * 1000:.1f} ms, {batch / seconds:.1f} fps ({ratio:.1f}x)")
            rows.append(
                f"| {name} | {size} | {params / 1e6:.3f} M | {macs / 1e9:.2f} | {moved / 1e6:.0f} | "
                + " | ".join(cells)
                + " |"
            )
            print(rows[-1], flush=True)
    return rows


def bench_onnxruntime(variants: list[str], sizes: list[str], warmup: int, repeats: int) -> list[str]:
    """PyTorch against onnxruntime on the CPU, fp32, each variant exported as python -m stylenet.export does."""
    onnxruntime = needs("onnxruntime", "onnx")
    cpu = torch.device("cpu")
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    rows = [
        f"| variant | size | PyTorch fp32 | onnxruntime {onnxruntime.__version__} fp32 | PyTorch / onnxruntime |",
        "| --- | --- | --- | --- | --- |",
    ]
    print("\n".join(rows), flush=True)
    with tempfile.TemporaryDirectory() as folder:
        for variant in variants:
            model = TransformerNet(**variant_config(variant)).eval()
            path = Path(folder) / f"{variant.replace(':', '_').replace('=', '_').replace(',', '_')}.onnx"
            export_onnx(model, path, "{}", opset=18)
            session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
            for size in sizes:
                width, height = parse_size(size)
                image = torch.rand(1, 3, height, width)
                with torch.inference_mode():
                    torch_seconds = median_seconds(lambda: model(image), cpu, warmup, repeats)
                array = image.numpy()
                onnx_seconds = median_seconds(lambda: session.run(None, {"image": array}), cpu, warmup, repeats)
                rows.append(
                    f"| {variant} | {size} | {torch_seconds * 1000:.1f} ms | {onnx_seconds * 1000:.1f} ms | "
                    f"{torch_seconds / onnx_seconds:.2f}x |"
                )
                print(rows[-1], flush=True)
    return rows


def bench_ablation(variant: str, size: str, warmup: int, repeats: int) -> list[str]:
    """Each CPU optimisation of the fast path on and off, at one size."""
    width, height = parse_size(size)
    model = TransformerNet(**variant_config(variant)).eval()
    image = torch.rand(1, 3, height, width)
    cpu = torch.device("cpu")
    plain = unfused(model)

    def with_autograd(net: nn.Module) -> Callable[[], object]:
        return lambda: net(image)

    def inference(net: nn.Module, batch: torch.Tensor) -> Callable[[], object]:
        def run() -> object:
            with torch.inference_mode():
                return net(batch)

        return run

    last = copy.deepcopy(model).to(memory_format=torch.channels_last)
    cases = [
        ("unfused upsampling, autograd on", with_autograd(plain)),
        ("unfused upsampling, inference_mode", inference(plain, image)),
        ("fused upsampling, inference_mode (what stylenet runs)", inference(model, image)),
        (
            "fused upsampling, inference_mode, channels_last",
            inference(last, image.to(memory_format=torch.channels_last)),
        ),
    ]
    rows = [f"| {variant} at {size}, CPU | median |", "| --- | --- |"]
    print("\n".join(rows), flush=True)
    for label, run in cases:
        rows.append(f"| {label} | {median_seconds(run, cpu, warmup, repeats) * 1000:.1f} ms |")
        print(rows[-1], flush=True)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variants", nargs="+", default=VARIANTS)
    parser.add_argument("--sizes", nargs="+", default=SIZES, help="WIDTHxHEIGHT")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: torch's choice)")
    parser.add_argument("--device", choices=["cpu", "cuda", "all"], default="all")
    parser.add_argument("--ablation", action="store_true", help="also measure each CPU optimisation of 'fast'")
    parser.add_argument(
        "--compile",
        nargs="?",
        const="default",
        default=None,
        metavar="MODE",
        help="also measure every precision under torch.compile (optionally a mode: reduce-overhead "
        "uses CUDA graphs, max-autotune searches kernels)",
    )
    parser.add_argument("--batch", type=int, default=1, help="images per call (video frames); fps counts images")
    parser.add_argument(
        "--onnxruntime",
        action="store_true",
        help="also compare PyTorch with onnxruntime on the CPU (needs the onnx extra)",
    )
    parser.add_argument("--styles", nargs="+", type=int, default=[1], help="styles per network, e.g. 1 5")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, one run each: does the script work")
    args = parser.parse_args()
    if args.smoke:
        args.sizes, args.repeats, args.warmup = ["40x24"], 1, 0
    if args.threads:
        torch.set_num_threads(args.threads)
    for size in args.sizes:
        try:
            parse_size(size)
        except StylenetError:
            print(f"error: sizes must look like 1920x1080 (width x height), got '{size}'", file=sys.stderr)
            return 2
    sizes = args.sizes

    devices = [torch.device("cpu")] if args.device in ("cpu", "all") else []
    if args.device in ("cuda", "all") and torch.cuda.is_available():
        devices.append(torch.device("cuda"))
    elif args.device == "cuda":
        print("error: --device cuda but no CUDA device is available", file=sys.stderr)
        return 2

    for device in devices:
        print(f"\n### {device.type.upper()}: {describe_machine(device)}\n", flush=True)
        if device.type == "cpu":
            precisions = [("fp32", torch.float32, False)]
        else:
            half = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
            name = str(half).split(".")[-1]
            precisions = [("fp32", torch.float32, False), (name, half, False), (f"{name} channels_last", half, True)]
        print(f"batch {args.batch}" + (f", torch.compile mode {args.compile}" if args.compile else "") + "\n")
        bench_variants(
            device, args.variants, sizes, args.warmup, args.repeats, precisions, args.compile, args.batch, args.styles
        )
        print("\n(ratio: the first variant's latency over this one's, same size and precision)")
        if device.type == "cpu" and args.ablation:
            print()
            bench_ablation("fast", sizes[-1] if args.smoke else "1000x1000", args.warmup, args.repeats)
        if device.type == "cpu" and args.onnxruntime:
            print()
            try:
                bench_onnxruntime(args.variants, sizes, args.warmup, args.repeats)
            except StylenetError as error:
                print(f"error: {error}", file=sys.stderr)
                return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
