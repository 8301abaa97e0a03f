"""Switch off internet access for this Python process: the tests must never download anything.

The tests pass without internet, and must not fetch VGG weights or style images even on a machine
that has internet. Local sockets (AF_UNIX, used by DataLoader workers) keep working.
"""

import socket

_connect = socket.socket.connect


def _refuse_internet(self: socket.socket, address: object) -> None:
    if self.family in (socket.AF_INET, socket.AF_INET6):
        raise OSError(f"network access is disabled in stylenet's tests (tried to connect to {address})")
    _connect(self, address)


def install() -> None:
    socket.socket.connect = _refuse_internet  # type: ignore[method-assign]
