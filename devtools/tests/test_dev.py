"""`lobe dev` end to end with dummy services and real embedded backends, run as a separate process."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from lobe.devtools.dev import API_KEY_PREFIX, dev_api_key, find_state_dir
from lobe.devtools.ports import free_port

DUMMIES = Path(__file__).parent / "dev_dummies"
READY = re.compile(
    r"^lobe dev ready in \d+\.\ds: gateway http://127\.0\.0\.1:(\d+)  api key (sk-lobe-dev-\S{32})$"
)


class Running:
    """The runner process, its output collected by threads so pipes never fill up."""

    def __init__(self, state_dir: Path, **env: str) -> None:
        self.gateway_port = free_port()
        environ = {k: v for k, v in os.environ.items() if k not in ("NATS_URL", "DATABASE_URL", "REDIS_URL")}
        environ |= {
            "PYTHONPATH": str(DUMMIES),
            "ALPHA_PORT": str(free_port()),
            "GATEWAY_PORT": str(self.gateway_port),
        }
        self.proc = subprocess.Popen(
            [sys.executable, str(DUMMIES / "run_dummy_dev.py"), str(state_dir)],
            env=environ | env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.out: list[str] = []
        self.err: list[str] = []
        for stream, lines in ((self.proc.stdout, self.out), (self.proc.stderr, self.err)):
            threading.Thread(target=lambda s=stream, ls=lines: ls.extend(s), daemon=True).start()

    def wait_ready(self, limit_s: float = 60) -> re.Match[str]:
        deadline = time.monotonic() + limit_s
        while time.monotonic() < deadline:
            for line in self.out:
                if match := READY.match(line.rstrip("\n")):
                    return match
            assert self.proc.poll() is None, f"lobe dev exited: {''.join(self.err)}"
            time.sleep(0.05)
        raise AssertionError(f"not ready: {''.join(self.err)}")

    def descendants(self) -> list[psutil.Process]:
        return psutil.Process(self.proc.pid).children(recursive=True)


def all_gone(procs: list[psutil.Process], limit_s: float = 10) -> list[psutil.Process]:
    """The processes still alive after limit_s (empty when all are gone)."""
    deadline = time.monotonic() + limit_s
    alive = procs
    while alive and time.monotonic() < deadline:
        alive = [p for p in alive if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
        time.sleep(0.05)
    return alive


@pytest.fixture
def running(tmp_path: Path) -> Iterator[Running]:
    run = Running(tmp_path / "state")
    yield run
    if run.proc.poll() is None:
        run.proc.kill()
        run.proc.wait()


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
        run.proc.kill()
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
