"""`lobe dev` with the real services: one command brings the suite up, answers a chat, shuts down clean."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import openai
import pytest

from lobe.devtools.dev import PORT_VARS
from lobe.devtools.node_sdk import node_sdk_checks
from lobe.devtools.ports import free_port
from lobe.devtools.watched import WatchedProcess, all_gone, environ_without_backends

LOBE = str(Path(sys.executable).parent / "lobe")
READY = re.compile(
    r"^lobe dev ready in (\d+\.\d)s: gateway (http://127\.0\.0\.1:\d+)  api key (sk-lobe-dev-\S{32})$"
)

pytestmark = pytest.mark.integration


class LobeDev(WatchedProcess):
    def __init__(self, state_dir: Path, env: Mapping[str, str] | None = None) -> None:
        self.state_dir = state_dir
        env = env or {}
        # Free ports (unless given), so a developer's own `lobe dev` on the standard ones does not clash.
        self.ports = {var: int(env.get(var) or free_port()) for var in PORT_VARS}
        environ = environ_without_backends() | {var: str(port) for var, port in self.ports.items()}
        super().__init__([LOBE, "dev", "--state-dir", str(state_dir)], environ | dict(env))

    def wait_ready(self, limit_s: float = 90) -> re.Match[str]:
        return self.wait_for_line(READY, limit_s)


@pytest.fixture
def lobe_dev(tmp_path: Path) -> Iterator[LobeDev]:
    dev = LobeDev(tmp_path / "dev")
    yield dev
    dev.kill()


def test_lobe_dev_serves_a_chat_completion_and_sigterm_leaves_no_process(lobe_dev: LobeDev) -> None:
    ready = lobe_dev.wait_ready()
    gateway, api_key = ready.group(2), ready.group(3)
    procs = lobe_dev.descendants()
    modules = {" ".join(p.cmdline()[-2:]) for p in procs if "-m" in p.cmdline()}
    assert {"-m lobe.gateway", "-m lobe.chat_worker", "-m lobe.billing", "-m lobe.metrics"} <= modules
    # How to sign in locally, with the local OpenID provider it started.
    deadline = time.monotonic() + 10
    while not any(f"sign in at {gateway}/auth/login/oidc" in line for line in lobe_dev.err):
        assert time.monotonic() < deadline, lobe_dev.err[-5:]
        time.sleep(0.05)
    with urllib.request.urlopen(f"{gateway}/auth/providers", timeout=5) as resp:
        assert [p["name"] for p in json.load(resp)["providers"]] == ["oidc"]

    body = json.dumps({"model": "mock", "messages": [{"role": "user", "content": "hi"}]}).encode()
    request = urllib.request.Request(
        f"{gateway}/v1/chat/completions",
        data=body,
        headers={"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as resp:
        answer = json.load(resp)
    assert answer["choices"][0]["message"]["content"]
    assert answer["usage"]["total_tokens"] > 0
    # The request reached billing's ledger (its usage API answers the dev key) and the metrics.
    usage = poll_json(
        f"http://127.0.0.1:{lobe_dev.ports['BILLING_OPS_PORT']}/v1/usage",
        api_key,
        lambda u: u["totals"]["requests"] == 1,
    )
    totals = usage["totals"]
    assert totals["prompt_tokens"] + totals["completion_tokens"] == answer["usage"]["total_tokens"]
    assert float(totals["cost_usd"]) > 0
    metrics = poll_text(
        f"http://127.0.0.1:{lobe_dev.ports['METRICS_OPS_PORT']}/metrics",
        lambda text: (
            'lobe_chat_requests_total{endpoint="chat",model="mock",provider="mock",status="success"} 1.0'
            in text
        ),
    )
    assert "lobe_chat_tokens_total" in metrics
    gateway_metrics = poll_text(
        f"http://127.0.0.1:{lobe_dev.ports['GATEWAY_OPS_PORT']}/metrics",
        lambda text: 'lobe_gateway_chat_requests_total{status="200",stream="false"} 1.0' in text,
    )
    assert "lobe_gateway_ttft_seconds" in gateway_metrics
    # Every service ran as its own NATS user and stayed inside the catalog's permissions.
    nats_log = (lobe_dev.state_dir / "nats" / "nats.log").read_text()
    assert '"authorization"' in (lobe_dev.state_dir / "nats" / "nats.conf").read_text()
    assert [line for line in nats_log.splitlines() if "Violation" in line] == []
    admin_env = dict(
        line.split("=", 1) for line in (lobe_dev.state_dir / "nats-admin.env").read_text().splitlines()
    )
    assert admin_env["NATS_USER"] == "admin"
    # That one file is all `lobe admin` needs: the embedded servers' ports change from run to run.
    environ = {name: value for name, value in os.environ.items() if name not in {"NATS_URL", "DATABASE_URL"}}
    created = subprocess.run(
        [str(Path(sys.executable).parent / "lobe"), "admin", "create-user", "outsider"],
        env={**environ, **admin_env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert created.returncode == 0, created.stdout + created.stderr

    lobe_dev.proc.send_signal(signal.SIGTERM)
    assert lobe_dev.proc.wait(30) == 0
    assert all_gone(procs, 5) == []
    prefixes = {line.split("|", 1)[0].strip() for line in lobe_dev.out if "|" in line}
    assert {"gateway", "chat-worker", "billing", "metrics"} <= prefixes


def test_lobe_dev_serves_every_endpoint_to_the_python_and_node_sdks(lobe_dev: LobeDev) -> None:
    """The acceptance of issue 23: the official SDKs against `lobe dev` (`make dev`), each service
    a real process under its own NATS user."""
    ready = lobe_dev.wait_ready()
    gateway, api_key = ready.group(2), ready.group(3)
    client = openai.OpenAI(base_url=f"{gateway}/v1", api_key=api_key, max_retries=0)

    events = list(client.responses.create(model="mock", input="hi", stream=True))
    assert events[-1].type == "response.completed"
    assert events[-1].response.usage is not None
    assert events[-1].response.usage.total_tokens > 0
    assert client.responses.create(model="mock", input="hi").output_text
    assert len(client.embeddings.create(model="mock", input="hi").data[0].embedding) == 16

    image = client.images.generate(model="mock", prompt="a red fox", response_format="b64_json")
    with client.audio.speech.with_streaming_response.create(
        model="mock", voice="alloy", input="hi", response_format="wav"
    ) as speech:
        assert speech.read()[:4] == b"RIFF"
    transcript = client.audio.transcriptions.create(model="mock", file=("hi.wav", bytes(32_044), "audio/wav"))

    checks = [
        "embeddings.float",
        "embeddings.base64",
        "responses.stream",
        "responses.create",
        "images.b64_json",
        "speech.wav",
        "speech.mp3",
        "transcriptions.json",
        "transcriptions.srt",
    ]
    results = asyncio.run(node_sdk_checks(gateway, api_key, *checks))
    assert results["responses.stream"]["types"][-1] == "response.completed"
    assert results["embeddings.float"] == results["embeddings.base64"]
    assert results["images.b64_json"][0] == image.data[0].b64_json
    assert results["speech.wav"]["bytes"] > results["speech.mp3"]["bytes"] > 0
    assert results["transcriptions.json"]["text"] == transcript.text
    assert results["transcriptions.srt"].startswith("1\n00:00:00,000 --> 00:00:02,003\n")
    nats_log = (lobe_dev.state_dir / "nats" / "nats.log").read_text()
    assert [line for line in nats_log.splitlines() if "Violation" in line] == []


def poll_json(url: str, api_key: str, done: Callable[[Any], bool], limit_s: float = 15) -> Any:
    deadline = time.monotonic() + limit_s
    while True:
        request = urllib.request.Request(url, headers={"Authorization": f"Bearer {api_key}"})
        with urllib.request.urlopen(request, timeout=5) as resp:
            body = json.load(resp)
        if done(body) or time.monotonic() > deadline:
            assert done(body), f"{url} never showed the request: {body}"
            return body
        time.sleep(0.1)


def poll_text(url: str, done: Callable[[str], bool], limit_s: float = 15) -> str:
    deadline = time.monotonic() + limit_s
    while True:
        with urllib.request.urlopen(url, timeout=5) as resp:
            text = resp.read().decode()
        if done(text) or time.monotonic() > deadline:
            assert done(text), f"{url} never counted the request"
            return text
        time.sleep(0.1)
