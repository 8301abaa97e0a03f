"""python -m stylenet.infer: stylise an image file, a folder or glob of them, or a video, with a trained network."""

from __future__ import annotations

import glob
import logging
import os
import sys
from pathlib import Path
from typing import Any, Callable

import hydra
from omegaconf import DictConfig, OmegaConf
from PIL import Image
from tqdm import tqdm

from stylenet.animation import is_animated, read_animation, save_animation
from stylenet.errors import StylenetError, exits_cleanly
from stylenet.images import (IMAGE_EXTENSIONS, is_image_file, list_images, read_image_and_alpha, resize_to_long_side,
                             save_image)
from stylenet.configs import flag_option, number_option, require_whole_numbers
from stylenet.onnx_backend import OnnxStylizer
from stylenet.video import VIDEO_EXTENSIONS, is_video_file, stylize_video
from stylenet.stylizer import Network, PictureOptions, Stylizer, load, stylize_pictures

log = logging.getLogger("stylenet.infer")
EXIT_SOME_FAILED = 1
ALPHA_EXTENSIONS = (".png", ".webp")  # JPEG and BMP outputs cannot keep transparency: it is flattened onto white


GLOB_CHARACTERS = "*?["


def plan_glob(pattern: str, target: Path) -> list[tuple[Path, Path]]:
    """A glob (quote it in the shell; ** searches sub-folders) maps into a folder, mirroring the paths
    below the pattern's last folder without wildcards."""
    if is_image_file(target):
        raise StylenetError(f"input {pattern} is a pattern, so output must be a folder, not {target}")
    parts = Path(pattern).parts
    base = Path(*parts[:next(i for i, part in enumerate(parts) if any(c in part for c in GLOB_CHARACTERS))] or ".")
    matches = sorted(Path(match) for match in glob.glob(pattern, recursive=True)
                     if is_image_file(Path(match)) and Path(match).is_file()
                     and not Path(match).resolve().is_relative_to(target.resolve()))
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
            raise StylenetError(f"output folder {target} is the input folder; choose another so no input is overwritten")
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


def stylize_files(stylizer: Network, pairs: list[tuple[Path, Path]], max_size: int | None, overwrite: bool,
                  options: PictureOptions = PictureOptions(), batch_size: int = 1) -> tuple[int, int, list[str]]:
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


def stylize_animation(stylizer: Network, source: Path, target: Path, max_size: int | None, options: PictureOptions,
                      batch_size: int) -> None:
    """An animated GIF: every frame stylised (`batch_size` frames per network call), written as an animated GIF
    with the source's frame durations and loop."""
    if target.suffix.lower() != ".gif":
        raise StylenetError(f"{source} is an animated GIF: its output is an animated GIF too, so name it .gif "
                            f"(not {target.name})")
    frames, durations, loop = read_animation(source)
    if max_size and max(frames[0].size) > max_size:
        frames = [resize_to_long_side(frame, int(max_size)) for frame in frames]
    styled: list[Image.Image] = []
    for start in range(0, len(frames), batch_size):
        styled += stylize_pictures(stylizer, frames[start:start + batch_size], options)
    save_animation(styled, durations, loop, target)


def other_files(folder: Path) -> int:
    """Files below `folder` that are not images (left alone, but counted in the summary)."""
    return sum(1 for path in folder.rglob("*") if path.is_file() and not is_image_file(path))


BACKENDS = ("torch", "onnxruntime")


def style_choice(cfg: DictConfig) -> dict[str, Any]:
    """style_name, style_index and style_mix as plain values (Hydra gives style_mix as a DictConfig)."""
    mix = cfg.style_mix
    return {"style_name": cfg.style_name, "style_index": cfg.style_index,
            "style_mix": OmegaConf.to_container(mix) if isinstance(mix, DictConfig) else mix}


def open_network(cfg: DictConfig) -> Stylizer | OnnxStylizer:
    """backend=torch: an inference file of stylenet.train; backend=onnxruntime: a file of stylenet.export."""
    if cfg.backend not in BACKENDS:
        raise StylenetError(f"backend must be one of {', '.join(BACKENDS)}, got '{cfg.backend}'")
    if cfg.backend == "onnxruntime":
        return OnnxStylizer(cfg.checkpoint, device=cfg.device, **style_choice(cfg))
    return load(cfg.checkpoint, device=cfg.device, precision=cfg.precision, channels_last=cfg.channels_last,
                **style_choice(cfg))


def infer_video(cfg: DictConfig, source: Path, target: Path, into_folder: bool) -> None:
    """A video file in, a video file out (or into a folder, under the input's name)."""
    target = file_target(source, target, into_folder, is_video_file, f"a video extension ({', '.join(VIDEO_EXTENSIONS)})")
    if target.resolve() == source.resolve():
        raise StylenetError(f"output {target} is the input video; choose another name so the input is not overwritten")
    if target.exists() and not flag_option(cfg, "overwrite"):
        log.info("%s exists: skipped (pass overwrite=true to replace it)", target)
        return
    stylizer = open_network(cfg)
    log.info("style '%s' (%s): video %s", stylizer.chosen, stylizer.describe(), source)
    result = stylize_video(stylizer, source, target, picture_options(cfg), int(cfg.batch_size),
                           number_option(cfg, "temporal_smoothing"))
    log.info("wrote %s: %d frames in %.1f s (%.1f frames/s)%s; flicker %.3f (output's frame-to-frame change over "
             "the input's)", target, result["frames"], result["seconds"], result["fps"],
             ", audio copied" if result["audio"] else "", result["flicker"])


def picture_options(cfg: DictConfig) -> PictureOptions:
    require_whole_numbers(cfg, ("tile_size",), ("tile_overlap",), nullable=("tile_size",))
    return PictureOptions(strength=number_option(cfg, "strength"), preserve_color=flag_option(cfg, "preserve_color"),
                          stroke_scale=number_option(cfg, "stroke_scale"), tile_size=cfg.tile_size,
                          tile_overlap=cfg.tile_overlap)


@hydra.main(version_base="1.3", config_path="../conf", config_name="infer")
@exits_cleanly
def main(cfg: DictConfig) -> None:
    require_whole_numbers(cfg, ("batch_size", "max_size"), nullable=("max_size",))
    source, target = Path(cfg.input).expanduser(), Path(cfg.output).expanduser()
    into_folder = str(cfg.output).endswith(("/", os.sep))
    if is_video_file(source):
        infer_video(cfg, source, target, into_folder)
        return
    pairs = plan(source, target, into_folder)
    stylizer = open_network(cfg)
    log.info("style '%s' (%s): %d image(s)", stylizer.chosen, stylizer.describe(), len(pairs))
    written, skipped, failures = stylize_files(stylizer, pairs, cfg.max_size, flag_option(cfg, "overwrite"), picture_options(cfg),
                                               int(cfg.batch_size))
    summary = f"{written} written, {len(failures)} failed"
    if skipped:
        summary += f", {skipped} skipped because the output exists (pass overwrite=true to replace)"
    others = other_files(source) if source.is_dir() else 0
    if others:
        summary += f"; {others} file(s) in {source} are not images ({', '.join(IMAGE_EXTENSIONS)}) and were left alone"
    log.info(summary)
    if failures:
        for failure in failures:
            print(f"failed: {failure}", file=sys.stderr)
        sys.exit(EXIT_SOME_FAILED)


if __name__ == "__main__":
    main()
