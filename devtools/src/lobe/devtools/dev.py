"""`lobe dev`: the whole suite on this machine as separate processes, like production."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from lobe.billing.admin import admin_session
from lobe.billing.keys import hash_key, owner_of
from lobe.devtools.backends import Backends
from lobe.devtools.dev_sign_in import DEV_ADMIN_EMAIL, DevSignIn, start_dev_sign_in
from lobe.devtools.loadtest.shape import MODEL as UPSTREAM_MODEL
from lobe.devtools.loadtest.shape import Shape
from lobe.devtools.loadtest.upstream import shape_argv
from lobe.devtools.migrate import migrate
from lobe.devtools.ports import LOOPBACK, free_port, port_is_open
from lobe.devtools.servers import ServerStartError
from lobe.devtools.supervisor import Child, ServiceFailed, ServiceSpec, Supervisor
from lobe.shared.catalog import GATEWAY
from lobe.shared.catalog.permissions import ADMIN

API_KEY_PREFIX = "sk-lobe-dev-"
DEV_USER = "dev-user"
DEV_PLAN = "premium"
GATEWAY_OPS_PORT = 3214  # the gateway's health and /metrics, apart from its public API
# What `lobe admin` needs, under the state dir: the operator's NATS user and the embedded servers'
# addresses (their ports change from run to run).
ADMIN_ENV = "nats-admin.env"
GATEWAY_NATS_ENV = "nats-gateway.env"  # the gateway's, with --fake-upstream: `lobe loadtest --target bus`


@dataclass(frozen=True)
class Service:
    name: str  # kebab-case: OTEL_SERVICE_NAME, log prefix
    module: str
    port_var: str  # env var that overrides its port in `lobe dev`
    default_port: int
    ready_path: str

    @property
    def argv(self) -> list[str]:
        return [sys.executable, "-m", self.module]

    def spec(self, name: str, port: int, env: dict[str, str], ops_port: int = 0) -> ServiceSpec:
        """This service as a child process listening on `port` (the gateway's API, any other's ops
        listener; the gateway's ops on `ops_port`), ready when its ready path answers 200. `lobe dev`
        and the test suite (lobe.devtools.suite) launch every service through here."""
        listen = {"OPS_HOST": LOOPBACK, "OPS_PORT": str(ops_port if self.name == "gateway" else port)}
        if self.name == "gateway":
            listen |= {"GATEWAY_HOST": LOOPBACK, "GATEWAY_PORT": str(port)}
        url = f"http://{LOOPBACK}:{port}{self.ready_path}"
        return ServiceSpec(name, self.argv, {**listen, **env}, url)


# Dependencies first, so the reverse-order shutdown stops the gateway (the front door) first.
SERVICES = (
    Service("billing", "lobe.billing", "BILLING_OPS_PORT", 3212, "/health/ready"),
    Service("metrics", "lobe.metrics", "METRICS_OPS_PORT", 3213, "/health/ready"),
    Service("chat-worker", "lobe.chat_worker", "CHAT_WORKER_OPS_PORT", 3211, "/health/ready"),
    Service("gateway", "lobe.gateway", "GATEWAY_PORT", 3210, "/api/ready"),
)
# Every port `lobe dev` listens on by default, by the variable that moves it (tests and benchmarks
# run it on free ones; 0: a free one `lobe dev` picks).
PORT_VARS = (*(s.port_var for s in SERVICES), "GATEWAY_OPS_PORT")


def service_named(name: str) -> Service:
    return next(s for s in SERVICES if s.name == name)


@dataclass
class DevOptions:
    state_dir: Path
    ready_timeout_s: float = 60.0
    grace_s: float = 10.0
    only: frozenset[str] = field(default_factory=frozenset)  # empty: every service
    services: tuple[Service, ...] = SERVICES
    # Processes per service (the scaling study); the first keeps the standard port, the others
    # take free ones.
    instances: dict[str, int] = field(default_factory=dict)
    plan: str = DEV_PLAN  # the dev user's plan (benchmarks: enterprise, budgets on but unlimited)
    # A fast fake OpenAI upstream as its own process, serving the model `bench` (benchmarks).
    upstream: Shape | None = None


class DevError(RuntimeError):
    """Start-up cannot proceed; the message says what to change."""


def find_state_dir(start: Path | None = None) -> Path:
    """.lobe/dev in the nearest ancestor that is a repository root (has .git), else in the cwd."""
    here = (start or Path.cwd()).resolve()
    for directory in (here, *here.parents):
        if (directory / ".git").exists() or (directory / ".lobe").is_dir():
            return directory / ".lobe" / "dev"
    return here / ".lobe" / "dev"


def dev_api_key(state_dir: Path) -> str:
    """Generated once, then reused so clients keep working across restarts."""
    path = state_dir / "api-key"
    if path.exists():
        return path.read_text().strip()
    key = API_KEY_PREFIX + secrets.token_urlsafe(24)[:32]
    write_private(path, key + "\n")
    return key


def write_private(path: Path, text: str) -> None:
    """A file only this user may read (a key, a password)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)


def port_of(service: Service, environ: dict[str, str]) -> int:
    return _port(service.port_var, environ.get(service.port_var, str(service.default_port)))


def _port(var: str, raw: str) -> int:
    """A port variable's port; 0 is a free one picked here, in the process that also picks the
    embedded servers' ports, so no two of them collide (ports picked by the caller could)."""
    try:
        port = int(raw)
    except ValueError:
        raise DevError(f"{var}={raw!r} is not a port number") from None
    return port if port else free_port()


def service_specs(
    services: tuple[Service, ...],
    urls: dict[str, str],
    api_key: str,
    environ: dict[str, str],
    instances: dict[str, int] | None = None,
    plan: str = DEV_PLAN,
    extra_env: dict[str, dict[str, str]] | None = None,  # per service name, applied last
    nats_env: Callable[[str], dict[str, str]] = lambda service: {},
) -> list[ServiceSpec]:
    specs = []
    for service in services:
        for index in range((instances or {}).get(service.name, 1)):
            # Extra instances (the scaling study) take free ports; the first keeps the standard one.
            first = index == 0
            port = port_of(service, environ) if first else free_port()
            name = service.name if first else f"{service.name}-{index + 1}"
            env = {**urls, "OTEL_SERVICE_NAME": service.name, "LOG_FORMAT": "text", "PYTHONUNBUFFERED": "1"}
            env |= nats_env(service.name)  # its own NATS user on the embedded NATS
            ops_port = 0
            if service.name == "gateway":
                ops_port = (
                    _port("GATEWAY_OPS_PORT", environ.get("GATEWAY_OPS_PORT", str(GATEWAY_OPS_PORT)))
                    if first
                    else free_port()
                )
                # Also a bootstrap key, so the gateway answers it even while billing is down.
                env["GATEWAY_API_KEYS"] = f"{api_key}:{DEV_USER}:{plan}"
            env |= (extra_env or {}).get(service.name, {})
            specs.append(service.spec(name, port, env, ops_port))
    return specs


def upstream_spec(shape: Shape, state_dir: Path) -> tuple[ServiceSpec, Path]:
    """The fake upstream as a service, and a MODELS_FILE routing the model `bench` to it."""
    port = free_port()
    argv = [sys.executable, "-m", "lobe.devtools.loadtest.upstream", "--port", str(port), *shape_argv(shape)]
    deployment = {
        "name": "fake-upstream",
        "provider": "openai_compatible",
        "base_url": f"http://{LOOPBACK}:{port}/v1",
    }
    models = state_dir / "fake-upstream-models.yaml"
    state_dir.mkdir(parents=True, exist_ok=True)
    # JSON is YAML: the worker's loader reads it as is.
    models.write_text(json.dumps({"models": [{"name": UPSTREAM_MODEL, "deployments": [deployment]}]}))
    spec = ServiceSpec("fake-upstream", argv, {"PYTHONUNBUFFERED": "1"}, f"http://{LOOPBACK}:{port}/health")
    return spec, models


def gateway_urls(specs: list[ServiceSpec]) -> list[str]:
    return [f"http://{LOOPBACK}:{spec.env['GATEWAY_PORT']}" for spec in specs if "GATEWAY_PORT" in spec.env]


def selected(services: tuple[Service, ...], only: frozenset[str]) -> tuple[Service, ...]:
    unknown = only - {s.name for s in services}
    if unknown:
        known = ", ".join(s.name for s in services)
        raise DevError(f"unknown service(s) {', '.join(sorted(unknown))}; known: {known}")
    return tuple(s for s in services if not only or s.name in only)


async def run_dev(options: DevOptions, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    """Run until Ctrl-C / SIGTERM (exit 0) or until a service dies (exit 1)."""
    began = time.monotonic()
    environ = dict(os.environ)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    backends = Backends(options.state_dir, environ)
    supervisor = Supervisor(out)
    sign_in: DevSignIn | None = None

    def say(message: str) -> None:
        err.write(f"lobe dev: {message}\n")
        err.flush()

    try:
        services = selected(options.services, options.only)
        for service in services:
            if port_is_open(port := port_of(service, environ)):
                raise DevError(f"{service.name}: port {port} is in use (set {service.port_var})")
        urls = await backends.start()
        say(f"backends ready in {time.monotonic() - began:.1f}s: {backends.describe()}")
        await migrate(urls["DATABASE_URL"], err, prefix="lobe dev: ")
        api_key = dev_api_key(options.state_dir)
        admin_nats = operator_credentials(backends, options.state_dir)
        await register_dev_key(
            urls["DATABASE_URL"],
            urls["NATS_URL"],
            api_key,
            environ.get("PLANS_FILE"),
            admin_nats,
            options.plan,
        )
        gateway_url = f"http://{LOOPBACK}:{port_of(service_named('gateway'), environ)}"
        sign_in = start_dev_sign_in(options.state_dir, gateway_url, environ)
        upstream: list[ServiceSpec] = []
        extra_env: dict[str, dict[str, str]] = {"gateway": sign_in.env}
        if options.upstream is not None:
            spec, models_file = upstream_spec(options.upstream, options.state_dir)
            upstream.append(spec)
            extra_env["chat-worker"] = {"MODELS_FILE": str(models_file)}
            # `lobe loadtest --target bus` talks to the workers as the gateway does, so as its user.
            if gateway_nats := backends.nats_env(GATEWAY):
                write_private(options.state_dir / GATEWAY_NATS_ENV, env_file(gateway_nats))
            say(f"fake upstream ({options.upstream.describe()}) serves the model `{UPSTREAM_MODEL}`")
        specs = upstream + service_specs(
            services, urls, api_key, environ, options.instances, options.plan, extra_env, backends.nats_env
        )
        children = [await supervisor.start(spec) for spec in specs]

        def on_ready(child: Child, after_s: float) -> None:
            say(f"{child.name} ready ({after_s:.1f}s)")

        say(f"starting {', '.join(c.name for c in children)}")
        ready = asyncio.create_task(supervisor.wait_ready(children, options.ready_timeout_s, on_ready))
        if not await _first(ready, stop):
            say("interrupted during start-up; shutting down")
            return 130
        gateways = gateway_urls(specs)
        where = f"gateway {','.join(gateways)}" if gateways else "gateway not started"
        out.write(f"lobe dev ready in {time.monotonic() - began:.1f}s: {where}  api key {api_key}\n")
        out.flush()
        say(sign_in.how)
        if admin_nats:
            say(f"NATS has a user per service; for lobe admin: set -a; . {options.state_dir / ADMIN_ENV}")
        exited = asyncio.create_task(supervisor.first_exit())
        if await _first(exited, stop):
            child = exited.result()
            raise ServiceFailed(child.name, f"exited with code {child.proc.returncode}", child.tail)
        say("shutting down")
        return 0
    except (DevError, ServerStartError, ServiceFailed) as exc:
        say(f"error: {exc}")
        return 1
    finally:
        await supervisor.shutdown(options.grace_s)
        if sign_in is not None:
            sign_in.stop()
        backends.stop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


def operator_credentials(backends: Backends, state_dir: Path) -> dict[str, str]:
    """The operator's NATS user on the embedded NATS, also written to ADMIN_ENV for `lobe admin`
    with the NATS and database addresses, so that one file is all `lobe admin` needs."""
    env = backends.nats_env(ADMIN)
    if env:
        addresses: dict[str, str] = {
            name: backends.urls[name] for name in ("NATS_URL", "DATABASE_URL") if name in backends.urls
        }
        write_private(state_dir / ADMIN_ENV, env_file({**env, **addresses}))
    return env


def env_file(env: dict[str, str]) -> str:
    """NAME=value lines, for `set -a; . file`."""
    return "".join(f"{name}={value}\n" for name, value in env.items())


async def register_dev_key(
    dsn: str,
    nats_url: str,
    api_key: str,
    plans_file: str | None = None,
    nats_env: dict[str, str] | None = None,
    plan: str = DEV_PLAN,
) -> None:
    """The dev key belongs to a billing user, so billing's usage API answers it like any key."""
    nats = {name.lower(): value for name, value in (nats_env or {}).items()}  # NATS_USER -> nats_user
    async with admin_session(dsn, nats_url, plans_file, nats_overrides=nats) as admin:
        await admin.create_user(DEV_USER, email=DEV_ADMIN_EMAIL)
        await admin.set_plan(DEV_USER, plan)  # --plan may differ from the last run's (state is kept)
        # Signing in locally as DEV_ADMIN_EMAIL gives an admin session (billing links the e-mail).
        await admin.set_role(DEV_USER, "admin")
        if await owner_of(admin.db, hash_key(api_key)) is None:
            await admin.issue_key(DEV_USER, "lobe dev", key=api_key)


async def _first(task: asyncio.Task[object], stop: asyncio.Event) -> bool:
    """Wait for task or stop; True when the task finished first (its exception is raised)."""
    stopped = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait({task, stopped}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopped.cancel()
    if task.done():
        task.result()
        return True
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    return False
