"""The shape of the code that keeps it easy to change: entry points stay thin and nothing imports them, and the
library's sub-packages import only the layers below them."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "stylenet"


# The library's layers, lowest first: a sub-package imports its own modules and those of lower layers only.
LAYERS = [{"common"}, {"nets", "vgg"}, {"data"}, {"loss"}, {"training", "inference"}, {"config"}]
RANK = {package: rank for rank, packages in enumerate(LAYERS) for package in packages}


def entry_points() -> set[str]:
    """stylenet/<task>.py files run with python -m: the ones with a __main__ guard."""
    return {path.stem for path in PACKAGE.glob("*.py") if 'if __name__ == "__main__":' in path.read_text()}


def imported_modules(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            if node.module == "stylenet":
                found.update(f"stylenet.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def statements(path: Path) -> int:
    """Statements in a module, its imports left out."""
    tree = ast.parse(path.read_text())
    return sum(
        isinstance(node, ast.stmt) and not isinstance(node, ast.Import | ast.ImportFrom) for node in ast.walk(tree)
    )


def test_entry_points_are_thin() -> None:
    entries = entry_points()
    assert {"train", "infer", "export", "optimize", "evaluate", "precompute", "get_weights"} <= entries
    # Statements, not lines: the formatter decides how many lines a call takes. 80 was about 150 lines before it.
    sizes = {name: statements(PACKAGE / f"{name}.py") for name in entries}
    assert all(size <= 80 for size in sizes.values()), sizes


def test_the_training_run_fits_a_screen_and_no_function_grows_past_80_lines() -> None:
    """train.py tells the run; its parts live in training/ (setup, loop, snapshots, health). A function of more
    than 80 lines holds more than one idea."""
    assert len((PACKAGE / "train.py").read_text().splitlines()) <= 160
    long = [
        f"{path.relative_to(ROOT)}:{node.name} ({node.end_lineno - node.lineno + 1} lines)"
        for path in PACKAGE.rglob("*.py")
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.end_lineno is not None
        and node.end_lineno - node.lineno + 1 > 80
    ]
    assert not long, long


def test_nothing_imports_an_entry_point() -> None:
    entries = {f"stylenet.{name}" for name in entry_points()}
    sources = [*PACKAGE.rglob("*.py"), *(ROOT / "scripts").glob("*.py"), *(ROOT / "tests").rglob("*.py")]
    offenders = {
        f"{path.relative_to(ROOT)} imports {module}"
        for path in sources
        for module in imported_modules(path) & entries
        if module != f"stylenet.{path.stem}"
    }
    assert not offenders, sorted(offenders)


def test_the_top_level_holds_only_entry_points() -> None:
    """Every stylenet/<name>.py is run with python -m; the library lives in the sub-packages of LAYERS."""
    modules = {path.stem for path in PACKAGE.glob("*.py")} - {"__init__"}
    assert modules == entry_points()
    packages = {path.parent.name for path in PACKAGE.glob("*/__init__.py")}
    assert packages == set(RANK), packages ^ set(RANK)


def test_sub_packages_import_only_lower_layers() -> None:
    offenders = set()
    for path in PACKAGE.glob("*/*.py"):
        here = path.parent.name
        for module in imported_modules(path):
            parts = module.split(".")
            if parts[0] != "stylenet" or len(parts) < 2 or parts[1] == here:
                continue
            if parts[1] not in RANK or RANK[parts[1]] >= RANK[here]:
                offenders.add(f"{path.relative_to(ROOT)} imports {module}")
    assert not offenders, sorted(offenders)


def test_only_the_config_package_and_the_entry_points_know_hydra() -> None:
    """Library functions take typed options and named arguments: a reader sees what each needs."""
    offenders = {
        f"{path.relative_to(ROOT)} imports {module}"
        for path in PACKAGE.glob("*/*.py")
        if path.parent.name != "config"
        for module in imported_modules(path)
        if module.split(".")[0] in ("hydra", "omegaconf")
    }
    assert not offenders, sorted(offenders)


def test_importing_the_api_loads_no_entry_point_machinery() -> None:
    import subprocess
    import sys

    probe = (
        "import sys, stylenet; print(sorted(name for name in ('hydra', 'tensorboard', 'stylenet.vgg.encoder', "
        "'stylenet.train', 'stylenet.training.loop') if name in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_entry_points_start_without_torchvision() -> None:
    """torchvision.models takes seconds to import (it loads torch's compiler stack); only loading ImageNet
    weights needs it, so starting an entry point must not pay for it."""
    import subprocess
    import sys

    probe = (
        "import sys, stylenet.train, stylenet.infer, stylenet.evaluate, stylenet.optimize; "
        "print('torchvision' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def test_no_import_cycle_anywhere() -> None:
    """Not between sub-packages and not inside one, deferred (in-function) imports included: a cycle that works
    only because one edge waits until a call is a knot a reader has to untie first."""
    modules = {module_name(path): path for path in PACKAGE.rglob("*.py")}
    edges: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module in modules:
                # `from stylenet.inference import onnx_backend` imports that module, not the package's __init__.
                named = {f"{node.module}.{alias.name}" for alias in node.names} & modules.keys()
                targets |= named or {node.module}
            elif isinstance(node, ast.Import):
                targets |= {alias.name for alias in node.names} & modules.keys()
        edges[name] = targets - {name}

    def cycle_from(start: str) -> list[str] | None:
        path: list[str] = []

        def visit(node: str) -> list[str] | None:
            if node in path:
                return path[path.index(node) :] + [node]
            path.append(node)
            for target in sorted(edges.get(node, ())):
                if target == "stylenet" and node.startswith("stylenet."):
                    continue  # the package itself: `import stylenet` in a sub-module is the API, not a cycle
                found = visit(target)
                if found:
                    return found
            path.pop()
            return None

        return visit(start)

    cycles = {" -> ".join(found) for name in sorted(modules) if (found := cycle_from(name))}
    assert not cycles, sorted(cycles)


def test_training_says_snapshot_for_its_resumable_state() -> None:
    """README's Words: a snapshot is a run's resumable state, a network file what inference loads. Training's code
    says "checkpoint" only in the option names users already type (checkpoint_interval, keep_checkpoints,
    checkpoint_dir) and the run folder's checkpoints/ folder."""
    allowed = ("checkpoint_interval", "keep_checkpoints", "checkpoint_dir", '"checkpoints"', "checkpoints/")
    offenders = [
        f"{path.relative_to(ROOT)}:{number}"
        for path in [PACKAGE / "train.py", *(PACKAGE / "training").glob("*.py")]
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if "checkpoint" in line.lower() and not any(word in line for word in allowed)
    ]
    assert not offenders, offenders
