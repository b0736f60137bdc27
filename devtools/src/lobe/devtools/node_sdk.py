"""The official openai SDK for Node, run against a gateway by devtools/node/openai-sdk-check.mjs:
each named check calls one endpoint as a Node client does and reports what the SDK parsed.
`tools/node-deps.sh` (make install) installs the pinned SDK."""

from __future__ import annotations

import asyncio
import json
import shutil
from typing import Any

from lobe.devtools.servers.binaries import BinaryNotFoundError
from lobe.devtools.servers.oidc import NODE_DIR

SCRIPT = NODE_DIR / "openai-sdk-check.mjs"


async def node_sdk_checks(
    base_url: str, api_key: str, *checks: str, timeout_s: float = 60.0
) -> dict[str, Any]:
    """Each check's result, by name; AssertionError with node's output when one fails. Runs node
    as a subprocess of this event loop, so an in-process gateway keeps serving meanwhile."""
    node = shutil.which("node")
    if node is None:
        raise BinaryNotFoundError("node (20 or later)", debian="nodejs")
    if not (NODE_DIR / "node_modules" / "openai").is_dir():
        raise BinaryNotFoundError("openai (npm)", wheel=None, debian="nodejs: run tools/node-deps.sh")
    process = await asyncio.create_subprocess_exec(
        node,
        str(SCRIPT),
        f"{base_url}/v1",
        api_key,
        *checks,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), timeout_s)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    if process.returncode != 0:
        raise AssertionError(f"node SDK checks {checks} failed:\n{err.decode()}{out.decode()}")
    results: dict[str, Any] = json.loads(out)
    return results
