"""A `helm` for the release-logic tests: it keeps a release's revisions in a JSON file the way Helm 3
keeps them in the cluster, and fails on demand. Each revision remembers the gateway image it
runs, so a test can ask which build is serving. Only what `make deploy`, `make helm-test` and
`make rollback` call is simulated; any other command fails the test loudly.

FAKE_HELM_STATE: the JSON file; FAKE_HELM_FAIL: a comma list of `upgrade`, `test`."""

from __future__ import annotations

import itertools
import json
import os
import sys
from pathlib import Path
from typing import Any

STATE = Path(os.environ["FAKE_HELM_STATE"])
FAIL = set(filter(None, os.environ.get("FAKE_HELM_FAIL", "").split(",")))


def load() -> dict[str, Any]:
    return json.loads(STATE.read_text()) if STATE.exists() else {"calls": [], "revisions": []}


def gateway_image(args: list[str]) -> str:
    sets = dict(a.split("=", 1) for flag, a in itertools.pairwise(args) if flag == "--set")
    return sets.get("gateway.image.digest") or sets.get("gateway.image.tag", "?")


def add(state: dict[str, Any], status: str, image: str, description: str) -> int:
    for revision in state["revisions"]:
        if status == "deployed" and revision["status"] == "deployed":
            revision["status"] = "superseded"
    number = len(state["revisions"]) + 1
    state["revisions"].append(
        {"revision": number, "status": status, "image": image, "description": description}
    )
    return number


def serving(state: dict[str, Any]) -> str | None:
    deployed = [r["image"] for r in state["revisions"] if r["status"] == "deployed"]
    return deployed[-1] if deployed else None


def run(args: list[str], state: dict[str, Any]) -> int:
    command = args[0]
    if command == "dependency":
        return 0
    if command == "history":
        if not state["revisions"]:
            print("Error: release: not found", file=sys.stderr)
            return 1
        print(json.dumps(state["revisions"]))
        return 0
    if command == "upgrade":
        before = serving(state)
        if "upgrade" in FAIL:
            add(state, "failed", gateway_image(args), "Upgrade failed: timed out waiting for the condition")
            if "--atomic" in args and before is not None:
                add(state, "deployed", before, "Rollback by --atomic")
            print("Error: UPGRADE FAILED: release failed, and has been rolled back", file=sys.stderr)
            return 1
        add(state, "deployed", gateway_image(args), "Upgrade complete")
        return 0
    if command == "rollback":
        wanted = int(args[2])
        # Helm's own meaning of 0: the revision before the latest, whatever its status.
        target = wanted or len(state["revisions"]) - 1
        add(state, "deployed", state["revisions"][target - 1]["image"], f"Rollback to {target}")
        return 0
    if command == "test":
        return 1 if "test" in FAIL else 0
    print(f"fake helm: unexpected command {args}", file=sys.stderr)
    return 2


def main() -> int:
    state = load()
    args = sys.argv[1:]
    state["calls"].append(args)
    code = run(args, state)
    STATE.write_text(json.dumps(state))
    return code


if __name__ == "__main__":
    sys.exit(main())
