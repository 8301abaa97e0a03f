"""What the scripts in scripts/ share: timing that counts GPU work, the line that says what a measurement was
taken on, WIDTHxHEIGHT sizes, and training a network through the real entry point.

Scripts import it as `shelf` (Python puts a script's own folder first on its path); nothing in the installed
package uses it."""

from __future__ import annotations

import platform
import statistics
import subprocess
import sys
from collections.abc import Callable
from datetime import datetime, timezone

import torch
from torch.autograd import DeviceType
from torch.profiler import ProfilerActivity, profile

from stylenet.common.errors import StylenetError
from stylenet.common.runtime import timed


def median_seconds(run: Callable[[], object], device: torch.device, warmup: int, repeats: int) -> float:
    """Median wall time of `run` after `warmup` untimed calls."""
    for _ in range(warmup):
        run()
    return statistics.median(timed(run, device)[1] for _ in range(repeats))


def device_busy_share(run: Callable[[], object], device: torch.device) -> float:
    """Share of `run`'s wall time that the GPU spends executing kernels and copies, from the profiler:
    near 1 means the GPU is the limit; far below 1 means the host side is (Python, kernel launches,
    data loading). NaN off CUDA."""
    if device.type != "cuda":
        return float("nan")
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as profiler:
        _, seconds = timed(run, device)
    busy_us = sum(event.time_range.elapsed_us() for event in profiler.events() if event.device_type == DeviceType.CUDA)
    return busy_us / 1e6 / seconds


def describe_machine(device: torch.device) -> str:
    """One line for benchmark tables: the processor or GPU, thread count, versions and date."""
    if device.type == "cuda":
        what = f"{torch.cuda.get_device_name(device)}, CUDA {torch.version.cuda}"
    else:
        what = f"{_cpu_name()}, {torch.get_num_threads()} threads"
    return (
        f"{what}; torch {torch.__version__}, Python {platform.python_version()}; {datetime.now(timezone.utc):%Y-%m-%d}"
    )


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as info:
            return next(line.split(":", 1)[1].strip() for line in info if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def train_network(name: str, overrides: list[str]) -> None:
    """One `python -m stylenet.train` run with these overrides, as a user would start it; a failure is a
    StylenetError that ends with the run's last error lines."""
    result = subprocess.run([sys.executable, "-m", "stylenet.train", *overrides], capture_output=True, text=True)
    if result.returncode != 0:
        raise StylenetError(f"training {name} failed:\n{result.stderr[-2000:]}")


def parse_size(text: str) -> tuple[int, int]:
    """'1280x720' -> (1280, 720): width and height."""
    try:
        width, height = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise StylenetError(f"a size is WIDTHxHEIGHT, e.g. 1280x720; got '{text}'") from None
    return width, height
