"""Continuing a training run: what a training snapshot holds, which snapshot continues a run, and
putting one back. A snapshot continues a run only when the options that shape the result match
(fingerprint); everything else about the run (steps, intervals, workers) may change between sessions."""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from stylenet.common.atomic import unwritable
from stylenet.common.errors import StylenetError
from stylenet.loss.perceptual import PerceptualLoss
from stylenet.nets.network_file import FORMAT_VERSION, atomic_save, read_payload
from stylenet.nets.transformer import TransformerNet

log = logging.getLogger("stylenet.train")

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; one training per run folder is then the user's to keep
    fcntl = None  # type: ignore[assignment]


@contextmanager
def hold_run_folder(folder: Path) -> Iterator[None]:
    """One training at a time in a run folder: a second one (two `resume=auto` runs given one hydra.run.dir)
    is refused instead of both writing snapshots there. The lock is the kernel's (flock on <folder>/.lock): it
    ends with the process however it ends, kill -9 included, so a killed run's folder is free to resume at once."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        stream = open(folder / ".lock", "a+")
    except OSError as error:
        raise unwritable(folder / ".lock", error) from None
    with stream:
        if fcntl is not None:
            try:
                fcntl.flock(stream, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                stream.seek(0)
                owner = stream.read().strip() or "another process"
                raise StylenetError(
                    f"the run folder {folder} is in use by a training that is still running ({owner}): wait for "
                    f"it to end, or give this run another folder (hydra.run.dir=...)"
                ) from None
        stream.seek(0)
        stream.truncate()
        stream.write(f"pid {os.getpid()} on {socket.gethostname()}, since {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
        stream.flush()
        yield


@dataclass
class Position:
    """Where training is: steps taken, and items of the current epoch's order already used."""

    step: int = 0
    epoch: int = 0
    offset: int = 0


def training_payload(
    model: TransformerNet,
    optimizer: torch.optim.Optimizer,
    model_cfg: dict[str, Any],
    style: str,
    fingerprint: dict[str, Any],
    step: int,
    epoch: int,
    offset: int,
    **state: Any,
) -> dict[str, Any]:
    """Everything an exact resume needs. The data order is a function of (seed, epoch), so the
    position is (epoch, offset); the torch generators are stored for any random layer a variant adds.
    `state`: further plain data of the run (last losses, effective style layer weights)."""
    return {
        "kind": "training",
        "format_version": FORMAT_VERSION,
        "step": step,
        "epoch": epoch,
        "offset": offset,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "model_cfg": dict(model_cfg),
        "style": style,
        "fingerprint": fingerprint,
        "rng": {
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        },
        **state,
    }


def differences(stored: dict[str, Any], current: dict[str, Any], prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two nested dicts, for messages that name the mismatch. An option
    the stored run did not have yet matches while it is off now (0, false, null): a run started before
    loss.equivariance_weight existed resumes unless the term is turned on."""
    keys = sorted(set(stored) | set(current))
    found = []
    for key in keys:
        a, b = stored.get(key), current.get(key)
        if key not in stored and not b:
            continue
        if isinstance(a, dict) and isinstance(b, dict):
            found += differences(a, b, f"{prefix}{key}.")
        elif a != b:
            found.append(f"{prefix}{key}: snapshot {a!r}, now {b!r}")
    return found


def load_snapshot(path: str | Path) -> dict[str, Any]:
    """A run's resumable training state, refused unless it is a plain-data stylenet snapshot."""
    return read_payload(Path(path).expanduser(), "training")


def latest_snapshot(search_root: Path, fingerprint: dict[str, Any]) -> tuple[Path, dict[str, Any]] | None:
    """The newest readable snapshot of a run with the same fingerprint below `search_root`.

    An unreadable one (say, from a disk that filled up) is skipped for the one before it.
    """
    candidates = sorted(
        Path(search_root).glob("*/checkpoints/step_*.pt"), key=lambda p: p.stat().st_mtime, reverse=True
    )
    for path in candidates:
        try:
            payload = load_snapshot(path)
        except StylenetError as error:
            log.warning("ignoring %s", error)
            continue
        if not differences(payload.get("fingerprint", {}), fingerprint):  # options added since count as unset
            return path, payload
    return None


def fingerprint(resolved: Mapping[str, Any]) -> dict[str, Any]:
    """What of a run's options (train's, as plain nested dicts) must match for a snapshot to continue it:
    not steps, intervals or workers."""
    kept = {key: resolved[key] for key in ("style", "model", "loss", "seed", "optimizer", "add_style_to")}
    data = resolved["data"]
    kept["data"] = {
        "source": data["cache"] or data["root"],
        "image_size": data["image_size"],
        "batch_size": data["batch_size"],
    }
    return kept


def find_resume(resume: str | None, run_dir: Path, current: dict[str, Any]) -> tuple[Path, dict[str, Any]] | None:
    """resume=auto: the newest snapshot of a run with this config next to this run; resume=<path>: that file."""
    if not resume:
        return None
    if resume == "auto":
        found = latest_snapshot(run_dir.parent, current)
        if found is None:
            log.info("resume=auto: no earlier run of this config in %s; starting from step 0", run_dir.parent)
        return found
    payload = load_snapshot(resume)
    mismatches = differences(payload.get("fingerprint", {}), current)
    if mismatches:
        raise StylenetError(f"cannot resume from {resume}: its run had another config: " + "; ".join(mismatches))
    return Path(resume), payload


def restore(
    payload: dict[str, Any], model: nn.Module, optimizer: torch.optim.Optimizer, loss_fn: PerceptualLoss
) -> Position:
    """Put a training snapshot back: weights, optimizer, generators, style layer weights, data position."""
    model.load_state_dict(payload["model"])
    optimizer.load_state_dict(payload["optimizer"])
    torch.set_rng_state(payload["rng"]["torch"])
    if payload["rng"]["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(payload["rng"]["cuda"])
    loss_fn.use_layer_weights(payload.get("style_layer_weights"))
    return Position(payload["step"], payload["epoch"], payload["offset"])


class Snapshots:
    """The training snapshots of one run, <run dir>/checkpoints/step_<n>.pt; the newest `keep` are kept."""

    def __init__(self, folder: Path, keep: int) -> None:
        self.folder, self.keep = folder, keep

    def save(self, payload: dict[str, Any], step: int) -> None:
        atomic_save(payload, self.folder / f"step_{step:07d}.pt")
        for old in self.saved()[: -self.keep]:
            old.unlink()

    def saved(self) -> list[Path]:
        return sorted(self.folder.glob("step_*.pt"))


def snapshot_writer(
    snapshots: Snapshots,
    model: TransformerNet,
    optimizer: torch.optim.Optimizer,
    model_cfg: dict[str, Any],
    name: str,
    styles: list[str],
    current: dict[str, Any],
    loss_fn: PerceptualLoss,
) -> Callable[[Position, dict[str, float]], None]:
    """What the loop calls to write a snapshot at a position, with the last losses and the style layer weights.
    `styles` names the network's styles, so that a snapshot also loads as a network
    (nets.network_file.load_network_file)."""

    def save(at: Position, last_losses: dict[str, float]) -> None:
        payload = training_payload(
            model,
            optimizer,
            model_cfg,
            name,
            current,
            at.step,
            at.epoch,
            at.offset,
            styles=styles,
            last_losses=last_losses,
            style_layer_weights=loss_fn.style_layer_weights,
        )
        snapshots.save(payload, at.step)

    return save
