"""Python imports this at start-up when tests/child_hooks is on PYTHONPATH: the entry points that the tests start
as processes of their own (helpers.run_cli, torchrun) cannot reach the internet either."""

import no_network

no_network.install()
