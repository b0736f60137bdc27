"""A service image run as production runs it (the charts' securityContext, compose's read_only):
its own non-root USER, a read-only root filesystem with a writable /tmp only, no capabilities, no
privilege escalation. Host networking, so the container reaches the harness's loopback servers."""

from __future__ import annotations

import secrets
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from lobe.devtools.images.podman import ULIMITS, image_inspect, podman, podman_env, run_podman

AS_IN_PRODUCTION = (
    "--read-only",
    "--read-only-tmpfs=false",  # podman would add /run and /var/tmp too; production has /tmp alone
    "--tmpfs", "/tmp",
    "--cap-drop=ALL",
    "--security-opt", "no-new-privileges",
)  # fmt: skip


@dataclass
class Container:
    name: str
    image: str

    @classmethod
    def start(cls, image: str, env: Mapping[str, str], mounts: Sequence[tuple[str, str]] = ()) -> Container:
        name = f"lobe-test-{secrets.token_hex(4)}"
        args = ["run", "--detach", "--name", name, "--network", "host", *ULIMITS, *AS_IN_PRODUCTION]
        args += [arg for key, value in env.items() for arg in ("--env", f"{key}={value}")]
        args += [arg for host, inside in mounts for arg in ("--volume", f"{host}:{inside}:ro")]
        run_podman(*args, image)
        return cls(name, image)

    def exec(self, *argv: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            podman("exec", self.name, *argv),
            env=podman_env(),
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def healthcheck_command(self) -> list[str]:
        """The image's HEALTHCHECK as an argv, as the engine runs it."""
        record = image_inspect(self.image) or {}
        test = (record.get("Healthcheck") or {}).get("Test") or []
        if test[:1] == ["CMD"]:
            return list(test[1:])
        if test[:1] == ["CMD-SHELL"]:
            return ["/bin/sh", "-c", test[1]]
        raise AssertionError(f"{self.image} has no HEALTHCHECK command: {test}")

    def run_healthcheck(self) -> subprocess.CompletedProcess[str]:
        return self.exec(*self.healthcheck_command())

    def signal(self, name: str = "TERM") -> None:
        run_podman("kill", "--signal", name, self.name)

    def wait(self, timeout: float) -> int:
        """The exit code once the container stopped; fails when it runs past `timeout`."""
        return int(run_podman("wait", self.name, timeout=timeout).strip())

    def running(self) -> bool:
        return run_podman("inspect", "--format", "{{.State.Running}}", self.name).strip() == "true"

    def logs(self) -> str:
        result = subprocess.run(
            podman("logs", self.name), env=podman_env(), capture_output=True, text=True, timeout=30
        )
        return result.stdout + result.stderr

    def remove(self) -> None:
        subprocess.run(
            podman("rm", "--force", "--time", "0", self.name),
            env=podman_env(),
            capture_output=True,
            timeout=60,
        )
