"""How much of its photo a network's picture keeps, as the training health monitor's `content_lost` sees it: the
content term (relu2_2 of the PyPI VGG16, the loss's content layer) of each output against its own photo over that
against the next photo (PerceptualLoss.content_to_own_and_other, the monitor's own measure), on photos cut as a
run's preview photos are (the central square at the scale the network learns to paint). Beside it, the output's
term against its own photo over two unrelated photos' term: the absolute reference the monitor used before.

    python scripts/bench_content_kept.py --photos ../shared/data/train --count 4 --size 256 \
        --networks candy_realtime mosaic_realtime starry_night outputs/lost.pt

Near 1: the pictures are no nearer their own photo than another (the style's texture whatever the photo).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from shelf import describe_machine

import stylenet
from stylenet.common.errors import exits_cleanly
from stylenet.common.images import list_images, pil_to_tensor, read_image
from stylenet.data.photos import center_crop_resized
from stylenet.loss.perceptual import content_loss
from stylenet.vgg.encoder import VGGEncoder

LAYER = "relu2_2"


@exits_cleanly
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", required=True, help="folder of photos; the first --count are used")
    parser.add_argument("--count", type=int, default=4, help="photos (a run's preview.count)")
    parser.add_argument("--size", type=int, default=256, help="their central square's side (data.photo_size)")
    parser.add_argument("--networks", nargs="+", required=True, help="network files or names (<network>@<style>)")
    args = parser.parse_args()
    photos = torch.stack(
        [pil_to_tensor(center_crop_resized(read_image(path), args.size)) for path in list_images(Path(args.photos))]
    )[: args.count]
    encoder = VGGEncoder("vgg16", [LAYER], weights="hed_bsds500").eval()
    with torch.no_grad():
        features = encoder(photos)[LAYER]
        unrelated = float(content_loss(features, features.roll(1, 0)))
        print(f"{describe_machine(torch.device('cpu'))}; {len(photos)} photos at {args.size} px\n")
        print("| network | own / another photo (content_lost) | own / unrelated photos' (the old reference) |")
        print("| --- | --- | --- |")
        for name in args.networks:
            outputs = encoder(stylenet.load(name, device="cpu", backend="torch")(photos))[LAYER]
            own, other = content_loss(outputs, features), content_loss(outputs, features.roll(1, 0))
            print(f"| {name} | {float(own / other):.2f} | {float(own) / unrelated:.2f} |")


if __name__ == "__main__":
    sys.exit(main())
