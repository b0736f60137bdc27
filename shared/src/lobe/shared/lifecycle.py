"""Service instances announce their start and stop on EVENTS (fleet view, deploy tracking).

Best effort by design: an announcement that cannot be published is logged, never fatal, because
a service must be able to start while JetStream is still electing a leader.
"""

from __future__ import annotations

import logging
import os
import socket
from typing import Literal

from nats.js import JetStreamContext

from lobe.shared.events.lifecycle import SERVICE_STARTED, SERVICE_STOPPED, ServiceLifecycle

log = logging.getLogger(__name__)
VERSION = "0.1.0"


def instance_id(service: str) -> str:
    return f"{service}@{socket.gethostname()}:{os.getpid()}"


async def announce(js: JetStreamContext, service: str, state: Literal["started", "stopped"]) -> None:
    instance = instance_id(service)
    event = ServiceLifecycle(
        request_id=instance, service=service, instance_id=instance, version=VERSION, state=state
    )
    subject = SERVICE_STARTED if state == "started" else SERVICE_STOPPED
    try:
        await js.publish(subject, event.encode(), headers={"Nats-Msg-Id": str(event.event_id)}, timeout=2)
    except Exception as exc:
        log.warning("could not announce %s %s: %s", service, state, exc)
