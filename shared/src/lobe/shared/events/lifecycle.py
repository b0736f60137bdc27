"""Lifecycle domain: service instances announce start and stop (fleet view, alerting)."""

from __future__ import annotations

from typing import Literal

from lobe.shared.events.envelope import Event

SERVICE_STARTED = "service.started"
SERVICE_STOPPED = "service.stopped"


class ServiceLifecycle(Event):
    """`service.started` / `service.stopped`. `request_id` is the instance id."""

    service: str
    instance_id: str
    version: str
    state: Literal["started", "stopped"]
