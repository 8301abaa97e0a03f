"""What `python -m stylenet.<task>` runs around its Hydra main: every mistake on the command line ends in one
line on stderr and exit status 2, Hydra's own (a value of the wrong type, an unknown key or group option)
as ours (stylenet.common.errors.exits_cleanly), never a traceback."""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from hydra.errors import HydraException
from omegaconf.errors import OmegaConfBaseException

from stylenet.common.atomic import unwritable
from stylenet.common.errors import EXIT_USER_ERROR

# Keys renamed since they shipped, and what to write instead: Hydra would only say the old key is unknown.
RENAMED = {"model.half_resolution": "model.downsample=2 (for true) or model.downsample=1 (for false)"}


def fail(message: str) -> None:
    print(f"error: {message}", file=sys.stderr, flush=True)
    sys.exit(EXIT_USER_ERROR)


def refuse_renamed(arguments: Sequence[str]) -> None:
    """Exit 2 with the new key's name when a command line still gives a renamed one."""
    for argument in arguments:
        key = argument.lstrip("+~").split("=", 1)[0]
        if key in RENAMED:
            fail(f"{key} was renamed: use {RENAMED[key]}")


def one_line(error: BaseException) -> str:
    """Hydra's message (several lines, ending in advice about HYDRA_FULL_ERROR) as one line that names the key."""
    cause = error.__cause__ if isinstance(error.__cause__, OmegaConfBaseException) else error
    key = getattr(cause, "full_key", None)
    text = str(cause).split("\n    full_key:")[0]  # OmegaConf appends the key, the value's type and the object's
    text = re.sub(
        r"\s+", " ", text.replace("Set the environment variable HYDRA_FULL_ERROR=1 for a complete stack trace.", "")
    ).strip()
    return f"{key}: {text}" if key and not text.startswith(str(key)) else text


def run(main: Callable[[], None]) -> None:
    """Run a @hydra.main function with Hydra's composition errors raised (HYDRA_FULL_ERROR) and reported here."""
    refuse_renamed(sys.argv[1:])
    os.environ.setdefault("HYDRA_FULL_ERROR", "1")
    try:
        main()
    except (HydraException, OmegaConfBaseException) as error:
        fail(one_line(error))
    except OSError as error:  # Hydra making the run folder or its log file where it cannot (hydra.run.dir=...)
        if error.filename is None:
            raise
        fail(str(unwritable(Path(error.filename), error)))
