"""What the tests share besides fixtures: generated images, entry points run as a user runs them, TensorBoard
read back, the overrides of a tiny training run, and faults to inject."""

from __future__ import annotations

import io
import logging
import os
import runpy
import signal
import subprocess
import sys
import traceback
import warnings
from collections.abc import Callable
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator


def random_image(height: int, width: int, seed: int = 0) -> Image.Image:
    """Smooth random colours plus noise: something a network can learn from in a few steps."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width] / max(height, width)
    base = np.stack([np.sin(6 * x + seed), np.cos(5 * y - seed), np.sin(4 * (x + y))], axis=-1) * 0.4 + 0.5
    noisy = base + rng.normal(0, 0.08, size=base.shape)
    return Image.fromarray((np.clip(noisy, 0, 1) * 255).astype(np.uint8))


def write_images(folder: Path, count: int, size: tuple[int, int] = (40, 48)) -> list[Path]:
    """`count` PNG/JPEG files, some in a subfolder, of slightly different sizes."""
    paths = []
    for index in range(count):
        sub = folder / "nested" if index % 2 else folder
        sub.mkdir(parents=True, exist_ok=True)
        path = sub / f"photo_{index}.{'jpg' if index % 3 == 0 else 'png'}"
        random_image(size[0] + index, size[1] - index, seed=index).save(path)
        paths.append(path)
    return paths


CHILD_HOOKS = Path(__file__).parent / "child_hooks"


def entry_env(cwd: Path, **extra: str) -> dict[str, str]:
    """The environment of an entry point started by a test: caches inside `cwd`."""
    return dict(os.environ, STYLENET_CACHE=str(cwd / "cache"), TORCH_HOME=str(cwd / "torch_home"), **extra)


def process_env(cwd: Path, **extra: str) -> dict[str, str]:
    """entry_env for a process of its own, with tests/child_hooks first on PYTHONPATH: Python then imports its
    sitecustomize at start-up, which switches the network off as the test process has it."""
    env = entry_env(cwd, **extra)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(CHILD_HOOKS), env.get("PYTHONPATH")]))
    return env


class Killed(BaseException):
    """A kill -9 in the middle of a run started with run_entry: nothing of the entry point's error handling
    catches it (it is not an Exception), so the run ends where it was, as a killed process would."""


@dataclass
class Finished:
    """What a run of an entry point left: its exit status (negative: ended by that signal) and its output."""

    returncode: int
    stdout: str
    stderr: str


def exit_status(error: SystemExit) -> int:
    """What the interpreter makes of sys.exit(value)."""
    if error.code is None or isinstance(error.code, int):
        return error.code or 0
    return 1


def run_entry(module: str, *overrides: str, cwd: Path, **env: str) -> Finished:
    """`python -m stylenet.<module> overrides...` run in this process as the interpreter runs it (run_as_main).

    Faults are injected with pytest's monkeypatch around the call (a function that raises Killed, sends
    SIGINT, ...). What needs a process of its own (a real signal from outside, torchrun) uses run_cli."""
    return run_as_main(
        lambda: runpy.run_module(f"stylenet.{module}", run_name="__main__", alter_sys=True),
        [f"stylenet.{module}", *overrides],
        cwd,
        entry_env(cwd, **env),
    )


def run_script(path: Path, *arguments: str, cwd: Path) -> Finished:
    """`python scripts/<name>.py arguments...` run in this process as the interpreter runs it (run_as_main), the
    script's folder first on the path as Python puts it there (scripts import their shelf module so)."""

    def run() -> object:
        sys.path.insert(0, str(path.parent))
        try:
            return runpy.run_path(str(path), run_name="__main__")
        finally:
            sys.path.remove(str(path.parent))

    return run_as_main(run, [str(path), *arguments], cwd, {})


def run_as_main(run: Callable[[], object], argv: list[str], cwd: Path, env: dict[str, str]) -> Finished:
    """Run a program's `__main__` in this process with its own sys.argv, working directory, environment, stdout
    and stderr, and what the interpreter makes of how it ends (exit status, a traceback); restore all of it and
    what a program may change for the rest of the process (sys.path, logging, warnings, torch's threads, and
    torch.compile's caches: a function compiled again at other sizes would be compiled with dynamic shapes)."""
    import torch

    saved_argv, saved_path, saved_cwd, saved_env = sys.argv[:], sys.path[:], os.getcwd(), dict(os.environ)
    saved_threads = torch.get_num_threads()
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    stdout, stderr = io.StringIO(), io.StringIO()
    os.environ.update(env)
    os.chdir(cwd)
    sys.argv = argv
    code = 0
    try:
        with redirect_stdout(stdout), redirect_stderr(stderr), warnings.catch_warnings():
            try:
                run()
            except Exception:  # what the interpreter prints for an uncaught exception
                traceback.print_exc()
                code = 1
    except SystemExit as error:
        code = exit_status(error)
    except Killed:
        code = -signal.SIGKILL
    except KeyboardInterrupt:
        code = -signal.SIGINT
    finally:
        sys.argv, sys.path[:] = saved_argv, saved_path
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_env)
        torch.set_num_threads(saved_threads)
        torch.compiler.reset()
        for handler in root.handlers:  # Hydra's: the run's log file and the redirected streams
            if handler not in saved_handlers:
                handler.close()
        root.handlers[:], root.level = saved_handlers, saved_level
    return Finished(code, stdout.getvalue(), stderr.getvalue())


def run_cli(module: str, *overrides: str, cwd: Path, timeout: float = 300, **env: str) -> Finished:
    """`python -m stylenet.<module>` in a new interpreter: for what only a process shows (start-up, exit status
    as the shell sees it, signals from outside)."""
    done = subprocess.run(
        [sys.executable, "-m", f"stylenet.{module}", *overrides],
        cwd=cwd,
        env=process_env(cwd, **env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return Finished(done.returncode, done.stdout, done.stderr)


def after_calls(
    monkeypatch: pytest.MonkeyPatch, owner: Any, name: str, calls: int, action: Callable[[tuple[Any, ...]], None]
) -> None:
    """Call `action(args)` right after the `calls`-th call of owner.name (a fault: Killed, a Ctrl-C, NaN weights)."""
    original = getattr(owner, name)
    count = 0

    def wrapped(*args: Any, **kwargs: Any) -> Any:
        nonlocal count
        result = original(*args, **kwargs)
        count += 1
        if count == calls:
            action(args)
        return result

    monkeypatch.setattr(owner, name, wrapped)


def kill(_: tuple[Any, ...]) -> None:
    raise Killed


def ctrl_c(_: tuple[Any, ...]) -> None:
    os.kill(os.getpid(), signal.SIGINT)


def read_scalars(run_dir: Path) -> EventAccumulator:
    """The TensorBoard events a run wrote, read back as a user's TensorBoard would."""
    events = EventAccumulator(str(run_dir / "tensorboard"), size_guidance={"scalars": 0, "images": 0})
    events.Reload()
    return events


def tiny_train_overrides(root: Path, run_dir: Path, steps: int = 30) -> list[str]:
    return [
        "model=tiny",
        "loss.pretrained=false",
        f"data.root={root / 'photos'}",
        f"style.image={root / 'style.png'}",
        "style.name=tiny_style",
        "data.image_size=32",
        "data.batch_size=2",
        "data.workers=0",
        f"steps={steps}",
        "log_interval=1",
        "preview.interval=10",
        "preview.count=2",
        "checkpoint_interval=10",
        "keep_checkpoints=2",
        f"hydra.run.dir={run_dir}",
        f"checkpoint_dir={run_dir.parent / 'checkpoints'}",
        "lr=3e-3",
        "loss.style_layer_norm=auto",
        "loss.content_weight=3e5",
    ]


def multi_style_overrides(root: Path, run_dir: Path, steps: int = 30) -> list[str]:
    """tiny_train_overrides for a network of two styles, 'first' and 'second' (style=multi)."""
    single = [
        o for o in tiny_train_overrides(root, run_dir, steps) if not o.startswith(("style.image=", "style.name="))
    ]
    return single + [
        "style=multi",
        f"style.images={{first: {root / 'style.png'}, second: {root / 'style_b.png'}}}",
        "style.name=pair",
    ]


@dataclass
class TrainedRun:
    root: Path
    run_dir: Path
    checkpoint: Path
    result: Finished
