"""Files in, files out: which output each input file, folder or glob pattern maps to, and stylising
the planned pairs (batched, animated GIFs frame by frame, unreadable files reported and skipped)."""

from __future__ import annotations

import glob
import sys
from collections.abc import Callable
from pathlib import Path

from PIL import Image
from tqdm import tqdm

from stylenet.common.errors import StylenetError
from stylenet.common.images import is_image_file, list_images, read_image_and_alpha, resize_to_long_side, save_image
from stylenet.inference.animation import is_animated, read_animation, save_animation
from stylenet.inference.stylizer import PictureOptions, Stylizer, stylize_pictures

ALPHA_EXTENSIONS = (".png", ".webp")  # JPEG and BMP outputs cannot keep transparency: it is flattened onto white
GLOB_CHARACTERS = "*?["


def plan_glob(pattern: str, target: Path) -> list[tuple[Path, Path]]:
    """A glob (quote it in the shell; ** searches sub-folders) maps into a folder, mirroring the paths
    below the pattern's last folder without wildcards."""
    if is_image_file(target):
        raise StylenetError(f"input {pattern} is a pattern, so output must be a folder, not {target}")
    parts = Path(pattern).parts
    base = Path(*parts[: next(i for i, part in enumerate(parts) if any(c in part for c in GLOB_CHARACTERS))] or ".")
    matches = sorted(
        Path(match)
        for match in glob.glob(pattern, recursive=True)
        if is_image_file(Path(match))
        and Path(match).is_file()
        and not Path(match).resolve().is_relative_to(target.resolve())
    )
    if not matches:
        raise StylenetError(f"no images match {pattern}")
    return [(match, target / match.relative_to(base)) for match in matches]


def plan(source: Path, target: Path, into_folder: bool = False) -> list[tuple[Path, Path]]:
    """(input, output) pairs: a file maps to a file (or into a folder: an existing one, or any when
    `into_folder`, i.e. the output was written with a trailing slash), a folder is mirrored into a
    folder, a glob pattern maps into a folder."""
    if not source.exists() and any(c in str(source) for c in GLOB_CHARACTERS):
        return plan_glob(str(source), target)
    if source.is_dir():
        if target.exists() and not target.is_dir():
            raise StylenetError(f"input {source} is a folder, so output must be a folder, but {target} is a file")
        if target.resolve() == source.resolve():
            raise StylenetError(
                f"output folder {target} is the input folder; choose another so no input is overwritten"
            )
        # An output folder inside the input folder must not feed earlier outputs back in as inputs.
        inputs = [path for path in list_images(source) if not path.resolve().is_relative_to(target.resolve())]
        pairs = [(path, target / path.relative_to(source)) for path in inputs]
        if not pairs:
            raise StylenetError(f"no images found in {source}")
        return pairs
    return [(source, file_target(source, target, into_folder, is_image_file, "an image extension (.png, .jpg, ...)"))]


def file_target(source: Path, target: Path, into_folder: bool, fits: Callable[[Path], bool], wanted: str) -> Path:
    """The output file for one input file: `target` itself, or the input's name inside the folder `target`."""
    if not source.exists():
        raise StylenetError(f"input not found: {source}")
    if target.is_dir() or into_folder:
        target = target / source.name
    if not fits(target):
        raise StylenetError(f"output {target} needs {wanted} or must be a folder")
    return target


def stylize_files(
    stylizer: Stylizer,
    pairs: list[tuple[Path, Path]],
    max_size: int | None,
    overwrite: bool,
    options: PictureOptions = PictureOptions(),
    batch_size: int = 1,
) -> tuple[int, int, list[str]]:
    """Stylise each pair, `batch_size` files at a time (same-size images share one network call); an
    unreadable input is reported and skipped. Returns (written, skipped, failures)."""
    written, skipped, failures = 0, 0, []
    pending: list[tuple[Path, Image.Image, Image.Image | None]] = []

    def write_pending() -> None:
        nonlocal written
        results = stylize_pictures(stylizer, [image for _, image, _ in pending], options)
        for (target, _, alpha), styled in zip(pending, results):
            if alpha is not None and target.suffix.lower() in ALPHA_EXTENSIONS:
                styled.putalpha(alpha.resize(styled.size, Image.Resampling.LANCZOS))  # transparency carried through
            save_image(styled, target)
        written += len(pending)
        pending.clear()

    for source, target in tqdm(pairs, desc="stylize", unit="image", disable=len(pairs) < 2):
        if target.resolve() == source.resolve():
            failures.append(f"{source}: refusing to overwrite the input file with its output")
            continue
        if target.exists() and not overwrite:
            skipped += 1
            continue
        if is_animated(source):
            try:
                stylize_animation(stylizer, source, target, max_size, options, batch_size)
                written += 1
            except StylenetError as error:
                failures.append(str(error))
                tqdm.write(f"skipped: {error}", file=sys.stderr)
            continue
        try:
            image, alpha = read_image_and_alpha(source)
        except StylenetError as error:
            failures.append(str(error))
            tqdm.write(f"skipped: {error}", file=sys.stderr)
            continue
        if max_size and max(image.size) > max_size:
            image = resize_to_long_side(image, int(max_size))
        pending.append((target, image, alpha))
        if len(pending) >= batch_size:
            write_pending()
    if pending:
        write_pending()
    return written, skipped, failures


def stylize_animation(
    stylizer: Stylizer, source: Path, target: Path, max_size: int | None, options: PictureOptions, batch_size: int
) -> None:
    """An animated GIF: every frame stylised (`batch_size` frames per network call), written as an animated GIF
    with the source's frame durations and loop."""
    if target.suffix.lower() != ".gif":
        raise StylenetError(
            f"{source} is an animated GIF: its output is an animated GIF too, so name it .gif (not {target.name})"
        )
    frames, durations, loop = read_animation(source)
    if max_size and max(frames[0].size) > max_size:
        frames = [resize_to_long_side(frame, int(max_size)) for frame in frames]
    styled: list[Image.Image] = []
    for start in range(0, len(frames), batch_size):
        styled += stylize_pictures(stylizer, frames[start : start + batch_size], options)
    save_animation(styled, durations, loop, target)


def other_files(folder: Path) -> int:
    """Files below `folder` that are not images (left alone, but counted in the summary)."""
    return sum(1 for path in folder.rglob("*") if path.is_file() and not is_image_file(path))
