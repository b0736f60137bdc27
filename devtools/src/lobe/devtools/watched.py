"""A command run from a test as its own process: output lines collected, descendants checked.

Used by the `lobe dev` tests (devtools' own, with dummy services, and the end-to-end one): both
wait for a line on stdout, read the error output when something fails, and check that no process
outlives the command.
"""

from __future__ import annotations

import os
import re
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence

import psutil

from lobe.devtools.children import spawn_kwargs

BACKEND_URL_VARS = ("NATS_URL", "DATABASE_URL", "REDIS_URL")


def environ_without_backends() -> dict[str, str]:
    """This process's environment minus the backend URLs, so `lobe dev` embeds its own backends."""
    return {k: v for k, v in os.environ.items() if k not in BACKEND_URL_VARS}


class WatchedProcess:
    """The process, its stdout and stderr lines collected by threads so its pipes never fill up."""

    def __init__(self, argv: Sequence[str], env: Mapping[str, str], *, owned: bool = False) -> None:
        # owned: in its own process group and killed with this process (lobe.devtools.children),
        # for tools that run it; tests leave it in theirs, to find its descendants after a crash.
        extra = spawn_kwargs() if owned else {}
        self.proc = subprocess.Popen(
            list(argv), env=dict(env), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **extra
        )
        self.out: list[str] = []
        self.err: list[str] = []
        for stream, lines in ((self.proc.stdout, self.out), (self.proc.stderr, self.err)):
            threading.Thread(target=lambda s=stream, ls=lines: ls.extend(s), daemon=True).start()

    def wait_for_line(self, pattern: re.Pattern[str], limit_s: float) -> re.Match[str]:
        """The first stdout line matching pattern; fails (with stderr) if the process exits first."""
        deadline = time.monotonic() + limit_s
        while time.monotonic() < deadline:
            for line in list(self.out):
                if match := pattern.match(line.rstrip("\n")):
                    return match
            assert self.proc.poll() is None, f"exited early:\n{''.join(self.err)}"
            time.sleep(0.05)
        raise AssertionError(f"no line matching {pattern.pattern!r} after {limit_s}s:\n{''.join(self.err)}")

    def descendants(self) -> list[psutil.Process]:
        children: list[psutil.Process] = psutil.Process(self.proc.pid).children(recursive=True)
        return children

    def kill(self) -> None:
        """SIGKILL the process if it still runs (a test's teardown)."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def all_gone(procs: list[psutil.Process], limit_s: float = 10) -> list[psutil.Process]:
    """The processes still alive after limit_s (empty when all are gone)."""
    deadline = time.monotonic() + limit_s
    alive = procs
    while alive and time.monotonic() < deadline:
        alive = [p for p in alive if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
        time.sleep(0.05)
    return alive
