"""Free loopback ports for embedded servers and test services."""

from __future__ import annotations

import socket
import threading
import time

LOOPBACK = "127.0.0.1"

_lock = threading.Lock()
# Ports handed out recently by this process: the OS may offer the same ephemeral port twice before
# the first taker binds it, and two servers started back to back would then collide.
_recent: dict[int, float] = {}
_RECENT_S = 60.0


def free_port(host: str = LOOPBACK) -> int:
    """A port nobody listens on right now (the caller must still bind it soon)."""
    with _lock:
        now = time.monotonic()
        for port, when in list(_recent.items()):
            if now - when > _RECENT_S:
                del _recent[port]
        for _ in range(50):
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                sock.bind((host, 0))
                port = int(sock.getsockname()[1])
            if port not in _recent:
                _recent[port] = now
                return port
        raise RuntimeError("no free port found")


def port_is_open(port: int, host: str = LOOPBACK, timeout: float = 0.2) -> bool:
    """True when something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False
