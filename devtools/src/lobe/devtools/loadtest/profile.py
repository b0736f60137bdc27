"""py-spy flame graphs of suite processes while a level runs (needs ptrace: root, or CAP_SYS_PTRACE)."""

from __future__ import annotations

import asyncio
import shutil
import sys
from collections.abc import Mapping
from pathlib import Path


class ProfileError(RuntimeError):
    """py-spy is missing or could not attach; the message says which and why."""


def py_spy() -> str:
    """The py-spy installed next to this interpreter (pinned in constraints.txt), else on PATH."""
    beside = Path(sys.executable).parent / "py-spy"
    found = str(beside) if beside.exists() else shutil.which("py-spy")
    if found is None:
        raise ProfileError("py-spy is not installed (it comes with lobe-devtools: run make install)")
    return found


async def record(
    pids: Mapping[str, int], out_dir: Path, stem: str, duration_s: int, rate_hz: int = 200
) -> list[Path]:
    """Record every process in `pids` (name → pid) at once for duration_s; one SVG per name."""
    await asyncio.to_thread(out_dir.mkdir, parents=True, exist_ok=True)
    exe = py_spy()
    runs = []
    for name, pid in pids.items():
        path = out_dir / f"{stem}-{name}.svg"
        argv = [exe, "record", "--pid", str(pid), "--duration", str(duration_s), "--rate", str(rate_hz)]
        argv += ["--format", "flamegraph", "--output", str(path), "--nonblocking"]
        proc = await asyncio.create_subprocess_exec(
            *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
        )
        runs.append((name, path, proc))
    written = []
    for name, path, proc in runs:
        output, _ = await proc.communicate()
        if proc.returncode != 0 or not path.exists():
            text = output.decode(errors="replace").strip()
            raise ProfileError(f"py-spy on {name} (pid {pids[name]}) failed ({proc.returncode}): {text}")
        written.append(path)
    return written
