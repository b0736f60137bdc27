"""`lobe dev` with two dummy services (argv[1]: state dir); ports come from ALPHA_PORT and GATEWAY_PORT."""

import asyncio
import sys
from pathlib import Path

from lobe.devtools.dev import DevOptions, Service, run_dev

SERVICES = (
    Service("alpha", "dummy_service", "ALPHA_PORT", 0, "/health/ready"),
    Service("gateway", "dummy_service", "GATEWAY_PORT", 0, "/api/ready"),
)
options = DevOptions(state_dir=Path(sys.argv[1]), ready_timeout_s=30, grace_s=3, services=SERVICES)
sys.exit(asyncio.run(run_dev(options)))
