"""One network, several styles (conditional instance norm, Dumoulin et al. 2017): the model, the loss,
the style schedule, and the entry points on a two-style tiny network."""

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import stylenet
from stylenet.common.errors import StylenetError
from stylenet.common.runtime import Distributed
from stylenet.config.compose import compose_options, model_config
from stylenet.data.photos import StyleOptions
from stylenet.inference.stylizer import style_weights
from stylenet.loss.perceptual import PER_IMAGE_STYLE, PerceptualLoss
from stylenet.nets.network_file import atomic_save, inference_payload, load_network_file
from stylenet.nets.transformer import TransformerNet
from stylenet.training.loop import Interval, StyleSchedule
from stylenet.vgg.encoder import VGGEncoder
from tests.helpers import Finished, multi_style_overrides, random_image, read_scalars, run_entry

VARIANTS = ("johnson", "separable", "resize", "fast", "realtime")


def two_style_network(variant: str = "tiny") -> TransformerNet:
    """A two-style network whose styles differ (freshly built, every style's parameters are equal)."""
    torch.manual_seed(0)
    model = TransformerNet(**model_config(variant, ["model.num_styles=2", "model.width_multiplier=0.5"]))
    with torch.no_grad():
        for norm in model.norms():
            norm.scales[1].add_(torch.randn_like(norm.scales[1]))
            norm.shifts[1].add_(torch.randn_like(norm.shifts[1]))
    return model.eval()


@pytest.mark.parametrize("variant", VARIANTS)
def test_each_style_gives_its_own_output_and_a_one_hot_mix_is_that_style_exactly(variant: str) -> None:
    model = two_style_network(variant)
    photos = torch.rand(2, 3, 37, 45)
    with torch.no_grad():
        first, second = model(photos, torch.tensor([1.0, 0.0])), model(photos, torch.tensor([0.0, 1.0]))
        halfway = model(photos, torch.tensor([0.5, 0.5]))
        per_image = model(photos, torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
    assert (first - second).abs().mean() > 1e-3
    assert (halfway - first).abs().mean() > 1e-4 and (halfway - second).abs().mean() > 1e-4
    # one blend for the batch goes through the fused norm, per-image weights through a separate affine
    assert torch.allclose(per_image[0], first[0], atol=1e-5) and torch.allclose(per_image[1], second[1], atol=1e-5)


def test_a_mix_of_one_and_zero_equals_the_style_bit_for_bit_through_the_python_api(tmp_path: Path) -> None:
    model = two_style_network()
    payload = {
        "kind": "inference",
        "format_version": 2,
        "model": model.state_dict(),
        "model_cfg": {**model_config("tiny", ["model.width_multiplier=0.5"]), "num_styles": 2},
        "style": "pair",
        "styles": ["calm", "storm"],
        "summary": {},
    }
    torch.save(payload, tmp_path / "pair.pt")
    photos = torch.rand(3, 3, 24, 40)
    by_index = stylenet.load(tmp_path / "pair.pt", device="cpu", style_index=0)(photos)
    by_mix = stylenet.load(tmp_path / "pair.pt", device="cpu", style_mix={"calm": 1, "storm": 0})(photos)
    by_name = stylenet.load(tmp_path / "pair.pt", device="cpu", style_name="storm")
    assert torch.equal(by_index, by_mix)
    assert not torch.equal(by_name(photos), by_index)
    assert torch.equal(by_name.select(index=0)(photos), by_index) and by_name.chosen == "pair: calm"


def write_pair(path: Path) -> Path:
    """A two-style network file whose styles are calm and storm."""
    model = two_style_network()
    config = {**model_config("tiny", ["model.width_multiplier=0.5"]), "num_styles": 2}
    atomic_save(inference_payload(model, config, "pair", {}, ["calm", "storm"]), path)
    return path


def test_a_style_of_a_network_of_several_is_a_network_of_its_own(tmp_path: Path) -> None:
    pair = write_pair(tmp_path / "pair.pt")
    photos = torch.rand(2, 3, 24, 40)
    storm = load_network_file(f"{pair}@storm")
    assert storm["styles"] == ["storm"] and storm["model_cfg"]["num_styles"] == 1
    assert storm["summary"]["one_style_of"] == "pair.pt (2 styles)"
    alone = stylenet.load(f"{pair}@storm", device="cpu")
    chosen = stylenet.load(pair, device="cpu", style_name="storm")
    assert alone.styles == ["storm"] and torch.allclose(alone(photos), chosen(photos), atol=1e-6)
    assert not torch.allclose(stylenet.load(f"{pair}@calm", device="cpu")(photos), chosen(photos), atol=1e-3)
    with pytest.raises(StylenetError, match=r"has no style 'gale' \(its styles: calm, storm\)"):
        load_network_file(f"{pair}@gale")
    with pytest.raises(StylenetError, match="<network>@<style>"):
        load_network_file(f"{pair}@")
    write_pair(tmp_path / "pair@2.pt")  # a file that is there is a file, '@' in its name or not
    assert load_network_file(tmp_path / "pair@2.pt")["styles"] == ["calm", "storm"]


def test_each_style_of_a_network_runs_on_onnxruntime_as_its_own_graph(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("onnxruntime")
    monkeypatch.setenv("STYLENET_CACHE", str(tmp_path / "cache"))
    pair = write_pair(tmp_path / "pair.pt")
    photos = torch.rand(1, 3, 32, 48)
    for style in ("calm", "storm"):
        expected = stylenet.load(pair, device="cpu", backend="torch", style_name=style)(photos)
        produced = stylenet.load(f"{pair}@{style}", device="cpu", backend="onnxruntime")(photos)
        assert (produced - expected).abs().max() < 2e-3, style
    assert len(list((tmp_path / "cache" / "onnx").glob("*.onnx"))) == 2


def test_inference_files_of_format_1_still_load(tmp_path: Path) -> None:
    model = TransformerNet(channels=(8, 16, 16), num_residual_blocks=1)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.1)
    old_keys = {
        key.replace("scales.0", "weight").replace("shifts.0", "bias"): value
        for key, value in model.state_dict().items()
    }
    assert "encoder.0.1.weight" in old_keys  # nn.InstanceNorm2d's names, as format 1 files have them
    torch.save(
        {
            "kind": "inference",
            "format_version": 1,
            "model": old_keys,
            "model_cfg": {"channels": [8, 16, 16], "num_residual_blocks": 1},
            "style": "old",
            "summary": {},
        },
        tmp_path / "old.pt",
    )
    reloaded = stylenet.load(tmp_path / "old.pt", device="cpu")
    photo = torch.rand(1, 3, 20, 28)
    assert reloaded.styles == ["old"] and torch.equal(reloaded(photo), model.eval()(photo))


def test_multi_style_needs_style_weights_and_instance_norm() -> None:
    with pytest.raises(ValueError, match="this network has 2 styles: pass style weights"):
        TransformerNet(channels=(8, 16, 16), num_residual_blocks=1, num_styles=2)(torch.rand(1, 3, 16, 16))
    with pytest.raises(ValueError, match="needs norm=instance"):
        TransformerNet(channels=(8, 16, 16), num_styles=2, norm="batch")


def test_added_style_starts_as_the_mean_and_trains_alone() -> None:
    model = two_style_network()
    before = {key: value.clone() for key, value in model.state_dict().items()}
    assert model.add_styles(1) == [2] and model.num_styles == 3
    norm = model.norms()[0]
    assert torch.allclose(norm.scales[2], (norm.scales[0] + norm.scales[1]) / 2)
    trained = model.style_parameters([2])
    expected = [parameter for each in model.norms() for parameter in (each.scales[2], each.shifts[2])]
    assert len(trained) == len(expected) and all(a is b for a, b in zip(trained, expected))
    assert all(torch.equal(model.state_dict()[key], value) for key, value in before.items())


def test_multi_style_loss_compares_each_image_with_its_own_style() -> None:
    torch.manual_seed(0)
    encoder = VGGEncoder("vgg16", ["relu2_2", "relu1_2", "relu3_3"], "max", pretrained=False)
    styles = [torch.rand(3, 40, 48), torch.rand(3, 32, 32)]
    weights = {
        "content_layer": "relu2_2",
        "style_layers": {"relu1_2": 1.0, "relu3_3": 2.0},
        "content_weight": 1.0,
        "style_weight": 1e3,
        "tv_weight": 1.0,
    }
    both = PerceptualLoss(encoder, styles, **weights)
    output, content = torch.rand(4, 3, 32, 32), torch.rand(4, 3, 32, 32)
    index = torch.tensor([0, 1, 1, 0])
    losses = both(output, content, style_index=index)
    for style in (0, 1):
        alone = PerceptualLoss(encoder, styles[style], **weights)
        chosen = index == style
        expected = alone(output[chosen], content[chosen])["style"]
        assert losses[PER_IMAGE_STYLE][chosen].mean() == pytest.approx(float(expected), rel=1e-5)
    assert losses["style"] == pytest.approx(float(losses[PER_IMAGE_STYLE].mean()), rel=1e-6)
    with pytest.raises(ValueError, match="pass each image's style_index"):
        both(output, content)


def test_styles_take_turns_over_the_global_batch_and_ranks_agree() -> None:
    schedule = StyleSchedule(("a", "b", "c"), (0, 1, 2), 3)
    whole, _ = schedule.assign(step=1, images=4, first=0, global_batch=4, device=torch.device("cpu"))
    assert whole.tolist() == [1, 2, 0, 1]  # positions 4..7 of the global order, mod 3
    halves = [schedule.assign(1, 2, first, 4, torch.device("cpu"))[0] for first in (0, 2)]
    assert torch.cat(halves).tolist() == whole.tolist()
    added = StyleSchedule(("new",), (2,), 3)
    targets, network = added.assign(0, 2, 0, 2, torch.device("cpu"))
    assert targets.tolist() == [0, 0] and network.tolist() == [[0, 0, 1], [0, 0, 1]]


def test_per_style_losses_average_over_the_images_of_each_style() -> None:
    interval = Interval()
    interval.add_style_terms(torch.tensor([1.0, 3.0, 10.0]), torch.tensor([0, 0, 2]), 3)
    interval.add_style_terms(torch.tensor([5.0]), torch.tensor([2]), 3)
    assert interval.style_means(["a", "b", "c"], Distributed()) == {"per_style/a": 2.0, "per_style/c": 7.5}


def test_choosing_a_style_refuses_what_does_not_fit() -> None:
    names = ["calm", "storm"]
    assert style_weights(["only"]) is None
    assert style_weights(names, mix={"calm": 0.25, 1: 0.75}).tolist() == [0.25, 0.75]
    for kwargs, message in [
        ({}, "has 2 styles \\(0 calm, 1 storm\\): choose one with style_name"),
        ({"name": "sun"}, "no style 'sun' in this network"),
        ({"index": 2}, "style_index: no style 2"),
        ({"name": "calm", "index": 0}, "not with style_name and style_index"),
        ({"mix": {"calm": 0.5, "storm": 0.6}}, "must add up to 1, got 1.1"),
        ({"mix": {"calm": -1, "storm": 2}}, "must be a number from 0"),
    ]:
        with pytest.raises(StylenetError, match=message):
            style_weights(names, **kwargs)


def test_style_sets_name_their_images() -> None:
    classics = compose_options("train", ["style=classics"]).style.entries()
    assert [name for name, _, _ in classics] == ["starry_night", "mosaic", "rain_princess", "wave", "la_muse"]
    assert all(image.startswith("https://") and size == 384 for _, image, size in classics)
    listed = compose_options("train", ["style=multi", "style.images=[a/calm.jpg,b/storm.png]"]).style
    assert listed.entries() == [("calm", "a/calm.jpg", 384), ("storm", "b/storm.png", 384)]
    with pytest.raises(StylenetError, match="names calm more than once"):
        compose_options("train", ["style=multi", "style.images=[a/calm.jpg,b/calm.jpg]"]).style.entries()


# The entry points, on a two-style tiny network trained through `python -m stylenet.train`.


@dataclass
class Pair:
    root: Path
    run_dir: Path
    checkpoint: Path


@pytest.fixture(scope="module")
def pair(workspace: Path, tmp_path_factory: pytest.TempPathFactory) -> Pair:
    root = tmp_path_factory.mktemp("pair")
    result = run_entry(
        "train", *multi_style_overrides(workspace, root / "run", steps=20), f"checkpoint_dir={root}", cwd=root
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "2 styles in one network; training first, second" in result.stdout + result.stderr
    return Pair(root, root / "run", root / "pair.pt")


@pytest.mark.slow
def test_training_logs_a_loss_per_style_and_records_the_names(pair: Pair) -> None:
    events = read_scalars(pair.run_dir)
    first, second = (
        [event.value for event in events.Scalars(f"loss/per_style/{name}")] for name in ("first", "second")
    )
    # Batches of 2 take one image of each style, or one image where the corrupt photo was skipped.
    assert len(events.Scalars("loss/style")) == 20 and 10 <= len(first) <= 20 and 10 <= len(second) <= 20
    assert len(first) + len(second) >= 30
    assert first[-5:] != pytest.approx(second[-5:], rel=1e-3)
    payload = torch.load(pair.checkpoint, weights_only=True)
    assert payload["styles"] == ["first", "second"] and payload["model_cfg"]["num_styles"] == 2
    assert load_network_file(pair.run_dir / "checkpoints" / "step_0000020.pt")["styles"] == ["first", "second"]
    assert set(payload["summary"]["final_losses"]) >= {"per_style/first", "per_style/second"}
    with Image.open(pair.run_dir / "previews" / "step_0000020.png") as preview:  # content | first | second
        assert preview.size == (3 * 34 + 2, 2 * 34 + 2)


@pytest.mark.slow
def test_infer_picks_styles_by_index_name_or_mix(pair: Pair, tmp_path: Path) -> None:
    random_image(37, 53).save(tmp_path / "photo.png")

    def infer(output: str, *choice: str):
        return run_entry(
            "infer",
            f"checkpoint={pair.checkpoint}",
            f"input={tmp_path / 'photo.png'}",
            f"output={tmp_path / output}",
            *choice,
            cwd=tmp_path,
        )

    for output, choice in [
        ("index0.png", "style_index=0"),
        ("mix.png", "style_mix={first: 1, second: 0}"),
        ("second.png", "style_name=second"),
        ("half.png", "style_mix={first: 0.5, second: 0.5}"),
    ]:
        result = infer(output, choice)
        assert result.returncode == 0, result.stderr
    assert "style 'pair: 0.5 first + 0.5 second'" in result.stdout + result.stderr
    pixels = {
        name: np.asarray(Image.open(tmp_path / f"{name}.png"), dtype=int)
        for name in ("index0", "mix", "second", "half")
    }
    assert np.array_equal(pixels["index0"], pixels["mix"])
    assert np.abs(pixels["index0"] - pixels["second"]).mean() > 1
    alone = run_entry(  # the style as a network of its own paints that style's picture
        "infer",
        f"checkpoint={pair.checkpoint}@second",
        f"input={tmp_path / 'photo.png'}",
        f"output={tmp_path / 'alone.png'}",
        cwd=tmp_path,
    )
    assert alone.returncode == 0, alone.stderr
    assert np.abs(np.asarray(Image.open(tmp_path / "alone.png"), dtype=int) - pixels["second"]).max() <= 1
    unchosen = infer("none.png")
    assert unchosen.returncode == 2 and "has 2 styles (0 first, 1 second)" in unchosen.stderr
    assert "Traceback" not in unchosen.stderr and not (tmp_path / "none.png").exists()


@pytest.fixture(scope="module")
def added(pair: Pair, workspace: Path) -> Path:
    """A third style added to the pair: only its normalisation parameters train."""
    random_image(48, 64, seed=23).save(pair.root / "third.png")
    overrides = [
        o for o in multi_style_overrides(workspace, pair.root / "added_run", steps=10) if not o.startswith("style")
    ]
    result = run_entry(
        "train",
        *overrides,
        "style=custom",
        f"style.image={pair.root / 'third.png'}",
        "style.name=third",
        f"add_style_to={pair.checkpoint}",
        f"checkpoint_dir={pair.root}",
        cwd=pair.root,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return pair.root / "pair+third.pt"


@pytest.mark.slow
def test_adding_a_style_leaves_the_first_two_bit_for_bit(pair: Pair, added: Path) -> None:
    before, after = (torch.load(path, weights_only=True) for path in (pair.checkpoint, added))
    assert after["styles"] == ["first", "second", "third"] and after["model_cfg"]["num_styles"] == 3
    new = {key for key in after["model"] if key.endswith((".scales.2", ".shifts.2"))}
    assert new and set(after["model"]) == set(before["model"]) | new
    assert all(torch.equal(before["model"][key], after["model"][key]) for key in before["model"])
    photos = torch.rand(2, 3, 29, 35)
    old, grown = (stylenet.load(path, device="cpu", style_index=0) for path in (pair.checkpoint, added))
    for index in (0, 1):
        assert torch.equal(old.select(index=index)(photos), grown.select(index=index)(photos))
    third = grown.select(name="third")(photos)
    assert (third - old.select(index=0)(photos)).abs().mean() > 1e-4
    # the new style trained away from where it started (the mean of the other two)
    start = (before["model"]["encoder.0.1.scales.0"] + before["model"]["encoder.0.1.scales.1"]) / 2
    assert (after["model"]["encoder.0.1.scales.2"] - start).abs().max() > 1e-4


@pytest.mark.slow
def test_adding_a_style_refuses_a_name_the_network_has(pair: Pair, workspace: Path, tmp_path: Path) -> None:
    overrides = [o for o in multi_style_overrides(workspace, tmp_path / "run", steps=2) if not o.startswith("style")]
    result = run_entry(
        "train",
        *overrides,
        "style=custom",
        f"style.image={workspace / 'style.png'}",
        "style.name=first",
        f"add_style_to={pair.checkpoint}",
        cwd=tmp_path,
    )
    assert result.returncode == 2 and "already has style(s) first" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_num_styles_must_match_the_style_images(workspace: Path, tmp_path: Path) -> None:
    result = run_entry(
        "train", *multi_style_overrides(workspace, tmp_path / "run", steps=2), "model.num_styles=3", cwd=tmp_path
    )
    assert result.returncode == 2
    assert "model.num_styles=3, but style 'pair' has 2 image(s)" in result.stderr and "Traceback" not in result.stderr


@pytest.fixture(scope="module")
def added_onnx(added: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The three-style network through `python -m stylenet.export` (format onnx, the default): one export for the
    tests that read it (an ONNX export takes some 10 s)."""
    pytest.importorskip("onnxruntime", reason="the onnx extra is not installed: pip install -e '.[onnx]'")
    folder = tmp_path_factory.mktemp("added_onnx")
    result = run_entry("export", f"checkpoint={added}", f"output={folder / 'three.onnx'}", cwd=folder)
    assert result.returncode == 0, result.stderr
    return folder / "three.onnx"


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_export_takes_the_style_weights_as_an_input(
    added: Path, tmp_path: Path, fmt: str, request: pytest.FixtureRequest
) -> None:
    if fmt == "onnx":
        output = request.getfixturevalue("added_onnx")
    else:
        output = tmp_path / f"three.{fmt}"
        result = run_entry("export", f"checkpoint={added}", f"format={fmt}", f"output={output}", cwd=tmp_path)
        assert result.returncode == 0, result.stderr
    photos, weights = torch.rand(2, 3, 41, 29), torch.tensor([[0.0, 0.0, 1.0], [0.2, 0.3, 0.5]])
    expected = torch.stack(
        [
            stylenet.load(added, device="cpu", style_mix=dict(enumerate(row.tolist())))(photos[i : i + 1])[0]
            for i, row in enumerate(weights)
        ]
    )
    if fmt == "onnx":
        import onnxruntime

        session = onnxruntime.InferenceSession(str(output), providers=["CPUExecutionProvider"])
        assert [node.name for node in session.get_inputs()] == ["image", "style"]
        produced = session.run(None, {"image": photos.numpy(), "style": weights.numpy()})[0]
        metadata = json.loads(session.get_modelmeta().custom_metadata_map["stylenet"])
        assert metadata["styles"] == ["first", "second", "third"]
    else:
        produced = torch.jit.load(str(output))(photos, weights).numpy()
    assert np.abs(produced - expected.numpy()).max() < 1e-3


@pytest.mark.slow
def test_onnxruntime_backend_picks_a_style_by_name(added: Path, added_onnx: Path, tmp_path: Path) -> None:
    random_image(40, 48).save(tmp_path / "photo.png")
    outputs = {}
    for backend, checkpoint in (("torch", added), ("onnxruntime", added_onnx)):
        result = run_entry(
            "infer",
            f"checkpoint={checkpoint}",
            f"backend={backend}",
            f"input={tmp_path / 'photo.png'}",
            f"output={tmp_path / backend}.png",
            "style_name=third",
            cwd=tmp_path,
        )
        assert result.returncode == 0, result.stderr
        outputs[backend] = np.asarray(Image.open(tmp_path / f"{backend}.png"), dtype=int)
    assert np.abs(outputs["torch"] - outputs["onnxruntime"]).max() <= 1


def evaluate(*overrides: str, workspace: Path, tmp_path: Path, out: Path | None = None) -> Finished:
    """python -m stylenet.evaluate on the workspace's photos at 32 px, 2 L-BFGS iterations, report in `out`
    (tmp_path by default)."""
    return run_entry(
        "evaluate",
        *overrides,
        f"photos={workspace / 'photos'}",
        "iterations=[2]",
        "image_size=32",
        "loss.pretrained=false",
        f"output={out or tmp_path}",
        cwd=tmp_path,
    )


@pytest.mark.slow
def test_evaluate_scores_one_style_of_the_network(pair: Pair, workspace: Path, tmp_path: Path) -> None:
    result = evaluate(f"checkpoint={pair.checkpoint}", "style_name=second", workspace=workspace, tmp_path=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "(pair: second)" in (tmp_path / "report.md").read_text()


@pytest.mark.slow
def test_evaluate_tells_two_styles_of_one_file_apart(pair: Pair, workspace: Path, tmp_path: Path) -> None:
    result = evaluate(
        f"checkpoint=[{pair.checkpoint}@first,{pair.checkpoint}@second]", workspace=workspace, tmp_path=tmp_path
    )
    assert result.returncode == 0, result.stderr[-2000:]
    rows = [line.split("|")[1].strip() for line in (tmp_path / "report.md").read_text().splitlines() if "|" in line]
    assert f"{pair.checkpoint.stem}@first" in rows and f"{pair.checkpoint.stem}@second" in rows


@pytest.mark.slow
def test_optimisation_refuses_a_set_of_styles(workspace: Path, tmp_path: Path) -> None:
    random_image(24, 24).save(tmp_path / "photo.png")
    result = run_entry(
        "optimize",
        f"content={tmp_path / 'photo.png'}",
        "style=multi",
        f"style.images=[{workspace / 'style.png'},{workspace / 'style_b.png'}]",
        "loss.pretrained=false",
        "iterations=1",
        "image_size=24",
        f"hydra.run.dir={tmp_path / 'run'}",
        cwd=tmp_path,
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "optimisation takes one style image; style 'multi' has 2" in result.stderr


def test_style_images_must_be_a_list_or_mapping() -> None:
    with pytest.raises(StylenetError, match="style.images must be a list or mapping of style images, got 'a.jpg'"):
        StyleOptions("set", 64, images="a.jpg").entries()


@pytest.mark.slow
def test_evaluate_asks_for_the_image_of_a_style_trained_in_an_earlier_run(
    added: Path, workspace: Path, tmp_path: Path
) -> None:
    result = evaluate(f"checkpoint={added}", "style_name=first", workspace=workspace, tmp_path=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "the image of style 'first' is not recorded" in result.stderr and "pass style_image=" in result.stderr


@pytest.mark.slow
def test_adding_a_style_needs_a_network_with_instance_norm(workspace: Path, tmp_path: Path) -> None:
    model_cfg = {**model_config("tiny"), "norm": "batch"}
    torch.save(
        {
            "kind": "inference",
            "format_version": 2,
            "model": TransformerNet(**model_cfg).state_dict(),
            "model_cfg": model_cfg,
            "style": "batchy",
            "styles": ["batchy"],
            "summary": {},
        },
        tmp_path / "batchy.pt",
    )
    overrides = [o for o in multi_style_overrides(workspace, tmp_path / "run", steps=2) if not o.startswith("style")]
    result = run_entry(
        "train",
        *overrides,
        "style=custom",
        f"style.image={workspace / 'style.png'}",
        "style.name=new",
        f"add_style_to={tmp_path / 'batchy.pt'}",
        cwd=tmp_path,
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "has no instance norm" in result.stderr


def test_evaluate_refuses_two_networks_it_could_not_tell_apart(pair: Pair, workspace: Path, tmp_path: Path) -> None:
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        shutil.copy(pair.checkpoint, tmp_path / folder / "pair.pt")
    result = evaluate(
        f"checkpoint=[{tmp_path / 'a' / 'pair.pt'},{tmp_path / 'b' / 'pair.pt'}]",
        "style_name=first",
        workspace=workspace,
        tmp_path=tmp_path,
        out=tmp_path / "out",
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "two networks would have one label in the report (rename a file): pair, pair" in result.stderr
    assert not (tmp_path / "out" / "report.md").exists()
