"""Python imports this at start-up when tests/child_hooks is on PYTHONPATH (the entry points the tests start)."""

import os

import no_network

no_network.install()
if os.environ.get("STYLENET_TEST_KILL_BEFORE_REPLACE"):
    import kill_before_replace

    kill_before_replace.install(os.environ["STYLENET_TEST_KILL_BEFORE_REPLACE"])
if os.environ.get("STYLENET_TEST_AFTER_CALLS"):
    import after_calls

    after_calls.install(os.environ["STYLENET_TEST_AFTER_CALLS"])
if os.environ.get("STYLENET_TEST_HIDE_MODULES"):  # as if an optional extra were not installed
    import sys

    for name in os.environ["STYLENET_TEST_HIDE_MODULES"].split(","):
        sys.modules[name] = None  # type: ignore[assignment]
