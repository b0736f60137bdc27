"""`lobe dev` end to end with dummy services and real embedded backends, run as a separate process."""

from __future__ import annotations

import re
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from lobe.chat_worker.deployments import load_catalog
from lobe.devtools.dev import (
    API_KEY_PREFIX,
    SERVICES,
    dev_api_key,
    find_state_dir,
    gateway_urls,
    service_specs,
    upstream_spec,
)
from lobe.devtools.loadtest.shape import MODEL as UPSTREAM_MODEL
from lobe.devtools.loadtest.shape import Shape
from lobe.devtools.ports import free_port
from lobe.devtools.watched import WatchedProcess, all_gone, environ_without_backends

DUMMIES = Path(__file__).parent / "dev_dummies"
READY = re.compile(
    r"^lobe dev ready in \d+\.\ds: gateway http://127\.0\.0\.1:(\d+)  api key (sk-lobe-dev-\S{32})$"
)


class Running(WatchedProcess):
    """The dummy `lobe dev` runner on free ports."""

    def __init__(self, state_dir: Path, **env: str) -> None:
        self.gateway_port = free_port()
        environ = environ_without_backends() | {
            "PYTHONPATH": str(DUMMIES),
            "ALPHA_PORT": str(free_port()),
            "GATEWAY_PORT": str(self.gateway_port),
        }
        super().__init__([sys.executable, str(DUMMIES / "run_dummy_dev.py"), str(state_dir)], environ | env)

    def wait_ready(self, limit_s: float = 60) -> re.Match[str]:
        return self.wait_for_line(READY, limit_s)


@pytest.fixture
def running(tmp_path: Path) -> Iterator[Running]:
    run = Running(tmp_path / "state")
    yield run
    run.kill()


def test_ready_line_prefixed_logs_and_sigterm_leaves_no_process(running: Running) -> None:
    match = running.wait_ready()
    assert int(match.group(1)) == running.gateway_port
    procs = running.descendants()
    names = {p.name() for p in procs}
    assert {"nats-server", "postgres", "redis-server"} <= names
    assert any(line.startswith("alpha        | alpha serving on") for line in running.out)
    assert sum(line.startswith("lobe dev ready") for line in running.out) == 1

    running.proc.send_signal(signal.SIGTERM)
    assert running.proc.wait(30) == 0
    assert all_gone(procs, 5) == []


def test_sigkilled_lobe_dev_takes_its_children_down(running: Running) -> None:
    running.wait_ready()
    procs = running.descendants()
    running.proc.kill()
    running.proc.wait()
    assert all_gone(procs) == []


def test_a_dying_service_stops_everything_with_exit_code_1(tmp_path: Path) -> None:
    run = Running(tmp_path / "state", DUMMY_DIE="alpha", DUMMY_DIE_AFTER="3")
    try:
        run.wait_ready()
        procs = run.descendants()
        assert run.proc.wait(30) == 1
    finally:
        run.kill()
    err = "".join(run.err)
    assert "alpha exited with code 3" in err
    assert "alpha dying" in err  # its last log lines are in the report
    assert all_gone(procs, 5) == []


def test_the_dev_api_key_is_generated_once_and_kept_private(tmp_path: Path) -> None:
    key = dev_api_key(tmp_path)
    assert key.startswith(API_KEY_PREFIX)
    assert len(key) == len(API_KEY_PREFIX) + 32
    assert dev_api_key(tmp_path) == key
    assert (tmp_path / "api-key").stat().st_mode & 0o077 == 0


def test_state_dir_is_under_the_repository_root(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    (tmp_path / "a" / "b").mkdir(parents=True)
    assert find_state_dir(tmp_path / "a" / "b") == tmp_path / ".lobe" / "dev"


def test_extra_instances_are_numbered_on_free_ports_and_the_plan_reaches_the_bootstrap_key() -> None:
    urls = {"NATS_URL": "nats://x"}
    extra = {"chat-worker": {"MODELS_FILE": "/m.yaml"}}
    specs = service_specs(SERVICES, urls, "sk-k", {}, {"gateway": 2, "chat-worker": 3}, "enterprise", extra)
    names = [spec.name for spec in specs]
    assert names == [
        "billing",
        "metrics",
        "chat-worker",
        "chat-worker-2",
        "chat-worker-3",
        "gateway",
        "gateway-2",
    ]
    gateways = gateway_urls(specs)
    assert gateways[0] == "http://127.0.0.1:3210"
    assert len(set(gateways)) == 2
    assert {spec.env["GATEWAY_API_KEYS"] for spec in specs if spec.name.startswith("gateway")} == {
        "sk-k:dev-user:enterprise"
    }
    workers = [spec for spec in specs if spec.name.startswith("chat-worker")]
    assert {spec.env["MODELS_FILE"] for spec in workers} == {"/m.yaml"}
    assert len({spec.env["OPS_PORT"] for spec in workers}) == 3
    assert {spec.env["OTEL_SERVICE_NAME"] for spec in workers} == {"chat-worker"}


def test_the_fake_upstream_deployment_routes_the_bench_model_to_it(tmp_path: Path) -> None:
    spec, models_file = upstream_spec(Shape(chunks=7, ttft_s=0.005), tmp_path)
    routed = load_catalog(str(models_file)).get(UPSTREAM_MODEL)
    assert routed is not None
    (deployment,) = routed.deployments
    port = spec.argv[spec.argv.index("--port") + 1]
    assert deployment.base_url == f"http://127.0.0.1:{port}/v1"
    assert spec.argv[spec.argv.index("--chunks") + 1] == "7"
    assert spec.argv[spec.argv.index("--ttft-ms") + 1] == "5"
    assert spec.ready_url == f"http://127.0.0.1:{port}/health"
