"""Device choice, seeding and stop requests, shared by every entry point."""

from __future__ import annotations

import logging
import os
import random
import signal
import threading

import numpy as np
import torch

from stylenet.errors import StylenetError

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

    def __enter__(self) -> "StopRequest":
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
