"""`python -m stylenet.export` to ONNX and TorchScript, and `python -m stylenet.infer backend=onnxruntime`."""

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import stylenet
from stylenet.config.compose import model_config
from stylenet.inference.exported import export_onnx, largest_difference
from stylenet.inference.onnx_backend import OPSET
from stylenet.nets.transformer import TransformerNet
from tests.helpers import TrainedRun, random_image, run_entry, write_images

pytestmark = pytest.mark.slow
onnxruntime = pytest.importorskip("onnxruntime", reason="the onnx extra is not installed: pip install -e '.[onnx]'")
onnx = pytest.importorskip("onnx", reason="the onnx extra is not installed: pip install -e '.[onnx]'")


def export(trained_run: TrainedRun, output: Path, fmt: str, *extra: str):
    return run_entry(
        "export", f"checkpoint={trained_run.checkpoint}", f"format={fmt}", f"output={output}", *extra, cwd=output.parent
    )


@pytest.fixture(scope="module")
def onnx_model(trained_run: TrainedRun, tmp_path_factory: pytest.TempPathFactory) -> Path:
    output = tmp_path_factory.mktemp("export") / "tiny.onnx"
    result = export(trained_run, output, "onnx")
    assert result.returncode == 0, result.stderr
    difference = float(re.search(r"largest difference from PyTorch on a 257x321 image: (\S+)", result.stdout).group(1))
    assert difference < 1e-3
    return output


def test_onnx_export_matches_pytorch_on_an_odd_size(trained_run: TrainedRun, onnx_model: Path) -> None:
    session = onnxruntime.InferenceSession(str(onnx_model), providers=["CPUExecutionProvider"])
    batch = torch.rand(3, 3, 37, 53)
    expected = stylenet.load(trained_run.checkpoint, device="cpu")(batch).numpy()
    produced = session.run(None, {"image": batch.numpy()})[0]
    assert produced.shape == expected.shape and np.abs(produced - expected).max() < 1e-3
    metadata = json.loads(session.get_modelmeta().custom_metadata_map["stylenet"])
    assert metadata["style"] == "tiny_style" and metadata["model_cfg"]["num_residual_blocks"] == 1


@pytest.mark.parametrize("variant", ["fast", "realtime"])
def test_the_exported_graph_of_a_low_resolution_network_is_the_same_function_without_slow_operators(
    variant: str, tmp_path: Path
) -> None:
    """Exported, the upsampling stages take their plain form and the padding no index gather: onnxruntime ran
    the pixel shuffle and the gather slowly (BENCHMARKS.md). The function must not change."""
    torch.manual_seed(0)
    model = TransformerNet(
        **model_config(variant, ["model.width_multiplier=0.25", "model.num_residual_blocks=1"])
    ).eval()
    path = tmp_path / f"{variant}.onnx"
    export_onnx(model, path, "{}", OPSET)
    operators = {node.op_type for node in onnx.load(str(path)).graph.node}
    assert not operators & {"Gather", "GatherElements", "DepthToSpace"}, operators
    assert largest_difference(model, path, "onnx", (37, 53)) < 1e-4


def test_torchscript_export_matches_pytorch_on_an_odd_size(trained_run: TrainedRun, tmp_path: Path) -> None:
    output = tmp_path / "tiny.torchscript.pt"
    result = export(trained_run, output, "torchscript")
    assert result.returncode == 0, result.stderr
    extra = {"stylenet.json": ""}
    module = torch.jit.load(str(output), _extra_files=extra)
    batch = torch.rand(2, 3, 41, 29)
    expected = stylenet.load(trained_run.checkpoint, device="cpu")(batch)
    assert (module(batch) - expected).abs().max() < 1e-3
    assert json.loads(extra["stylenet.json"])["style"] == "tiny_style"


def test_export_keeps_an_existing_file_and_refuses_unknown_formats(trained_run: TrainedRun, tmp_path: Path) -> None:
    existing = tmp_path / "model.onnx"
    existing.write_bytes(b"keep me")
    result = export(trained_run, existing, "onnx")
    assert result.returncode == 2 and "exists: pass overwrite=true to replace it" in result.stderr
    assert existing.read_bytes() == b"keep me"
    result = export(trained_run, tmp_path / "model.tflite", "tflite")
    assert result.returncode == 2 and "format must be one of onnx, torchscript, got 'tflite'" in result.stderr
    for override, message in [
        ("tolerance=strict", "tolerance: Value 'strict' of type 'str' could not be converted to Float"),
        ("opset=abc", "opset: Value 'abc' of type 'str' could not be converted to Integer"),
        ("check_size=[0,0]", "check_size must be [height, width], each at least 16, got [0, 0]"),
        ("overwrite=maybe", "overwrite: Value 'maybe' is not a valid bool"),
    ]:
        result = export(trained_run, tmp_path / "model.onnx", "onnx", override)
        assert result.returncode == 2 and message in result.stderr, (message, result.stderr)
    result = export(trained_run, tmp_path / "strict.onnx", "onnx", "tolerance=0")  # ONNX differs by ~1e-6
    assert result.returncode == 2 and "differs from PyTorch by" in result.stderr and "nothing written" in result.stderr
    assert "Traceback" not in result.stderr and list(tmp_path.iterdir()) == [existing]


def test_infer_with_onnxruntime_gives_the_pytorch_result(
    trained_run: TrainedRun, onnx_model: Path, tmp_path: Path
) -> None:
    random_image(45, 61, seed=2).save(tmp_path / "photo.png")
    outputs, logs = {}, {}
    # an exported file; the inference file on PyTorch; the inference file on the default path (the suite
    # pins STYLENET_BACKEND=torch, conftest.py: here it is cleared, as on a user's machine)
    for name, backend, checkpoint in [
        ("onnx_file", "onnxruntime", onnx_model),
        ("torch", "torch", trained_run.checkpoint),
        ("default", "auto", trained_run.checkpoint),
    ]:
        result = run_entry(
            "infer",
            f"backend={backend}",
            f"checkpoint={checkpoint}",
            f"input={tmp_path / 'photo.png'}",
            f"output={tmp_path / name}.png",
            cwd=tmp_path,
            STYLENET_BACKEND="",
        )
        assert result.returncode == 0, result.stderr
        outputs[name], logs[name] = np.asarray(Image.open(tmp_path / f"{name}.png"), dtype=int), result.stdout
    assert "style 'tiny_style' (onnxruntime, CPUExecutionProvider)" in logs["onnx_file"]
    assert "style 'tiny_style' (PyTorch on cpu, float32)" in logs["torch"]
    assert "exporting tiny_style.pt to ONNX once" in logs["default"]
    assert "style 'tiny_style' (onnxruntime, CPUExecutionProvider)" in logs["default"]
    assert outputs["onnx_file"].shape == (45, 61, 3)
    assert np.abs(outputs["onnx_file"] - outputs["torch"]).max() <= 1
    assert np.abs(outputs["default"] - outputs["torch"]).max() <= 1


def test_onnxruntime_says_that_tiles_need_the_torch_backend(onnx_model: Path, tmp_path: Path) -> None:
    random_image(80, 100).save(tmp_path / "big.png")
    result = run_entry(
        "infer",
        "backend=onnxruntime",
        f"checkpoint={onnx_model}",
        f"input={tmp_path / 'big.png'}",
        f"output={tmp_path / 'out.png'}",
        "tile_size=64",
        cwd=tmp_path,
    )
    assert result.returncode == 2 and "tiles need the network in PyTorch" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "out.png").exists()


def test_an_onnx_file_refuses_the_torch_backend(onnx_model: Path, tmp_path: Path) -> None:
    random_image(40, 48).save(tmp_path / "photo.png")
    result = run_entry(
        "infer",
        "backend=torch",
        f"checkpoint={onnx_model}",
        f"input={tmp_path / 'photo.png'}",
        f"output={tmp_path / 'out.png'}",
        cwd=tmp_path,
    )
    assert result.returncode == 2 and "is an ONNX file: it runs with backend=auto or onnxruntime" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "out.png").exists()


def test_load_runs_onnxruntime_by_default_on_the_cpu(
    trained_run: TrainedRun, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from stylenet.common.errors import StylenetError
    from stylenet.inference.stylizer import TorchStylizer, stylize_picture

    monkeypatch.delenv("STYLENET_BACKEND", raising=False)  # as on a user's machine (conftest.py pins torch)
    monkeypatch.setenv("STYLENET_CACHE", str(tmp_path / "cache"))
    fast = stylenet.load(trained_run.checkpoint, device="cpu")
    reference = stylenet.load(trained_run.checkpoint, device="cpu", backend="torch")
    assert fast.describe() == "onnxruntime, CPUExecutionProvider" and reference.describe() == "PyTorch on cpu, float32"
    batch = torch.rand(2, 3, 40, 52)
    assert (fast(batch) - reference(batch)).abs().max() < 1e-4  # tensors in, tensors out, the same numbers
    picture = random_image(70, 90, seed=3)
    for options in ({}, {"tile_size": 48, "tile_overlap": 16}):  # whole, and in tiles (PyTorch's network)
        ours, theirs = stylize_picture(fast, picture, **options), stylize_picture(reference, picture, **options)
        assert np.abs(np.asarray(ours, dtype=int) - np.asarray(theirs, dtype=int)).max() <= 1
    [graph] = (tmp_path / "cache" / "onnx").glob("*.onnx")  # exported once, then read back from the cache
    written = graph.stat().st_mtime_ns
    assert stylenet.load(trained_run.checkpoint, device="cpu").describe().startswith("onnxruntime")
    assert graph.stat().st_mtime_ns == written and len(list(graph.parent.iterdir())) == 1
    # what auto leaves to PyTorch, what onnxruntime cannot do, and the environment's say
    assert isinstance(stylenet.load(trained_run.checkpoint, device="cpu", precision="bf16"), TorchStylizer)
    with pytest.raises(StylenetError, match="backend=onnxruntime runs the network in float32"):
        stylenet.load(trained_run.checkpoint, device="cpu", backend="onnxruntime", precision="bf16")
    monkeypatch.setenv("STYLENET_BACKEND", "torch")
    assert isinstance(stylenet.load(trained_run.checkpoint, device="cpu"), TorchStylizer)
    monkeypatch.setenv("STYLENET_BACKEND", "tensorrt")
    with pytest.raises(StylenetError, match="STYLENET_BACKEND=tensorrt: choose one of auto, torch, onnxruntime"):
        stylenet.load(trained_run.checkpoint, device="cpu")


def test_an_int8_export_is_quantised_calibrated_and_close_to_pytorch(trained_run: TrainedRun, tmp_path: Path) -> None:
    calibration = tmp_path / "calibration"
    write_images(calibration, 4, (64, 80))
    output = tmp_path / "tiny.int8.onnx"
    result = export(trained_run, output, "onnx", "quantize=int8", f"calibration={calibration}")
    assert result.returncode == 0, result.stderr
    assert "int8 onnx, style 'tiny_style', calibrated on 4 photos" in result.stdout
    operators = {node.op_type for node in onnx.load(str(output)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= operators
    int8, reference = stylenet.load(output, device="cpu"), stylenet.load(trained_run.checkpoint, device="cpu")
    assert int8.describe().startswith("onnxruntime") and int8.name == "tiny_style"
    batch = torch.rand(1, 3, 48, 64)
    assert (int8(batch).clamp(0, 1) - reference(batch).clamp(0, 1)).abs().mean() < 0.03
    for extra, message in [
        (["quantize=int8"], "quantize=int8 needs calibration=<a folder of photos"),
        (["quantize=int4"], "quantize must be null or one of int8, got 'int4'"),
        (["quantize=int8", f"calibration={tmp_path / 'none'}"], "no such folder"),
    ]:
        refused = export(trained_run, tmp_path / "refused.onnx", "onnx", *extra)
        assert refused.returncode == 2 and message in refused.stderr, refused.stderr
    refused = export(trained_run, tmp_path / "refused.pt", "torchscript", "quantize=int8", f"calibration={calibration}")
    assert refused.returncode == 2 and "quantize=int8 needs format=onnx" in refused.stderr
    assert not list(tmp_path.glob("refused*"))
