"""Device choice, distributed start-up, seeding and stop requests, shared by the entry points."""

from __future__ import annotations

import logging
import os
import random
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import torch
import torch.distributed as dist

from stylenet.common.errors import StylenetError

log = logging.getLogger(__name__)

DEVICES = ("auto", "cpu", "cuda", "mps")


def pick_device(name: str = "auto") -> torch.device:
    """'auto' means CUDA, then Apple's MPS, then the CPU; an explicit choice that is not present is an error."""
    if name not in DEVICES and not str(name).startswith("cuda:"):
        raise StylenetError(f"unknown device '{name}'; choose one of {', '.join(DEVICES)} (or cuda:N)")
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if str(name).startswith("cuda") and not torch.cuda.is_available():
        raise StylenetError(f"device={name} was asked for, but no CUDA device is available (use device=auto or cpu)")
    if name == "mps" and not torch.backends.mps.is_available():
        raise StylenetError("device=mps was asked for, but MPS is not available (use device=auto or cpu)")
    return torch.device(name)


def data_workers(setting: int | str) -> int:
    """data.workers: a count, or 'auto' = the processors this process may use less one (the training
    loop needs one), at most 4; never more than PyTorch's DataLoader suggests, so no warning on a plain run."""
    if setting == "auto":
        available = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        return max(0, min(4, available - 1))
    if not isinstance(setting, int) or isinstance(setting, bool) or setting < 0:
        raise StylenetError(f"data.workers must be auto or 0 or more, got {setting}")
    return setting


@dataclass(frozen=True)
class Distributed:
    """Where this process stands in a torchrun job; rank 0 of world 1 when not distributed."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def mean(self, values: torch.Tensor) -> torch.Tensor:
        """The average of `values` over the ranks (the values themselves in a single process)."""
        if self.world > 1:
            values = values.clone()
            dist.all_reduce(values)
            values /= self.world
        return values

    def any(self, flag: bool, device: torch.device) -> bool:
        """True on every rank when `flag` is true on any: decisions that all ranks must take together."""
        if self.world == 1:
            return flag
        value = torch.tensor([float(flag)], device=device)
        dist.all_reduce(value, op=dist.ReduceOp.MAX)
        return bool(value.item())

    def finished(self) -> None:
        """Wait until every rank has finished: a rank that tears its group down while another is still at work
        can make gloo abort that one (SIGABRT at the end of a run that trained well)."""
        if self.world > 1:
            dist.barrier()

    def close(self) -> None:
        if self.world > 1 and dist.is_initialized():
            dist.destroy_process_group()

    def from_main(self, value: object) -> object:
        """Rank 0's `value`, on every rank."""
        if self.world == 1:
            return value
        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]


def quiet_logging() -> None:
    """For ranks other than 0: warnings and errors on the console only, no lines in rank 0's log file."""
    root = logging.getLogger()
    for handler in [handler for handler in root.handlers if isinstance(handler, logging.FileHandler)]:
        root.removeHandler(handler)
    root.setLevel(logging.WARNING)


def start_distributed(device_name: str) -> tuple[Distributed, torch.device]:
    """Join the torchrun job this process belongs to (WORLD_SIZE > 1), else run alone.

    NCCL and one GPU per process (cuda:LOCAL_RANK) on CUDA; gloo on the CPU.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return Distributed(), pick_device(device_name)
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    device = pick_device(device_name)
    if device.type == "cuda":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    elif device.type != "cpu":
        raise StylenetError(f"distributed training runs on CUDA (NCCL) or the CPU (gloo), not {device.type}")
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return Distributed(rank, world, local_rank), device


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (the data order has its own seed: data.EpochSampler)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


class StopRequest:
    """SIGINT/SIGTERM during long work: the task finishes its step and saves its progress. A second signal aborts."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.owner = os.getpid()  # DataLoader workers inherit the handler; Ctrl-C reaches them too

    def __enter__(self) -> StopRequest:
        self.previous = {sig: signal.signal(sig, self.handle) for sig in (signal.SIGINT, signal.SIGTERM)}
        return self

    def handle(self, signum: int, frame: object) -> None:
        if os.getpid() != self.owner:
            return
        if self.event.is_set():
            raise KeyboardInterrupt
        self.event.set()
        log.warning("%s received: stopping after this step and saving progress", signal.Signals(signum).name)

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)


def leave_stopping_to_the_main_process(worker_id: int) -> None:
    """DataLoader `worker_init_fn`: a worker ignores SIGINT and SIGTERM. A signal sent to the whole process
    group (Ctrl-C, `pkill -f`, a batch scheduler) would otherwise end the workers first (torch's worker dies
    on a SIGTERM from anyone but its parent), and the main process would fail on the dead worker instead of
    finishing its step and writing its snapshot. The main process still ends its workers as usual."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)


T = TypeVar("T")


def timed(run: Callable[[], T], device: torch.device) -> tuple[T, float]:
    """`run()` and its wall time; waits for the GPU before and after so that its work is counted."""
    if device.type == "cuda":
        torch.cuda.synchronize()
    started = time.perf_counter()
    result = run()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return result, time.perf_counter() - started
