"""The CPU settings left to measure for real time, on one network, in one run: thread counts (PyTorch and
onnxruntime), channels-last memory (oneDNN's preferred layout) and torch.compile (inductor, C++ on CPU).

    python scripts/bench_cpu_levers.py [--network starry_night_realtime] [--sizes 1000x1000 1280x720] [--repeats 5]

Each cell: the median of --repeats network calls (a float32 batch of one, no PIL conversion) after a warm-up,
and the ratio to the first row (the default path: onnxruntime with its own thread choice). torch.compile's
first call (the compilation) is reported apart. int8 is measured by scripts/bench_int8.py.
"""

from __future__ import annotations

import argparse
import copy
import os
import sys
import time
from collections.abc import Callable

import numpy as np
import torch
from shelf import describe_machine, median_seconds, parse_size

import stylenet
from stylenet.common.errors import needs
from stylenet.inference.onnx_backend import cached_export
from stylenet.inference.stylizer import TorchStylizer
from stylenet.nets.network_file import load_network_file, resolve_network_file


def onnx_runner(path: str, threads: int | None) -> Callable[[np.ndarray], object]:
    onnxruntime = needs("onnxruntime", "onnx")
    options = onnxruntime.SessionOptions()
    if threads is not None:
        options.intra_op_num_threads = threads
    session = onnxruntime.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    return lambda image: session.run(None, {"image": image})


def torch_runner(model: torch.nn.Module, threads: int, channels_last: bool = False) -> Callable[[np.ndarray], object]:
    """`model` (already in the memory format) run on `threads` threads, its input in the same format."""
    layout = torch.channels_last if channels_last else torch.contiguous_format

    def run(image: np.ndarray) -> object:
        torch.set_num_threads(threads)
        with torch.inference_mode():
            return model(torch.from_numpy(image).contiguous(memory_format=layout))

    return run


def compiled_runner(model: torch.nn.Module, threads: int, channels_last: bool) -> Callable[[np.ndarray], object]:
    compiled = torch.compile(own_copy(model, channels_last), dynamic=False)
    return torch_runner(compiled, threads, channels_last)


def own_copy(model: torch.nn.Module, channels_last: bool) -> torch.nn.Module:
    """.to(memory_format) changes a module in place: each row gets its own copy."""
    layout = torch.channels_last if channels_last else torch.contiguous_format
    return copy.deepcopy(model).to(memory_format=layout)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--network", default="starry_night_realtime", help="a zoo name or an inference file")
    parser.add_argument("--sizes", nargs="+", default=["1000x1000", "1280x720"], help="WIDTHxHEIGHT")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-compile", action="store_true", help="leave out torch.compile (needs a C++ compiler)")
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    loaded = stylenet.load(args.network, device="cpu", backend="torch")
    assert isinstance(loaded, TorchStylizer)
    model = loaded.model
    graph = str(cached_export(resolve_network_file(args.network), loaded, load_network_file(args.network)))
    rows: dict[str, Callable[[np.ndarray], object]] = {
        "onnxruntime, its own thread choice (the default path)": onnx_runner(graph, None)
    }
    for threads in sorted({1, cores}):
        rows[f"onnxruntime, {threads} thread(s)"] = onnx_runner(graph, threads)
    for threads in sorted({1, cores}):
        rows[f"PyTorch, {threads} thread(s)"] = torch_runner(own_copy(model, False), threads)
    rows[f"PyTorch, {cores} thread(s), channels_last"] = torch_runner(own_copy(model, True), cores, channels_last=True)
    compile_seconds: dict[str, float] = {}
    if not args.no_compile:
        for channels_last in (False, True):
            layout = ", channels_last" if channels_last else ""
            rows[f"PyTorch, {cores} thread(s){layout}, torch.compile (inductor)"] = compiled_runner(
                model, cores, channels_last
            )
    print(f"{describe_machine(torch.device('cpu'))}; {args.network}; median of {args.repeats} network calls\n")
    print("| setting | " + " | ".join(args.sizes) + " |")
    print("| --- |" + " --- |" * len(args.sizes))
    first: dict[str, float] = {}
    for name, run in rows.items():
        cells = []
        for size in args.sizes:
            width, height = parse_size(size)
            image = np.random.default_rng(0).random((1, 3, height, width), dtype=np.float32)
            started = time.perf_counter()
            run(image)  # warm-up; for torch.compile, the compilation at this size
            if "compile" in name:
                compile_seconds[f"{name}, {size}"] = time.perf_counter() - started
            seconds = median_seconds(lambda: run(image), torch.device("cpu"), 1, args.repeats)
            first.setdefault(size, seconds)
            cells.append(f"{seconds * 1000:.0f} ms ({first[size] / seconds:.2f}x)")
        print(f"| {name} | " + " | ".join(cells) + " |", flush=True)
    torch.set_num_threads(cores)
    for name, seconds in compile_seconds.items():
        print(f"first call (compilation) of {name}: {seconds:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
