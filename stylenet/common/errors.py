"""One exception type for problems the user can fix, and the wrapper that turns it into a clean exit."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])
EXIT_USER_ERROR = 2


class StylenetError(Exception):
    """A problem with the user's input or environment; its message says what to do."""


def exits_cleanly(task: F) -> F:
    """Turn user-fixable errors into one clear line on stderr and exit code 2, never a traceback.

    Hydra's composition errors and missing options are stylenet.config's (cli.run, schema.typed).
    """

    @functools.wraps(task)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return task(*args, **kwargs)
        except StylenetError as error:
            message = str(error)
        except KeyboardInterrupt:
            message = "interrupted"
        print(f"error: {message}", file=sys.stderr, flush=True)
        sys.exit(EXIT_USER_ERROR)

    return wrapper  # type: ignore[return-value]


def needs(package: str, extra: str) -> Any:
    """Import an optional dependency, or say which extra installs it."""
    try:
        return __import__(package)
    except ImportError:
        raise StylenetError(f"this needs the '{package}' package: pip install -e \".[{extra}]\"") from None
