"""Simulate a crash in the middle of a checkpoint write: SIGKILL after the data is written, before the rename.

Active in an entry point started by the tests when STYLENET_TEST_KILL_BEFORE_REPLACE names the file.
"""

import os
import signal

_replace = os.replace


def install(file_name: str) -> None:
    def replace(source, target, *args, **kwargs):  # type: ignore[no-untyped-def]
        if os.path.basename(target) == file_name:
            os.kill(os.getpid(), signal.SIGKILL)
        return _replace(source, target, *args, **kwargs)

    os.replace = replace
