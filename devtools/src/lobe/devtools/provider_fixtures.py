"""The recorded provider transcripts (`tests/fixtures/providers`, as data; where each came from is in
its SOURCES.md) and their sidecars.

Each body file has a `<file>.meta.json` sidecar with the HTTP status and content type to replay
it with and the `expected` totals a correct parser arrives at; tests read expectations from there
rather than hard-coding them.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lobe.devtools.fake_upstream import Reply

ENV = "LOBE_PROVIDER_FIXTURES"


def fixtures_root() -> Path:
    """`$LOBE_PROVIDER_FIXTURES`, else `<repo root>/tests/fixtures/providers`.

    The repo root is the first parent holding `constraints.txt`, looked for from this file (an
    editable install) and then from the working directory (an installed wheel run in a clone).
    """
    if env := os.environ.get(ENV):
        return Path(env)
    for start in (Path(__file__).resolve(), Path.cwd().resolve() / "_"):
        repo = next((p for p in start.parents if (p / "constraints.txt").exists()), None)
        if repo is not None:
            return repo / "tests" / "fixtures" / "providers"
    raise FileNotFoundError(f"provider fixtures not found: set {ENV} or run from inside the repository")


def fixture_files(provider_dir: str) -> list[str]:
    """Every body file of one provider folder, as `dir/name` (the sidecars hold the expectations)."""
    folder = fixtures_root() / provider_dir
    return sorted(f"{provider_dir}/{p.name}" for p in folder.iterdir() if not p.name.endswith(".meta.json"))


@dataclass
class Transcript:
    name: str
    body: bytes
    meta: dict[str, Any]

    @property
    def expected(self) -> dict[str, Any]:
        return dict(self.meta["expected"])

    @property
    def content_type(self) -> str:
        http = self.meta["http"]
        recorded = http.get("headers_recorded", {}).get("content-type") or http.get("content_type")
        # Some sidecars annotate the type, e.g. "text/event-stream (assumed)".
        return str(recorded or "application/json").split(" (")[0]

    def reply(self, *, seed: int = 0, status: int | None = None, **kwargs: Any) -> Reply:
        """The body with the sidecar's status and content type (a non-numeric status means 500)."""
        meta_status = self.meta["http"].get("status")
        chosen = status or (meta_status if isinstance(meta_status, int) else 500)
        return Reply(self.body, chosen, self.content_type, seed=seed, **kwargs)


def load(name: str) -> Transcript:
    """One transcript by `dir/file` name, e.g. `openai/chat_stream_text.sse`."""
    path = fixtures_root() / name
    meta = json.loads(path.with_name(path.name + ".meta.json").read_text())
    return Transcript(name, path.read_bytes(), meta)
