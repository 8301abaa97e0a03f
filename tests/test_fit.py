"""The training loop called directly, for cases the entry point cannot easily reach."""

import pytest
import torch
from torch.utils.data import DataLoader

from stylenet.common.errors import StylenetError
from stylenet.data.photos import EpochSampler, ImageFolder, collate_skipping_unreadable
from stylenet.loss.perceptual import PerceptualLoss
from stylenet.nets.transformer import TransformerNet
from stylenet.training.loop import Batches, Plan, Reporting, StepSettings, fit
from stylenet.training.monitor import RunLog
from stylenet.training.snapshots import Position
from stylenet.vgg.encoder import VGGEncoder


def test_data_without_a_single_readable_image_stops_instead_of_spinning(tmp_path) -> None:
    for name in ("a.jpg", "b.png"):
        (tmp_path / name).write_bytes(b"not an image")
    sampler = EpochSampler(2, seed=0)
    loader = DataLoader(
        ImageFolder(tmp_path, 16), batch_size=2, sampler=sampler, collate_fn=collate_skipping_unreadable
    )
    model = TransformerNet(channels=(4, 4, 4), num_residual_blocks=1)
    loss = PerceptualLoss(
        VGGEncoder("vgg16", ["relu1_2"], pretrained=False),
        torch.rand(3, 16, 16),
        "relu1_2",
        {"relu1_2": 1.0},
        1.0,
        1.0,
        1.0,
    )
    run_log = RunLog(tmp_path / "run")
    with pytest.raises(StylenetError, match="no usable batch \\(2 unreadable images\\)"):
        settings = StepSettings(torch.device("cpu"))
        fit(
            model,
            loss,
            torch.optim.Adam(model.parameters()),
            Batches(loader, sampler, Position(), 5, settings),
            Plan(5, 1, 1, 1),
            Reporting(run_log, torch.rand(1, 3, 16, 16), lambda *_: None),
            settings,
        )
    run_log.close()
