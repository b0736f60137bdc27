"""The life cycle every embedded server shares: spawn, wait until ready, stop, kill, restart."""

from __future__ import annotations

import shutil
import signal
import subprocess
import tempfile
import time
from abc import ABC, abstractmethod
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from lobe.devtools.children import kill_tree, registry, signal_group, spawn_kwargs
from lobe.devtools.ports import LOOPBACK, free_port, port_is_open

LOG_TAIL_LINES = 30


class ServerStartError(RuntimeError):
    """An embedded server exited or never became ready; carries its log tail to say why."""

    def __init__(self, name: str, reason: str, log_tail: str) -> None:
        super().__init__(f"{name} did not start: {reason}\n--- last lines of its log ---\n{log_tail}")
        self.name = name
        self.reason = reason
        self.log_tail = log_tail


class EmbeddedServer(ABC):
    """A real server binary run as a child process on a loopback port.

    `home` holds the server's state and log. A server given no home gets a temporary one that
    `close()` removes; the port and home survive stop/kill so a restart serves the same data at
    the same URL (fault tests rely on that).
    """

    name = "server"
    # Signal that starts a graceful shutdown (PostgreSQL wants SIGINT: its SIGTERM waits for clients).
    graceful_signal = signal.SIGTERM

    def __init__(self, home: Path | str | None = None, port: int | None = None, host: str = LOOPBACK) -> None:
        self._owns_home = home is None
        self.home = Path(tempfile.mkdtemp(prefix=f"lobe-{self.name}-")) if home is None else Path(home)
        self.home.mkdir(parents=True, exist_ok=True)
        self.host = host
        self.port = port if port is not None else free_port(host)
        self._port_chosen_by_us = port is None
        self._started_once = False
        self._proc: subprocess.Popen[bytes] | None = None
        self.log_path = self.home / f"{self.name}.log"

    # -- what each server defines ---------------------------------------------------------------
    @property
    @abstractmethod
    def url(self) -> str: ...

    @abstractmethod
    def command(self) -> list[str]: ...

    @abstractmethod
    def is_ready(self) -> bool:
        """One cheap readiness probe; called repeatedly until it returns True."""

    def prepare(self) -> None:  # noqa: B027 - optional hook, most servers need no set-up
        """One-time set-up before the first spawn (e.g. initdb)."""

    def popen_kwargs(self) -> dict[str, Any]:
        return {}

    # -- life cycle -----------------------------------------------------------------------------
    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self, timeout: float = 30.0) -> Self:
        self.spawn()
        self.wait_ready(timeout)
        return self

    def spawn(self) -> None:
        """Start the process without waiting (lets a caller start several servers at once)."""
        if self.running:
            return
        self.prepare()
        if port_is_open(self.port, self.host):
            # Readiness probes would happily talk to whoever holds the port, so refuse up front.
            if self._port_chosen_by_us and not self._started_once:
                self.port = free_port(self.host)
            else:
                raise ServerStartError(self.name, f"port {self.port} is already in use", self.log_tail())
        self._started_once = True
        with open(self.log_path, "ab") as log:
            self._proc = subprocess.Popen(
                self.command(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.home,
                **spawn_kwargs(),
                **self.popen_kwargs(),
            )
        registry.add(id(self), self.close)

    def wait_ready(self, timeout: float = 30.0) -> None:
        proc = self._proc
        if proc is None:
            raise RuntimeError(f"{self.name} was not started")
        deadline = time.monotonic() + timeout
        delay = 0.005
        while True:
            if proc.poll() is not None:
                raise ServerStartError(self.name, f"exited with code {proc.returncode}", self.log_tail())
            if self.is_ready():
                return
            if time.monotonic() > deadline:
                self.kill()
                raise ServerStartError(self.name, f"not ready after {timeout:.0f}s", self.log_tail())
            time.sleep(delay)
            delay = min(delay * 2, 0.1)

    def stop(self, timeout: float = 10.0) -> None:
        """Graceful shutdown; whatever is left of the process group after `timeout` is SIGKILLed."""
        if self._proc is not None:
            kill_tree(self._proc, timeout, first=self.graceful_signal)
            self._proc = None

    def kill(self) -> None:
        """SIGKILL the whole process group now, as a crash would."""
        if self._proc is not None:
            signal_group(self._proc.pid, signal.SIGKILL)
            self._proc.wait(5)
            self._proc = None

    def restart(self, timeout: float = 30.0) -> Self:
        self.stop()
        return self.start(timeout)

    def close(self) -> None:
        """Stop for good and remove a temporary home."""
        self.stop()
        registry.discard(id(self))
        if self._owns_home:
            shutil.rmtree(self.home, ignore_errors=True)

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.url} pid={self.pid}>"
