"""Embedded real servers (NATS, PostgreSQL, Redis, Prometheus and node-exporter) as child
processes on free loopback ports."""

from lobe.devtools.servers.base import EmbeddedServer, ServerStartError
from lobe.devtools.servers.binaries import BinaryNotFoundError
from lobe.devtools.servers.nats import BusUsers, NatsCluster, NatsServer, ServerTls
from lobe.devtools.servers.postgres import PostgresServer
from lobe.devtools.servers.prometheus import NodeExporter, PrometheusServer, PromQLError
from lobe.devtools.servers.redis import RedisServer

__all__ = [
    "BinaryNotFoundError",
    "BusUsers",
    "EmbeddedServer",
    "NatsCluster",
    "NatsServer",
    "NodeExporter",
    "PostgresServer",
    "PromQLError",
    "PrometheusServer",
    "RedisServer",
    "ServerStartError",
    "ServerTls",
]
