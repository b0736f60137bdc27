"""Start a service for a test: `mode="inprocess"` (default, in the test's loop) or `mode="process"`
(its own process, as `lobe dev` runs it, ready when its probe says so). Settings are given by field
name in both modes; what each returns has `url` and `stop()`."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, overload

from prometheus_client import CollectorRegistry

from lobe.billing.service import BillingService
from lobe.billing.settings import BillingSettings
from lobe.chat_worker.deployments import ModelCatalog
from lobe.chat_worker.service import ChatWorker
from lobe.chat_worker.settings import WorkerSettings
from lobe.devtools.suite.inprocess import InProcessGateway, InProcessService, entered, gateway_in_process
from lobe.devtools.suite.models import mock_models
from lobe.devtools.suite.processes import ServiceProcess, service_process
from lobe.gateway.settings import GatewaySettings
from lobe.metrics.service import MetricsService, running
from lobe.metrics.settings import MetricsSettings

Mode = Literal["inprocess", "process"]


@overload
async def start_gateway(
    nats_url: str,
    *,
    mode: Literal["inprocess"] = ...,
    port: int | None = ...,
    ops: bool = ...,
    **settings: Any,
) -> InProcessGateway: ...
@overload
async def start_gateway(
    nats_url: str,
    *,
    mode: Literal["process"],
    port: int | None = ...,
    env: Mapping[str, str] | None = ...,
    name: str = ...,
    **settings: Any,
) -> ServiceProcess: ...
async def start_gateway(
    nats_url: str,
    *,
    mode: Mode = "inprocess",
    port: int | None = None,
    ops: bool = False,
    env: Mapping[str, str] | None = None,
    name: str = "gateway",
    **settings: Any,
) -> InProcessGateway | ServiceProcess:
    """A started gateway on a free port (or `port`); `ops`: its ops listener too (in process; a
    process always has one). `env`: raw variables, process mode only."""
    if mode == "inprocess":
        return await gateway_in_process(GatewaySettings(nats_url=nats_url, **settings), port, ops)
    listen = {"GATEWAY_PORT": str(port)} if port else {}
    values = {"nats_url": nats_url, **settings}
    return await service_process("gateway", values, {**listen, **(env or {})}, name=name).start()


@overload
async def start_worker(
    nats_url: str,
    models: ModelCatalog | None = ...,
    *,
    mode: Literal["inprocess"] = ...,
    registry: CollectorRegistry | None = ...,
    **settings: Any,
) -> ChatWorker: ...
@overload
async def start_worker(
    nats_url: str,
    *,
    mode: Literal["process"],
    env: Mapping[str, str] | None = ...,
    name: str = ...,
    log: Path | None = ...,
    **settings: Any,
) -> ServiceProcess: ...
async def start_worker(
    nats_url: str,
    models: ModelCatalog | None = None,
    *,
    mode: Mode = "inprocess",
    registry: CollectorRegistry | None = None,
    env: Mapping[str, str] | None = None,
    name: str = "chat-worker",
    log: Path | None = None,
    **settings: Any,
) -> ChatWorker | ServiceProcess:
    """A started chat worker: in process it routes `models` (default: the mock models) and counts on
    `registry` (default: the process's); a process routes its `models_file` setting."""
    if mode == "inprocess":
        values = {"nats_url": nats_url, "ops_port": 0, **settings}
        worker = ChatWorker(WorkerSettings(**values), models or mock_models(), registry=registry)
        await worker.start()
        return worker
    assert models is None, "a worker process routes its models_file"
    return await service_process(
        "chat-worker", {"nats_url": nats_url, **settings}, env, name=name, log=log
    ).start()


@overload
async def start_billing(
    nats_url: str, database_url: str, *, mode: Literal["inprocess"] = ..., **settings: Any
) -> InProcessService[BillingService]: ...
@overload
async def start_billing(
    nats_url: str,
    database_url: str,
    *,
    mode: Literal["process"],
    env: Mapping[str, str] | None = ...,
    **settings: Any,
) -> ServiceProcess: ...
async def start_billing(
    nats_url: str,
    database_url: str,
    *,
    mode: Mode = "inprocess",
    env: Mapping[str, str] | None = None,
    **settings: Any,
) -> InProcessService[BillingService] | ServiceProcess:
    """A started billing on `database_url` (it migrates it at start); `url`: its ops listener and API."""
    values = {"nats_url": nats_url, "database_url": database_url, **settings}
    if mode == "inprocess":
        service = BillingService(BillingSettings(**{"ops_port": 0, **values}))
        return await entered(service, lambda s: s.ops_port)
    return await service_process("billing", values, env).start()


@overload
async def start_metrics(
    nats_url: str, *, mode: Literal["inprocess"] = ..., **settings: Any
) -> InProcessService[MetricsService]: ...
@overload
async def start_metrics(
    nats_url: str,
    *,
    mode: Literal["process"],
    env: Mapping[str, str] | None = ...,
    log: Path | None = ...,
    **settings: Any,
) -> ServiceProcess: ...
async def start_metrics(
    nats_url: str,
    *,
    mode: Mode = "inprocess",
    env: Mapping[str, str] | None = None,
    log: Path | None = None,
    **settings: Any,
) -> InProcessService[MetricsService] | ServiceProcess:
    """A started metrics service; `url`: its ops listener (/metrics)."""
    values = {"nats_url": nats_url, **settings}
    if mode == "inprocess":
        return await entered(running(MetricsSettings(**{"ops_port": 0, **values})), lambda s: s.ops_port)
    return await service_process("metrics", values, env, log=log).start()
