"""nats-server with JetStream, its store and log under the server's home."""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request
from pathlib import Path

from lobe.devtools.ports import LOOPBACK, free_port
from lobe.devtools.servers.base import EmbeddedServer
from lobe.devtools.servers.binaries import nats_server


class NatsServer(EmbeddedServer):
    name = "nats"

    def __init__(self, home: Path | str | None = None, port: int | None = None, host: str = LOOPBACK) -> None:
        super().__init__(home, port, host)
        # The monitoring port answers /healthz only once JetStream is up: our readiness probe.
        self.monitor_port = free_port(self.host)
        self.store_dir = self.home / "jetstream"

    @property
    def url(self) -> str:
        return f"nats://{self.host}:{self.port}"

    def command(self) -> list[str]:
        return [
            str(nats_server()),
            "-a", self.host,
            "-p", str(self.port),
            "-m", str(self.monitor_port),
            "-js",
            "-sd", str(self.store_dir),
        ]  # fmt: skip

    def is_ready(self) -> bool:
        try:
            with socket.create_connection((self.host, self.port), timeout=0.5) as sock:
                if not sock.recv(5).startswith(b"INFO"):
                    return False
            url = f"http://{self.host}:{self.monitor_port}/healthz?js-enabled-only=true"
            with urllib.request.urlopen(url, timeout=1) as resp:
                return resp.status == 200 and bool(json.load(resp).get("status") == "ok")
        except (OSError, urllib.error.URLError, ValueError):
            return False
