"""The one way a test starts the suite's services.

- `start_gateway`, `start_worker`, `start_billing`, `start_metrics`: settings by field name;
  `mode="inprocess"` (default: in the test's event loop) or `mode="process"` (its own process,
  launched from `lobe dev`'s service specs, returned once its readiness probe answers 200, stopped
  with SIGTERM; `.proc` for tests that send other signals, `kill()` for SIGKILL).
- `service_process`: a process not yet started (restartable: faults tests kill and restart it).
- `upstreams(*defaults)`: fake providers; `mock_models()` / `write_mock_models(path)`: the mock
  models in process and as a MODELS_FILE.

pytest fixtures built on these are in lobe.devtools.suite.fixtures (loaded by the repository's
conftest.py) and lobe.devtools.pytest_plugin (`upstream`, `make_upstream`). No test module starts a
service with `python -m` itself (devtools/tests/test_one_suite.py).
"""

from lobe.devtools.fake_upstream import upstreams
from lobe.devtools.suite.inprocess import InProcessGateway, InProcessService
from lobe.devtools.suite.models import mock_models, write_mock_models
from lobe.devtools.suite.processes import ServiceProcess, service_process
from lobe.devtools.suite.services import Mode, start_billing, start_gateway, start_metrics, start_worker
from lobe.devtools.supervisor import ServiceFailed

__all__ = [
    "InProcessGateway",
    "InProcessService",
    "Mode",
    "ServiceFailed",
    "ServiceProcess",
    "mock_models",
    "service_process",
    "start_billing",
    "start_gateway",
    "start_metrics",
    "start_worker",
    "upstreams",
    "write_mock_models",
]
