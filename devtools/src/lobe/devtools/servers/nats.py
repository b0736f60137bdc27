"""nats-server with JetStream on disk, configured by a file under the server's home: optionally a
NATS user per service with the catalog's permissions (`BusUsers`), TLS, and a cluster route
(`NatsCluster`: three nodes on loopback)."""

from __future__ import annotations

import contextlib
import json
import secrets
import socket
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

from lobe.devtools.ports import LOOPBACK, free_port
from lobe.devtools.servers.base import EmbeddedServer
from lobe.devtools.servers.binaries import nats_server
from lobe.shared.catalog.permissions import PRINCIPALS, users


@dataclass(frozen=True)
class BusUsers:
    """A NATS user per service (and `admin`, the operator's CLI), each allowed only what the event
    catalog gives it; `superuser`, when named, may do anything (a test's own connections)."""

    passwords: dict[str, str]
    superuser: str | None = None

    @classmethod
    def generate(cls, superuser: str | None = None) -> BusUsers:
        names = [*PRINCIPALS, *([superuser] if superuser else [])]
        return cls({name: secrets.token_urlsafe(18) for name in names}, superuser)

    def authorization(self) -> dict[str, Any]:
        restricted = {k: v for k, v in self.passwords.items() if k != self.superuser}
        entries = users(restricted)
        if self.superuser:
            entries.append({"user": self.superuser, "password": self.passwords[self.superuser]})
        return {"users": entries}

    def env(self, principal: str) -> dict[str, str]:
        """The environment a service process connects with (NATS_USER, NATS_PASSWORD)."""
        return {"NATS_USER": principal, "NATS_PASSWORD": self.passwords[principal]}

    def settings(self, principal: str) -> dict[str, str]:
        """Settings overrides (NatsSettings fields) of an in-process service connecting as `principal`."""
        return {"nats_user": principal, "nats_password": self.passwords[principal]}

    def connect_kwargs(self, principal: str) -> dict[str, str]:
        """nats.connect's keywords for connecting as `principal`."""
        return {"user": principal, "password": self.passwords[principal]}


@dataclass(frozen=True)
class ServerTls:
    """The server's certificate and key; with `ca_file`, clients must present a certificate it signed."""

    cert_file: Path
    key_file: Path
    ca_file: Path | None = None


@dataclass
class ClusterRoutes:
    """One node's place in a cluster: its own route port and every node's route port."""

    name: str
    port: int
    route_ports: list[int] = field(default_factory=list)


class NatsServer(EmbeddedServer):
    name = "nats"

    def __init__(
        self,
        home: Path | str | None = None,
        port: int | None = None,
        host: str = LOOPBACK,
        *,
        users: BusUsers | None = None,
        tls: ServerTls | None = None,
        cluster: ClusterRoutes | None = None,
        server_name: str | None = None,
    ) -> None:
        super().__init__(home, port, host)
        # The monitoring port answers /healthz only once JetStream is up: our readiness probe.
        self.monitor_port = free_port(self.host)
        self.store_dir = self.home / "jetstream"
        self.config_path = self.home / "nats.conf"
        self.users = users
        self.tls = tls
        self.cluster = cluster
        self.server_name = server_name

    @property
    def url(self) -> str:
        return f"{'tls' if self.tls else 'nats'}://{self.host}:{self.port}"

    def config(self) -> dict[str, Any]:
        """The server's configuration; nats-server reads JSON as its own format."""
        config: dict[str, Any] = {
            "listen": f"{self.host}:{self.port}",
            "http": f"{self.host}:{self.monitor_port}",
            "jetstream": {"store_dir": str(self.store_dir)},
        }
        if self.server_name:
            config["server_name"] = self.server_name
        if self.users is not None:
            config["authorization"] = self.users.authorization()
        if self.tls is not None:
            tls: dict[str, Any] = {"cert_file": str(self.tls.cert_file), "key_file": str(self.tls.key_file)}
            if self.tls.ca_file is not None:
                tls |= {"ca_file": str(self.tls.ca_file), "verify": True}
            config["tls"] = tls
        if self.cluster is not None:
            config["cluster"] = {
                "name": self.cluster.name,
                "listen": f"{self.host}:{self.cluster.port}",
                "routes": [f"nats-route://{self.host}:{p}" for p in self.cluster.route_ports],
            }
        return config

    def command(self) -> list[str]:
        # Written at every start, once the port is settled: a restart serves the same data at the
        # same address under the same configuration.
        self.config_path.write_text(json.dumps(self.config(), indent=2))
        return [str(nats_server()), "-c", str(self.config_path)]

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

    def violations(self) -> list[str]:
        """Permission violations the server logged ("Publish Violation", "Subscription Violation")."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return []
        return [line for line in text.splitlines() if "Violation" in line]


class NatsCluster:
    """`size` nats-servers routed to one another on loopback, JetStream on each node's disk.

    Nodes are started together (a JetStream cluster elects its meta leader only once a quorum is
    up); each can be killed and restarted on its own port with its own store, as a node would be.
    """

    def __init__(self, size: int = 3, **node_options: Any) -> None:
        route_ports = [free_port() for _ in range(size)]
        self.nodes = [
            NatsServer(
                cluster=ClusterRoutes("lobe", route_ports[i], route_ports),
                server_name=f"lobe-n{i}",
                **node_options,
            )
            for i in range(size)
        ]

    @property
    def url(self) -> str:
        """Every node's URL, comma-separated: what NATS_URL takes."""
        return ",".join(node.url for node in self.nodes)

    def start(self, timeout: float = 30.0) -> Self:
        for node in self.nodes:
            node.spawn()
        for node in self.nodes:
            node.wait_ready(timeout)
        return self

    def close(self) -> None:
        for node in self.nodes:
            with contextlib.suppress(Exception):
                node.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
