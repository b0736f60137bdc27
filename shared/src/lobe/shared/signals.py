"""SIGTERM and SIGINT as an asyncio event: every service's cue to stop taking work and drain."""

from __future__ import annotations

import asyncio
import signal


def stop_requested() -> asyncio.Event:
    """An event set on SIGTERM or SIGINT. Install it first, so a signal during start-up is kept."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    return stop
