"""Send this process a signal right after the n-th call of a function: a Ctrl-C or a kill -9 at a chosen point.

Active in an entry point started by the tests when STYLENET_TEST_SIGNAL_AFTER is
"module:Attribute.path:calls:SIGNAME", e.g. "stylenet.cache:CacheWriter.commit:2:SIGKILL".
"""

import importlib
import os
import signal


def install(spec: str) -> None:
    module_name, attribute, calls, signal_name = spec.split(":")
    owner = importlib.import_module(module_name)
    *parents, name = attribute.split(".")
    for parent in parents:
        owner = getattr(owner, parent)
    original = getattr(owner, name)
    count = 0

    def wrapped(*args, **kwargs):  # type: ignore[no-untyped-def]
        nonlocal count
        result = original(*args, **kwargs)
        count += 1
        if count == int(calls):
            os.kill(os.getpid(), getattr(signal, signal_name))
        return result

    setattr(owner, name, wrapped)
