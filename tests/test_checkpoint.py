import os

import pytest
import torch

from stylenet.common.errors import StylenetError
from stylenet.nets.network_file import (
    DEMO_DIR,
    FORMAT_VERSION,
    atomic_save,
    build_model,
    inference_payload,
    load_network_file,
    style_names,
)
from stylenet.nets.transformer import TransformerNet
from stylenet.training.snapshots import differences, latest_snapshot, training_payload

TINY = {"channels": [8, 16, 16], "num_residual_blocks": 1, "norm": "instance"}


def test_inference_file_round_trip(tmp_path) -> None:
    model = TransformerNet(**TINY)
    atomic_save(inference_payload(model, TINY, "wave", {"steps": 3}), tmp_path / "wave.pt")
    payload = load_network_file(tmp_path / "wave.pt")
    assert payload["style"] == "wave" and payload["format_version"] == FORMAT_VERSION
    rebuilt = build_model(payload, tmp_path / "wave.pt")
    image = torch.rand(1, 3, 17, 19)
    assert torch.equal(rebuilt(image), model(image))


def test_a_snapshot_written_before_it_listed_its_styles_numbers_them(tmp_path) -> None:
    """Snapshots of 2026-12-05 and before hold no style names; a network of two styles still loads from one."""
    config = {**TINY, "num_styles": 2}
    model = TransformerNet(**config)
    optimizer = torch.optim.Adam(model.parameters())
    atomic_save(training_payload(model, optimizer, config, "pair", {"seed": 1}, 7, 0, 0), tmp_path / "step_7.pt")
    payload = load_network_file(tmp_path / "step_7.pt")
    assert payload["kind"] == "inference" and payload["styles"] == ["pair[0]", "pair[1]"]
    assert payload["summary"] == {"snapshot_step": 7, "final_losses": {}}
    image, second = torch.rand(1, 3, 17, 19), torch.tensor([0.0, 1.0])
    assert torch.equal(build_model(payload, tmp_path / "step_7.pt")(image, second), model(image, second))


def test_a_file_written_before_downsample_existed_loads(tmp_path) -> None:
    """Files written before 2026-12-03 (the zoo's among them) store half_resolution, now downsample."""
    model = TransformerNet(**TINY, downsample=2)
    atomic_save(inference_payload(model, {**TINY, "half_resolution": True}, "wave", {"steps": 3}), tmp_path / "old.pt")
    rebuilt = build_model(load_network_file(tmp_path / "old.pt"), tmp_path / "old.pt")
    image = torch.rand(1, 3, 17, 19)
    assert rebuilt.downsample == 2 and torch.equal(rebuilt(image), model(image))


def test_every_zoo_network_answers_to_its_name_and_says_how_it_was_made() -> None:
    """checkpoint=udnie and style_name=udnie both find udnie (a zoo file once kept its training run's name)."""
    zoo = sorted(DEMO_DIR.glob("*.pt"))
    assert len(zoo) >= 8
    for path in zoo:
        payload = load_network_file(path)
        assert payload["style"] == path.stem and style_names(payload) == [path.stem], path.name
        assert payload["summary"]["about"].startswith(f"stylenet zoo network '{path.stem}'"), path.name


class _RunsCode:
    def __reduce__(self):
        return (os.system, ("touch PAYLOAD_RAN",))


def test_malicious_pickle_is_refused_without_running(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    torch.save({"format_version": FORMAT_VERSION, "model_cfg": _RunsCode()}, tmp_path / "evil.pt")
    with pytest.raises(StylenetError, match="refused to load .*evil.pt"):
        load_network_file(tmp_path / "evil.pt")
    assert not (tmp_path / "PAYLOAD_RAN").exists()


def test_truncated_checkpoint_names_the_file(tmp_path) -> None:
    atomic_save(inference_payload(TransformerNet(**TINY), TINY, "x", {}), tmp_path / "whole.pt")
    (tmp_path / "cut.pt").write_bytes((tmp_path / "whole.pt").read_bytes()[:1000])
    with pytest.raises(StylenetError, match="cannot read checkpoint .*cut.pt: the file is corrupt or truncated"):
        load_network_file(tmp_path / "cut.pt")


def test_other_format_versions_and_architectures_are_refused(tmp_path) -> None:
    payload = inference_payload(TransformerNet(**TINY), TINY, "x", {})
    atomic_save({**payload, "format_version": FORMAT_VERSION + 1}, tmp_path / "future.pt")
    with pytest.raises(StylenetError, match=f"format version {FORMAT_VERSION + 1}"):
        load_network_file(tmp_path / "future.pt")
    wrong = {**payload, "model_cfg": {**TINY, "channels": [8, 16, 32]}}
    with pytest.raises(StylenetError, match="weights do not match the stored model config"):
        build_model(wrong, tmp_path / "wrong.pt")


def test_auto_resume_skips_an_unreadable_newest_checkpoint(tmp_path) -> None:
    model = TransformerNet(**TINY)
    optimizer = torch.optim.Adam(model.parameters())
    fingerprint = {"seed": 1}
    for run, step in (("old", 4), ("new", 8)):
        atomic_save(
            training_payload(model, optimizer, TINY, "x", fingerprint, step, 0, 0),
            tmp_path / run / "checkpoints" / f"step_{step:07d}.pt",
        )
    atomic_save(
        training_payload(model, optimizer, TINY, "x", {"seed": 2}, 9, 0, 0),
        tmp_path / "other" / "checkpoints" / "step_0000009.pt",
    )
    newest = tmp_path / "new" / "checkpoints" / "step_0000008.pt"
    path, payload = latest_snapshot(tmp_path, fingerprint)
    assert path == newest and payload["step"] == 8
    newest.write_bytes(newest.read_bytes()[:500])
    path, payload = latest_snapshot(tmp_path, fingerprint)
    assert payload["step"] == 4 and path.parent.parent.name == "old"
    assert latest_snapshot(tmp_path, {"seed": 3}) is None


def test_a_snapshot_from_before_an_option_existed_matches_while_the_option_is_off() -> None:
    """Upgrading mid-run must not make resume=auto start again from step 0 (it did when loss.equivariance_weight
    was added: the old snapshots lacked it)."""
    stored = {"loss": {"style_weight": 400}, "seed": 1}
    assert differences(stored, {"loss": {"style_weight": 400, "equivariance_weight": 0.0}, "seed": 1}) == []
    assert differences(stored, {"loss": {"style_weight": 400, "equivariance_weight": 5e4}, "seed": 1}) == [
        "loss.equivariance_weight: snapshot None, now 50000.0"
    ]
    assert differences(stored, {"loss": {"style_weight": 1200}, "seed": 1}) == [
        "loss.style_weight: snapshot 400, now 1200"
    ]
