"""`lobe dev` end to end with dummy services and real embedded backends, run as a separate process."""

from __future__ import annotations

import re
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from lobe.devtools.dev import API_KEY_PREFIX, dev_api_key, find_state_dir
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
