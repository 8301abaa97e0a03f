"""python -m stylenet.infer: stylise an image file, a folder or glob of them, or a video, with a trained network."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

from stylenet.common.errors import StylenetError, exits_cleanly
from stylenet.common.images import IMAGE_EXTENSIONS
from stylenet.common.runtime import StopRequest
from stylenet.config import cli
from stylenet.config.schema import InferConfig, typed
from stylenet.inference.files import file_target, other_files, plan, stylize_files
from stylenet.inference.loading import load
from stylenet.inference.stylizer import PictureOptions, Stylizer
from stylenet.inference.video import VIDEO_EXTENSIONS, is_stream, is_video_file, stylize_video

log = logging.getLogger("stylenet.infer")
EXIT_SOME_FAILED = 1


def open_network(cfg: InferConfig) -> Stylizer:
    return load(
        cfg.checkpoint,
        device=cfg.device,
        precision=cfg.precision,
        channels_last=cfg.channels_last,
        backend=cfg.backend,
        style_name=cfg.style_name,
        style_index=cfg.style_index,
        style_mix=cfg.style_mix,
    )


def infer_video(cfg: InferConfig, source: str, target: Path, into_folder: bool) -> None:
    """A video file or a live source in, a video file out (a file's output may go into a folder, under its name).
    Ctrl-C ends a live source with everything so far written; a file's partial output is discarded."""
    live = is_stream(source)
    wanted = f"a video extension ({', '.join(VIDEO_EXTENSIONS)})"
    if live:
        if not is_video_file(target):
            raise StylenetError(f"input {source} is a live source: output must be a video file name with {wanted}")
    else:
        target = file_target(Path(source).expanduser(), target, into_folder, is_video_file, wanted)
        if target.resolve() == Path(source).expanduser().resolve():
            raise StylenetError(
                f"output {target} is the input video; choose another name so the input is not overwritten"
            )
    if target.exists() and not cfg.overwrite:
        log.info("%s exists: skipped (pass overwrite=true to replace it)", target)
        return
    stylizer = open_network(cfg)
    log.info(
        "style '%s' (%s): %s %s%s",
        stylizer.chosen,
        stylizer.describe(),
        "live source" if live else "video",
        source,
        " (Ctrl-C ends it; what was read so far is kept)" if live else "",
    )
    with StopRequest() as stop:
        result = stylize_video(
            stylizer,
            source if live else Path(source).expanduser(),
            target,
            picture_options(cfg),
            int(cfg.batch_size),
            float(cfg.temporal_smoothing),
            pipelined=cfg.video_pipeline,
            live=live,
            should_stop=stop.event.is_set,
        )
    dropped = (
        f", {result['dropped']} late frames dropped (the network is slower than the source)"
        if result["dropped"]
        else ", no frame dropped"
        if live
        else ""
    )
    log.info(
        "wrote %s: %d frames in %.1f s (%.1f frames/s)%s%s%s; flicker %.3f (output's frame-to-frame change over "
        "the input's)",
        target,
        result["frames"],
        result["seconds"],
        result["fps"],
        dropped,
        ", audio copied" if result["audio"] else "",
        ", stopped by request"
        if result["stopped"]
        else f", the source ended early ({result['cut']})"
        if result["cut"]
        else "",
        result["flicker"],
    )


def picture_options(cfg: InferConfig) -> PictureOptions:
    return PictureOptions(
        strength=float(cfg.strength),
        preserve_color=cfg.preserve_color,
        stroke_scale=float(cfg.stroke_scale),
        tile_size=cfg.tile_size,
        tile_overlap=cfg.tile_overlap,
    )


@hydra.main(version_base="1.3", config_path="conf", config_name="infer")
@exits_cleanly
def main(config: DictConfig) -> None:
    cfg = typed(config, InferConfig)
    source, target = Path(cfg.input).expanduser(), Path(cfg.output).expanduser()
    into_folder = str(cfg.output).endswith(("/", os.sep))
    if is_stream(str(cfg.input)) or is_video_file(source):
        infer_video(cfg, str(cfg.input), target, into_folder)
        return
    pairs = plan(source, target, into_folder)
    stylizer = open_network(cfg)
    log.info("style '%s' (%s): %d image(s)", stylizer.chosen, stylizer.describe(), len(pairs))
    written, skipped, failures = stylize_files(
        stylizer, pairs, cfg.max_size, cfg.overwrite, picture_options(cfg), int(cfg.batch_size)
    )
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
    cli.run(main)
