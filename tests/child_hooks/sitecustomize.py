"""Python imports this at start-up when tests/child_hooks is on PYTHONPATH (the entry points the tests start)."""

import os
import sys
from collections.abc import Mapping

import no_network


def apply(environ: Mapping[str, str]) -> None:
    """The hooks a test asked for through this process's environment (tests/entry_server.py calls it after a fork)."""
    if environ.get("STYLENET_TEST_KILL_BEFORE_REPLACE"):
        import kill_before_replace

        kill_before_replace.install(environ["STYLENET_TEST_KILL_BEFORE_REPLACE"])
    if environ.get("STYLENET_TEST_AFTER_CALLS"):
        import after_calls

        after_calls.install(environ["STYLENET_TEST_AFTER_CALLS"])
    if environ.get("STYLENET_TEST_HIDE_MODULES"):  # as if an optional extra were not installed
        for name in environ["STYLENET_TEST_HIDE_MODULES"].split(","):
            sys.modules[name] = None  # type: ignore[assignment]


no_network.install()
apply(os.environ)
