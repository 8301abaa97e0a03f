"""Do something to this process right after the n-th call of a function: a Ctrl-C, a kill -9, NaN weights.

Active in an entry point started by the tests when STYLENET_TEST_AFTER_CALLS is
"module:Attribute.path:calls:ACTION", e.g. "stylenet.data.precomputed:CacheWriter.commit:2:SIGKILL". ACTION is a
signal name, or NAN_WEIGHTS (the function is an optimizer's step: its first parameter becomes NaN).
"""

import importlib
import math
import os
import signal


def install(spec: str) -> None:
    module_name, attribute, calls, action = spec.split(":")
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
            if action == "NAN_WEIGHTS":
                args[0].param_groups[0]["params"][0].data.fill_(math.nan)
            else:
                os.kill(os.getpid(), getattr(signal, action))
        return result

    setattr(owner, name, wrapped)
