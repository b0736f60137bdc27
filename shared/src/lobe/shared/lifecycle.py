"""Service instances announce their start and stop on EVENTS (fleet view, deploy tracking).

Best effort by design: an announcement that cannot be published is logged, never fatal, because
a service must be able to start while JetStream is still electing a leader (publish_fact logs
the failure and returns).
"""

from __future__ import annotations

import os
import socket
from typing import Literal

from nats.js import JetStreamContext

from lobe.shared.bus import publish_fact
from lobe.shared.events.lifecycle import SERVICE_STARTED, SERVICE_STOPPED, ServiceLifecycle

VERSION = "0.1.0"


def instance_id(service: str) -> str:
    return f"{service}@{socket.gethostname()}:{os.getpid()}"


async def announce(js: JetStreamContext, service: str, state: Literal["started", "stopped"]) -> None:
    instance = instance_id(service)
    event = ServiceLifecycle(
        request_id=instance, service=service, instance_id=instance, version=VERSION, state=state
    )
    await publish_fact(js, SERVICE_STARTED if state == "started" else SERVICE_STOPPED, event)
