"""LiteLLM's proxy as a system to measure beside the suite (`lobe bench litellm`).

It runs from a virtual environment of its own (`.bench/litellm-venv` by default, outside the
suite's `.venv` and never part of `make test`), installed once from the pins in
`devtools/bench/litellm-constraints.txt` and reinstalled only when that file changes. It serves
one model, `bench`, routed to the same fake OpenAI upstream the standard set measures directly,
with the settings LiteLLM recommends for production, so that the comparison is fair to it:

- no database (no `DATABASE_URL`): no spend logs, virtual keys or budgets to write, only the
  master key checked; `disable_spend_logs` and `disable_error_logs` as well;
- logging off: `LITELLM_LOG=ERROR` (uvicorn's access log goes with it), `set_verbose: false`,
  no callbacks; `LITELLM_MODE=PRODUCTION` (no `.env` read);
- uvicorn with uvloop (what LiteLLM's CLI picks on Linux) and `--num_workers 2`, one per core;
- the model cost map from the package (`LITELLM_LOCAL_MODEL_COST_MAP`), not fetched at start.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import yaml

from lobe.devtools.children import signal_group
from lobe.devtools.loadtest.suite import bench_environ, wait_http
from lobe.devtools.ports import LOOPBACK, free_port
from lobe.devtools.watched import WatchedProcess

CONSTRAINTS = Path(__file__).resolve().parents[4] / "bench" / "litellm-constraints.txt"
DEFAULT_VENV = Path(".bench/litellm-venv")
WORKERS = 2
ENVIRONMENT = {
    "LITELLM_LOG": "ERROR",
    "LITELLM_MODE": "PRODUCTION",
    "LITELLM_LOCAL_MODEL_COST_MAP": "True",
}
# What the generated section says LiteLLM ran with (the settings above, in words).
SETTINGS = (
    f"uvicorn with uvloop, `--num_workers {WORKERS}`; no database (master key only: no virtual keys, "
    "budgets, rate limits or spend logs), `disable_spend_logs` and `disable_error_logs`; "
    "`LITELLM_LOG=ERROR` (no access log), `set_verbose: false`, no callbacks; `LITELLM_MODE=PRODUCTION`; "
    "the packaged model cost map"
)


def pinned_version(constraints: Path = CONSTRAINTS) -> str:
    """The LiteLLM version the constraints file pins (its `litellm==` line)."""
    for line in constraints.read_text().splitlines():
        name, sep, version = line.split("#", 1)[0].strip().partition("==")
        if sep and name.lower() == "litellm":
            return version.strip()
    raise ValueError(f"{constraints}: no litellm== line")


def ensure_venv(venv: Path, constraints: Path = CONSTRAINTS) -> Path:
    """Create (or reuse) the venv with the pinned LiteLLM proxy; its `litellm` executable.

    Installed again only when the constraints file changed since the last install (a stamp in
    the venv holds its digest), as the suite's own `make install` does with its pins."""
    stamp = venv / ".lobe-constraints.sha256"
    digest = hashlib.sha256(constraints.read_bytes()).hexdigest()
    executable = venv / "bin" / "litellm"
    if executable.exists() and stamp.exists() and stamp.read_text().strip() == digest:
        return executable
    python = venv / "bin" / "python"
    if not python.exists():
        print(f"lobe bench: creating {venv} for LiteLLM", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    version = pinned_version(constraints)
    print(f"lobe bench: installing litellm[proxy]=={version} into {venv}", file=sys.stderr)
    subprocess.run(
        [str(python), "-m", "pip", "install", "-c", str(constraints), f"litellm[proxy]=={version}"],
        check=True,
        stdout=sys.stderr,
    )
    stamp.write_text(digest + "\n")
    return executable


def proxy_config(upstream_url: str, model: str, master_key: str) -> dict[str, Any]:
    """LiteLLM's config.yaml: `model` routed to the OpenAI-compatible upstream at `upstream_url`
    (`…/v1`), as LiteLLM's production checklist has it, less what needs a database."""
    return {
        "model_list": [
            {
                "model_name": model,
                "litellm_params": {"model": f"openai/{model}", "api_base": upstream_url, "api_key": "none"},
            }
        ],
        "litellm_settings": {"set_verbose": False, "request_timeout": 600},
        "general_settings": {
            "master_key": master_key,
            "disable_spend_logs": True,
            "disable_error_logs": True,
        },
    }


@dataclass(frozen=True)
class RunningProxy:
    url: str  # `…/v1`
    api_key: str  # the master key
    pid: int  # LiteLLM's CLI: its uvicorn workers descend from it


@contextlib.asynccontextmanager
async def litellm_proxy(
    executable: Path, upstream_url: str, model: str, state_dir: Path, ready_s: float = 180
) -> AsyncIterator[RunningProxy]:
    """LiteLLM's proxy on a free loopback port, ready (its workers started and idle), stopped after."""
    master_key = f"sk-bench-{secrets.token_hex(16)}"
    config = state_dir / "litellm-config.yaml"
    config.write_text(yaml.safe_dump(proxy_config(upstream_url, model, master_key), sort_keys=False))
    port = free_port()
    argv = [str(executable), "--config", str(config), "--host", LOOPBACK, "--port", str(port)]
    # uvicorn kills a worker that has not answered its supervisor's ping in 5 s and starts another:
    # on a loaded machine, importing LiteLLM takes longer, and the workers never come up.
    argv += ["--num_workers", str(WORKERS), "--timeout_worker_healthcheck", "60"]
    env = {k: v for k, v in bench_environ().items() if not k.startswith("LITELLM_")} | ENVIRONMENT
    proxy = WatchedProcess(argv, env, owned=True)
    try:
        await wait_http(f"http://{LOOPBACK}:{port}/health/liveliness", proxy, ready_s)
        await asyncio.to_thread(_wait_settled, proxy.proc.pid, WORKERS)
        yield RunningProxy(f"http://{LOOPBACK}:{port}/v1", master_key, proxy.proc.pid)
    finally:
        await asyncio.to_thread(_stop_group, proxy)


def _wait_settled(pid: int, workers: int, limit_s: float = 120, idle_cores: float = 0.05) -> None:
    """Until `workers` workers run and the whole family is idle: one worker answering is not both
    started, and the late one's start-up (importing LiteLLM takes seconds of CPU) must not count
    as the first level's cost."""
    root = psutil.Process(pid)
    deadline = time.monotonic() + limit_s
    before = _family_cpu_s(root)
    while time.monotonic() < deadline:
        time.sleep(1.0)
        now = _family_cpu_s(root)
        spawned = [p for p in root.children() if "spawn_main" in " ".join(p.cmdline())]
        if len(spawned) >= workers and now - before < idle_cores:
            return
        before = now
    raise TimeoutError(f"LiteLLM's {workers} workers not started and idle in {limit_s}s")


def _family_cpu_s(root: psutil.Process) -> float:
    total = 0.0
    for proc in (root, *root.children(recursive=True)):
        with contextlib.suppress(psutil.NoSuchProcess):
            times = proc.cpu_times()
            total += times.user + times.system
    return total


def _stop_group(proxy: WatchedProcess, grace_s: float = 15) -> None:
    """SIGTERM to the process group (the CLI and its workers), SIGKILL to what is left after grace."""
    if proxy.proc.poll() is None and signal_group(proxy.proc.pid, signal.SIGTERM):
        with contextlib.suppress(subprocess.TimeoutExpired):
            proxy.proc.wait(grace_s)
    signal_group(proxy.proc.pid, signal.SIGKILL)
    proxy.proc.wait()
