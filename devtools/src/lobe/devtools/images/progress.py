"""Progress for builds that take minutes: a line per step as it happens, the full output in a log
that a failure quotes."""

from __future__ import annotations

import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO

LOG_DIR = Path(".lobe/images")


class BuildFailedError(RuntimeError):
    """A build step exited non-zero; carries the log so the cause is not lost in captured output."""

    def __init__(self, what: str, log: Path, tail: str) -> None:
        super().__init__(f"{what} failed (full log: {log}):\n{tail}")
        self.log = log


def say(message: str, out: IO[str] = sys.stderr) -> None:
    print(f"images: {message}", file=out, flush=True)


def run_logged(
    what: str,
    command: Sequence[str],
    log_name: str,
    shown: Callable[[str], bool],
    env: Mapping[str, str] | None = None,
    stdin: IO[bytes] | None = None,
) -> None:
    """Run `command`, printing the lines `shown` picks with the elapsed time; all lines go to the log."""
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    log = (LOG_DIR / log_name).resolve()
    started = time.monotonic()
    tail: deque[str] = deque(maxlen=40)
    with (
        log.open("w") as sink,
        subprocess.Popen(
            command,
            env=env,
            stdin=stdin,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
        ) as process,
    ):
        assert process.stdout is not None
        for line in process.stdout:
            sink.write(line)
            tail.append(line)
            if shown(line):
                say(f"{what} [{time.monotonic() - started:5.0f} s] {line.strip()[:110]}")
    if process.returncode != 0:
        raise BuildFailedError(what, log, "".join(tail))
    say(f"{what}: done in {time.monotonic() - started:.0f} s")
