"""What option classes share: the checks of a value's range or choice, with the messages users see.

The option classes (VGGOptions, LossOptions, StyleOptions, DataOptions and the entry points' configs in
stylenet.config.schema) are plain dataclasses; Hydra fills them from conf/ and checks the types of their
fields, and their `__post_init__` checks what a type cannot say (a positive size, one of a few words).
UNSET marks a field whose default lives in a YAML file, not here.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from stylenet.common.errors import StylenetError

UNSET: Any = "???"  # omegaconf.MISSING: this layer does not import Hydra's config library


def at_least(name: str, value: Any, least: int = 1, auto: bool = False) -> None:
    """A whole number from `least` (or the word auto where `auto`); None is left to the field's type."""
    if value is None or (auto and value == "auto"):
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        wanted = "a positive whole number" if least == 1 else f"{least} or more"
        raise StylenetError(f"{name} must be {'auto or ' if auto else ''}{wanted}, got {value}")


def one_of(name: str, value: Any, choices: Iterable[str], nullable: bool = False) -> None:
    choices = tuple(choices)
    if (value is None and nullable) or (isinstance(value, str) and value in choices):
        return
    raise StylenetError(f"{name} must be {'null or ' if nullable else ''}one of {', '.join(choices)}, got '{value}'")


def all_different(labels: list[str], problem: str) -> None:
    """Rows of a report are keyed by their labels: two methods with one label would silently become one row."""
    if len(set(labels)) != len(labels):
        raise StylenetError(f"{problem}: {', '.join(labels)}")
