"""Supervisor with small dummy children: prefixed logs, readiness, death, whole-tree shutdown."""

from __future__ import annotations

import asyncio
import io
import signal
import sys
import textwrap
import time

import psutil
import pytest

from lobe.devtools.ports import free_port
from lobe.devtools.supervisor import ServiceFailed, ServiceSpec, Supervisor


def py(code: str) -> list[str]:
    return [sys.executable, "-c", textwrap.dedent(code)]


# Forks a grandchild that ignores SIGTERM, prints its pid, then sleeps (optionally ignoring SIGTERM too).
def tree(ignore_term: bool) -> list[str]:
    return py(f"""
        import signal, subprocess, sys, time
        grandchild = subprocess.Popen([sys.executable, "-c",
            "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)"])
        if {ignore_term}:
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
        print(grandchild.pid, flush=True)
        time.sleep(60)
    """)


async def _first_line(out: io.StringIO, limit_s: float = 10) -> str:
    deadline = time.monotonic() + limit_s
    while "|" not in out.getvalue():
        assert time.monotonic() < deadline, "child printed nothing"
        await _sleep()
    return out.getvalue().splitlines()[0].split("|", 1)[1].strip()


async def _sleep() -> None:
    await asyncio.sleep(0.02)


def _gone(pid: int, limit_s: float = 2) -> bool:
    """True once pid has exited (SIGKILL delivery is asynchronous, so allow a moment)."""
    deadline = time.monotonic() + limit_s
    while True:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)


async def test_child_output_lines_are_prefixed_with_its_padded_name() -> None:
    out = io.StringIO()
    sup = Supervisor(out, color=False, width=8)
    await sup.start(ServiceSpec("echo", py("print('hello'); print('world')")))
    child = await sup.first_exit()
    await sup.shutdown(1)
    assert child.name == "echo"
    assert out.getvalue().splitlines() == ["echo     | hello", "echo     | world"]


async def test_prefix_is_coloured_when_asked() -> None:
    out = io.StringIO()
    sup = Supervisor(out, color=True)
    await sup.start(ServiceSpec("echo", py("print('hi')")))
    await sup.first_exit()
    await sup.shutdown(1)
    assert out.getvalue().startswith("\x1b[")
    assert out.getvalue().rstrip().endswith("\x1b[0m hi")


async def test_shutdown_kills_grandchildren_that_ignore_sigterm() -> None:
    out = io.StringIO()
    sup = Supervisor(out, color=False)
    child = await sup.start(ServiceSpec("tree", tree(ignore_term=False)))
    grandchild = int(await _first_line(out))
    assert not _gone(grandchild, 0)
    began = time.monotonic()
    await sup.shutdown(grace=5)
    assert child.proc.returncode == -signal.SIGTERM
    assert _gone(grandchild)
    # The child obeyed SIGTERM: no waiting out the grace period for its stubborn grandchild's pipe.
    assert time.monotonic() - began < 2


async def test_a_child_ignoring_sigterm_is_killed_after_the_grace_period() -> None:
    out = io.StringIO()
    sup = Supervisor(out, color=False)
    child = await sup.start(ServiceSpec("stubborn", tree(ignore_term=True)))
    grandchild = int(await _first_line(out))
    began = time.monotonic()
    await sup.shutdown(grace=0.5)
    assert time.monotonic() - began < 3
    assert child.proc.returncode == -9
    assert _gone(grandchild)


async def test_shutdown_stops_children_in_reverse_start_order() -> None:
    out = io.StringIO()
    sup = Supervisor(out, color=False)
    code = """
        import signal, sys, time
        def bye(*_):
            print("stopped", time.monotonic_ns(), flush=True); sys.exit(0)
        signal.signal(signal.SIGTERM, bye)
        print("up", flush=True)
        time.sleep(60)
    """
    for name in ("first", "second"):
        await sup.start(ServiceSpec(name, py(code)))
    while out.getvalue().count("up") < 2:
        await _sleep()
    await sup.shutdown(grace=5)
    stops = [line.split("|")[0].strip() for line in out.getvalue().splitlines() if "stopped" in line]
    assert stops == ["second", "first"]


async def test_wait_ready_names_a_child_that_dies_during_startup_with_its_last_lines() -> None:
    sup = Supervisor(io.StringIO(), color=False)
    port = free_port()
    child = await sup.start(
        ServiceSpec(
            "doomed",
            py("print('config error: FOO missing'); raise SystemExit(3)"),
            {},
            f"http://127.0.0.1:{port}/",
        )
    )
    with pytest.raises(ServiceFailed, match="doomed exited with code 3 during start-up") as info:
        await sup.wait_ready([child], 10)
    await sup.shutdown(1)
    assert info.value.name == "doomed"
    assert "config error: FOO missing" in info.value.tail


async def test_wait_ready_times_out_naming_the_service() -> None:
    sup = Supervisor(io.StringIO(), color=False)
    port = free_port()
    child = await sup.start(
        ServiceSpec("slow", py("import time; time.sleep(60)"), {}, f"http://127.0.0.1:{port}/")
    )
    with pytest.raises(ServiceFailed, match=r"slow was not ready after 0\.5s"):
        await sup.wait_ready([child], 0.5)
    await sup.shutdown(1)


async def test_wait_ready_returns_once_the_ready_url_answers_200() -> None:
    sup = Supervisor(io.StringIO(), color=False)
    port = free_port()
    argv = [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"]
    child = await sup.start(ServiceSpec("web", argv, {}, f"http://127.0.0.1:{port}/"))
    ready: list[str] = []
    await sup.wait_ready([child], 20, lambda c, _: ready.append(c.name))
    await sup.shutdown(5)
    assert ready == ["web"]


async def test_first_exit_returns_the_child_that_died() -> None:
    sup = Supervisor(io.StringIO(), color=False)
    await sup.start(ServiceSpec("steady", py("import time; time.sleep(60)")))
    await sup.start(ServiceSpec("crashy", py("import time; time.sleep(0.2); raise SystemExit(7)")))
    child = await sup.first_exit()
    await sup.shutdown(2)
    assert child.name == "crashy"
    assert child.proc.returncode == 7
