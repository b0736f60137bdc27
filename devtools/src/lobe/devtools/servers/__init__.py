"""Embedded real servers (NATS, PostgreSQL, Redis) as child processes on free loopback ports."""

from lobe.devtools.servers.base import EmbeddedServer, ServerStartError
from lobe.devtools.servers.binaries import BinaryNotFoundError
from lobe.devtools.servers.nats import BusUsers, NatsCluster, NatsServer, ServerTls
from lobe.devtools.servers.postgres import PostgresServer
from lobe.devtools.servers.redis import RedisServer

__all__ = [
    "BinaryNotFoundError",
    "BusUsers",
    "EmbeddedServer",
    "NatsCluster",
    "NatsServer",
    "PostgresServer",
    "RedisServer",
    "ServerStartError",
    "ServerTls",
]
