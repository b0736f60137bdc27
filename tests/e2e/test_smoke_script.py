"""tests/smoke/smoke.py (`make smoke`, which CI runs after each deploy) against an in-process suite."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from .conftest import API_KEY, Suite

SMOKE = Path(__file__).resolve().parents[1] / "smoke" / "smoke.py"


async def run_smoke(*args: str, api_key: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        SMOKE,
        *args,
        env={**os.environ, "SMOKE_API_KEY": api_key},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_smoke_streams_an_answer_through_the_base_url_with_the_openai_sdk(suite: Suite) -> None:
    code, out, err = await run_smoke("--base-url", f"{suite.base_url}/v1", "--model", "mock", api_key=API_KEY)
    assert code == 0, err
    assert out.startswith("smoke: OK mock via ")
    assert " tokens, first token " in out


async def test_smoke_fails_loudly_on_a_rejected_key_and_an_unserved_model(suite: Suite) -> None:
    code, _, err = await run_smoke("--base-url", f"{suite.base_url}/v1", api_key="sk-wrong")
    assert code == 1
    assert "smoke: FAILED" in err
    code, _, err = await run_smoke(
        "--base-url", f"{suite.base_url}/v1", "--model", "gpt-nope", api_key=API_KEY
    )
    assert code == 1
    assert "'gpt-nope' is not served" in err


async def test_smoke_needs_an_api_key() -> None:
    code, _, err = await run_smoke("--base-url", "http://127.0.0.1:9/v1", api_key="")
    assert code == 2
    assert "SMOKE_API_KEY" in err
