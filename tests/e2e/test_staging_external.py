"""`make e2e-staging` runs the `staging` tests against whatever STAGING_URL names, and nothing local:
here its exact command (from `make -n`) runs against a gateway this test started, as CI runs it
against staging, and fails with a key that gateway does not know."""

from __future__ import annotations

import asyncio
import os
import shlex
import subprocess
import uuid
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from . import test_staging
from .conftest import start_gateway, start_worker

ROOT = Path(__file__).resolve().parents[2]
REPORT = ROOT / ".lobe" / "e2e-staging.xml"


def make_command() -> list[str]:
    dry = subprocess.run(["make", "-n", "e2e-staging"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert dry.returncode == 0, dry.stderr
    [line] = [ln for ln in dry.stdout.splitlines() if "pytest" in ln]
    return shlex.split(line)


@pytest.fixture
async def elsewhere(nats_url: str, redis_url: str) -> AsyncIterator[tuple[str, str]]:
    """A suite running apart from the tests: its URL (as CI's STAGING_URL, with /v1) and a key."""
    key = f"sk-staging-{uuid.uuid4().hex}"
    runner, url = await start_gateway(
        nats_url, redis_url=redis_url, rate_limits_enabled=True, gateway_api_keys=f"{key}:ci-{key[-8:]}:free"
    )
    worker = await start_worker(nats_url)
    yield f"{url}/v1", key
    await worker.stop()
    await runner.cleanup()


async def run_staging_tests(url: str, key: str) -> tuple[int, str]:
    env = {**os.environ, "STAGING_URL": url, "STAGING_API_KEY": key}
    proc = await asyncio.create_subprocess_exec(
        *make_command(), cwd=ROOT, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 300)
    assert proc.returncode is not None
    return proc.returncode, out.decode()


async def test_make_e2e_staging_runs_the_marked_tests_against_the_url_it_is_given(
    elsewhere: tuple[str, str],
) -> None:
    url, key = elsewhere
    status, out = await run_staging_tests(url, key)
    assert status == 0, out
    suite = ET.parse(REPORT).getroot().find("testsuite")
    assert suite is not None
    assert (int(suite.get("tests", 0)), int(suite.get("failures", 0)), int(suite.get("skipped", 0))) == (
        5,
        0,
        0,
    )
    assert {case.get("name") for case in suite.iter("testcase")} == {
        name for name in vars(test_staging) if name.startswith("test_")
    }

    status, out = await run_staging_tests(url, "sk-staging-unknown")
    assert status == 1, out  # the tests really asked that gateway: it refuses a key it does not know
