"""Child processes that never outlive their owner.

Each child runs in its own process group (so a stop reaches everything it forked), is recorded
in a registry that an atexit hook empties, and on Linux gets PR_SET_PDEATHSIG=SIGKILL so that even
a SIGKILLed owner (no atexit, no signal handler) takes it down.

PR_SET_PDEATHSIG fires when the *thread* that forked the child exits, so spawn from a thread that
lives as long as the child (the main thread, or the event loop's thread).
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import ctypes.util
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from typing import Any

_PR_SET_PDEATHSIG = 1

# Loaded before any fork: the pre-exec hook must not import or allocate much in the child.
_libc: Any = None
if sys.platform.startswith("linux"):
    with contextlib.suppress(OSError):
        _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def _die_with_parent(owner_pid: int) -> Callable[[], None]:
    def preexec() -> None:
        if _libc is not None:
            _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        # The owner may have died between fork and prctl; then nobody would ever signal us.
        if os.getppid() != owner_pid:
            os._exit(1)

    return preexec


def spawn_kwargs() -> dict[str, Any]:
    """Keyword arguments for subprocess.Popen / asyncio.create_subprocess_exec.

    The child's new session puts it in its own process group, so a terminal's Ctrl-C reaches only
    the owner, which then shuts its children down in order.
    """
    return {"start_new_session": True, "preexec_fn": _die_with_parent(os.getpid())}


def signal_group(pid: int, sig: int) -> bool:
    """Send sig to the process group led by pid; False when it is already gone."""
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        return False
    except PermissionError:
        # A group whose members all changed user is still ours to stop; fall back to the leader.
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return False
    return True


def group_alive(pid: int) -> bool:
    """True while any process of pid's group exists (zombies of reaped leaders excluded)."""
    try:
        os.killpg(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class _Registry:
    """Cleanup callbacks of live children, run at interpreter exit (last registered first)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._callbacks: dict[int, Callable[[], None]] = {}

    def add(self, key: int, callback: Callable[[], None]) -> None:
        with self._lock:
            self._callbacks[key] = callback

    def discard(self, key: int) -> None:
        with self._lock:
            self._callbacks.pop(key, None)

    def run_all(self) -> None:
        with self._lock:
            callbacks = list(self._callbacks.values())[::-1]
            self._callbacks.clear()
        for callback in callbacks:
            with contextlib.suppress(Exception):
                callback()


registry = _Registry()
atexit.register(registry.run_all)


def kill_tree(proc: subprocess.Popen[bytes], grace_s: float, first: int = signal.SIGTERM) -> int | None:
    """Signal `first` to proc's leader, wait up to grace_s, then SIGKILL the whole group."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(first)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(grace_s)
    signal_group(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(5)
    return proc.returncode
