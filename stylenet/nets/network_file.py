"""Checkpoint files: atomic writes, plain-data contents, safe loading with clear errors.

Two kinds, both dicts of plain data loaded with torch.load(weights_only=True):
- "inference": what checkpoints/<style>.pt holds; enough to rebuild and run the network.
- "training": periodic snapshots in the run directory (adds optimizer state and step; stylenet.training.snapshots);
  wherever a network file is read, a snapshot is read as the network it holds (load_network_file).
"""

from __future__ import annotations

import logging
import os
import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch

from stylenet.common.atomic import atomic_write
from stylenet.common.errors import StylenetError
from stylenet.nets.transformer import TransformerNet

# 2: instance norms hold per-style parameter lists (scales.N, shifts.N) and files list their `styles`.
# Version 1 files (nn.InstanceNorm2d's weight and bias) still load: models.InstanceNorm renames them.
FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)
log = logging.getLogger(__name__)


def atomic_save(payload: dict[str, Any], path: str | os.PathLike) -> None:
    """torch.save, durably and atomically: a crash leaves the old checkpoint or the new one."""
    atomic_write(path, lambda stream: torch.save(payload, stream), durable=True)


def inference_payload(
    model: TransformerNet | dict[str, torch.Tensor],
    model_cfg: dict[str, Any],
    style: str,
    summary: dict[str, Any],
    styles: list[str] | None = None,
) -> dict[str, Any]:
    """`model`: the network or its weights (a snapshot's); `style` names the file; `styles` names the network's
    styles in order (default: just `style`)."""
    weights = model.state_dict() if isinstance(model, TransformerNet) else model
    return {
        "kind": "inference",
        "format_version": FORMAT_VERSION,
        "model": {name: tensor.detach().cpu() for name, tensor in weights.items()},
        "model_cfg": dict(model_cfg),
        "style": style,
        "styles": list(styles or [style]),
        "summary": summary,
    }


def style_names(payload: dict[str, Any]) -> list[str]:
    """The names of an inference file's styles, in the network's order (files of one style written
    before multi-style networks have only `style`)."""
    return list(payload.get("styles") or [payload["style"]])


# Small networks trained by the project and shipped inside the package (checkpoints/demo links here), so that
# a new user can stylise at once, whichever way stylenet was installed.
DEMO_DIR = Path(__file__).resolve().parents[1] / "demo"
ZOO_PREFIX = "zoo:"  # zoo:<name> is the zoo's network, never a file of ./checkpoints
STYLE_SEPARATOR = "@"  # <network>@<style>: one style of a network of several, as a network of its own
PUBLISHED_DIR = Path("checkpoints")  # where training publishes <style>.pt by default (relative to the working folder)


def named_networks() -> dict[str, Path]:
    """Inference files that can be named instead of given by path: the demo networks, and the ones training
    published in ./checkpoints (these win where a name is in both)."""
    found = {path.stem: path for path in sorted(DEMO_DIR.glob("*.pt"))}
    found.update({path.stem: path for path in sorted(PUBLISHED_DIR.glob("*.pt"))})
    return found


def split_reference(reference: str | os.PathLike) -> tuple[str, str | None]:
    """A network reference -> (file or name, style or None): 'eight.pt@mosaic' is style mosaic of eight.pt.
    A file that is there as given is a file, '@' in its name or not."""
    text = str(reference)
    if STYLE_SEPARATOR not in text or Path(text).expanduser().is_file():
        return text, None
    network, _, style = text.rpartition(STYLE_SEPARATOR)
    if not network or not style:
        raise StylenetError(
            f"'{text}': name a style of a network as <network>{STYLE_SEPARATOR}<style>, e.g. eight.pt@mosaic"
        )
    return network, style


def reference_label(reference: str | os.PathLike) -> str:
    """A network reference's short name for a report: the file's stem, and the style of <network>@<style>."""
    file, style = split_reference(reference)
    return Path(file).stem + (f"{STYLE_SEPARATOR}{style}" if style else "")


def resolve_network_file(path: str | os.PathLike) -> Path:
    """The file of a network reference (split_reference): a path as given; a bare name (no folder, no extension)
    such as 'starry_night' is looked up in ./checkpoints, then among the zoo's networks, and the log says which
    file a name found when it was not the zoo's; 'zoo:starry_night' names the zoo's network whatever
    ./checkpoints holds. A file that is not there names what is."""
    text, _ = split_reference(path)
    if text.startswith(ZOO_PREFIX):
        zoo = DEMO_DIR / f"{text[len(ZOO_PREFIX) :]}.pt"
        if zoo.is_file():
            return zoo
        names = ", ".join(f"{ZOO_PREFIX}{file.stem}" for file in sorted(DEMO_DIR.glob("*.pt")))
        raise StylenetError(f"no zoo network {text} (the zoo's: {names})")
    given = Path(text).expanduser()
    if given.is_file():
        return given
    named = named_networks()
    if given.name == text and not given.suffix and text in named:
        found = named[text]
        if found.parent != DEMO_DIR:
            if (DEMO_DIR / found.name).is_file():  # a surprise worth a warning: it hides the zoo's network
                log.warning(
                    "'%s' is %s, a network trained in this folder; the zoo's is %s%s", text, found, ZOO_PREFIX, text
                )
            else:
                log.info("'%s' is %s, a network trained in this folder", text, found)
        return found
    available = ", ".join(named) or "none"
    raise StylenetError(
        f"checkpoint not found: {given} (networks that can be named: {available}; or give the path "
        f"of an inference file written by python -m stylenet.train)"
    )


def load_network_file(path: str | os.PathLike) -> dict[str, Any]:
    """The payload of a network file (what inference loads), given by path or by name (resolve_network_file);
    <network>@<style> is one style of a network of several, as a network of its own (one_style).
    A training snapshot (<run>/checkpoints/step_N.pt) loads as the network it holds at that step, so that a run
    can be looked at, scored or exported while it trains, without waiting for the network file at its end."""
    found = resolve_network_file(path)
    payload = read_payload(found, "inference", "training")
    if payload["kind"] == "training":
        log.info("%s is a training snapshot: its network at step %d", found, payload["step"])
        payload = network_of_snapshot(payload)
    _, style = split_reference(path)
    return payload if style is None else one_style(payload, style, found)


def one_style(payload: dict[str, Any], style: str, path: Path) -> dict[str, Any]:
    """Style `style` of a network of several (a reference <network>@<style>) as a network file of that style
    alone: it paints exactly as the network given that style, at a one-style network's speed, and everything that
    takes a network file (export, scoring, init=, add_style_to=) takes it."""
    names = style_names(payload)
    if style not in names:
        raise StylenetError(f"{path} has no style '{style}' (its styles: {', '.join(names)})")
    if len(names) == 1:
        return payload
    model = build_model(payload, path)
    model.keep_style(names.index(style))
    model_cfg = {**payload["model_cfg"], "num_styles": 1}
    summary = {**payload.get("summary", {}), "one_style_of": f"{path.name} ({len(names)} styles)"}
    return inference_payload(model, model_cfg, style, summary)


def network_of_snapshot(snapshot: dict[str, Any]) -> dict[str, Any]:
    """The inference payload a training snapshot holds; its summary says which step it is and its last losses.
    Snapshots written before 2026-12-05 do not list their styles: they are named after the run, with a number
    where the network has several (run[0], run[1], ...)."""
    count = int(snapshot["model_cfg"].get("num_styles", 1))
    unnamed = [snapshot["style"]] if count == 1 else [f"{snapshot['style']}[{index}]" for index in range(count)]
    summary = {"snapshot_step": snapshot["step"], "final_losses": snapshot.get("last_losses", {})}
    payload = inference_payload(
        snapshot["model"], snapshot["model_cfg"], snapshot["style"], summary, snapshot.get("styles") or unnamed
    )
    return {**payload, "format_version": snapshot["format_version"]}  # the weights' own version (1: renamed on load)


def read_payload(path: Path, *kinds: str) -> dict[str, Any]:
    """Load a stylenet file safely: refuse anything that is not a plain-data stylenet file of one of these `kinds`
    ("inference": a network file; "training": a snapshot, training.snapshots.load_snapshot)."""
    if not path.is_file():
        raise StylenetError(f"checkpoint not found: {path}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        reasons = [line.strip() for line in str(error).splitlines() if "WeightsUnpickler error" in line]
        reason = reasons[0] if reasons else str(error).splitlines()[0]
        raise StylenetError(
            f"refused to load {path}: it is not a plain-data checkpoint and loading it could run code ({reason})"
        ) from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as error:
        raise StylenetError(f"cannot read checkpoint {path}: the file is corrupt or truncated ({error})") from None
    if not isinstance(payload, dict) or "format_version" not in payload or "model_cfg" not in payload:
        raise StylenetError(f"{path} is not a stylenet checkpoint (no format_version/model_cfg entries)")
    version = payload["format_version"]
    if version not in READABLE_VERSIONS:
        raise StylenetError(
            f"{path} has checkpoint format version {version}; this stylenet reads versions "
            f"{', '.join(map(str, READABLE_VERSIONS))}. "
            f"Use the stylenet release that wrote it."
        )
    if payload.get("kind") not in kinds:
        raise StylenetError(f"{path} is a {payload.get('kind')} checkpoint; expected a {' or '.join(kinds)} checkpoint")
    return payload


def model_config(stored: dict[str, Any]) -> dict[str, Any]:
    """A stored model config in today's keys: files written before 2026-12-03 say half_resolution (now downsample)."""
    config = dict(stored)
    if "half_resolution" in config:
        config["downsample"] = 2 if config.pop("half_resolution") else 1
    return config


def build_model(payload: dict[str, Any], path: str | os.PathLike) -> TransformerNet:
    """Rebuild the network from its stored config with our own constructor, then load its weights."""
    try:
        model = TransformerNet(**model_config(payload["model_cfg"]))
        model.load_state_dict(payload["model"])
    except (TypeError, ValueError, RuntimeError) as error:
        raise StylenetError(
            f"{path}: weights do not match the stored model config {payload['model_cfg']}: {error}"
        ) from None
    return model
