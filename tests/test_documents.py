"""The documents a user reads: README within about 400 lines, BENCHMARKS opening with its contents, every link
between them resolving, and every `python -m stylenet.<entry>` command in README naming options that entry's
config has (a renamed option fails here, not in a user's terminal)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from omegaconf import DictConfig, OmegaConf

from stylenet.config.compose import CONF_DIR, compose_config

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCUMENTS = [README, ROOT / "BENCHMARKS.md", *sorted((ROOT / "docs").glob("*.md"))]
GROUPS = {path.name for path in CONF_DIR.iterdir() if path.is_dir()}


def slug(heading: str) -> str:
    """GitHub's anchor of a heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    return {slug(line.lstrip("#")) for line in path.read_text().splitlines() if line.startswith("#")}


def test_readme_is_short_and_benchmarks_open_with_their_contents() -> None:
    assert len(README.read_text().splitlines()) <= 400
    text = (ROOT / "BENCHMARKS.md").read_text()
    headings = re.findall(r"(?m)^## (.+)$", text)
    assert headings[0] == "Contents"
    contents = text.split("## Contents", 1)[1].split("\n## ", 1)[0]
    assert all(f"(#{slug(heading)})" in contents for heading in headings[1:])


def test_every_link_between_the_documents_resolves() -> None:
    broken = []
    for document in DOCUMENTS:
        for target, anchor in re.findall(r"\]\(([^)#\s]*)(?:#([^)\s]+))?\)", document.read_text()):
            if target.startswith(("http://", "https://")):
                continue
            path = (document.parent / target).resolve() if target else document
            if not path.exists():
                broken.append(f"{document.name}: {target}")
            elif anchor and path.suffix == ".md" and anchor not in anchors(path):
                broken.append(f"{document.name}: {target}#{anchor}")
    assert not broken, broken


def readme_commands() -> list[tuple[str, list[str]]]:
    """(entry point, its key=value words) of every `python -m stylenet.<entry>` command README shows."""
    found = []
    for entry, words in re.findall(r"python -m stylenet\.(\w+)((?:[ \t]+[^\s`|#\\]+)*)", README.read_text()):
        if (CONF_DIR / f"{entry}.yaml").is_file():
            found.append((entry, [word for word in words.split() if "=" in word and not word.startswith("-")]))
    return found


def has(config: DictConfig, key: str) -> bool:
    """Whether `key` (dotted) is an option of `config`, set or not (a `???` or null value counts)."""
    parent, _, last = key.lstrip("+").rpartition(".")
    node = OmegaConf.select(config, parent) if parent else config
    return isinstance(node, DictConfig) and last in list(node.keys())  # `in` alone misses `???` values


@pytest.mark.parametrize("entry,overrides", readme_commands())
def test_readme_commands_name_options_their_config_has(entry: str, overrides: list[str]) -> None:
    choices = [word for word in overrides if word.split("=")[0] in GROUPS and "<" not in word]
    config = compose_config(entry, choices)  # an unknown group option fails here
    unknown = [word for word in overrides if word.split("=")[0] not in GROUPS and not has(config, word.split("=")[0])]
    assert not unknown, f"python -m stylenet.{entry}: no such option(s) {unknown}"


def test_readme_shows_every_entry_point() -> None:
    shown = {entry for entry, _ in readme_commands()}
    assert shown == {path.stem for path in CONF_DIR.glob("*.yaml")}
