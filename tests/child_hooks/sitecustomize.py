"""Python imports this at start-up when tests/offline is on PYTHONPATH: entry points run offline."""

from no_network import install

install()
