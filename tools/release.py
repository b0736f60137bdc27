#!/usr/bin/env python3
"""The release record `make deploy` keeps and `make rollback` acts on (docs/deploy.md, "Roll back").

`helm rollback RELEASE 0` means "the revision before the latest", which after a failed
`--atomic` upgrade is the failed revision itself (the automatic rollback recorded one more). So
the deploy records which revision was serving before it started (`before`) and which one it
installed (`after`, run only when the upgrade succeeded); `rollback` then returns to the recorded
revision, and only when that upgrade succeeded and is still the latest. A failed upgrade has
already been rolled back by `--atomic`: rolling back again would undo nothing but the record.

Standard library only: it runs on a CI runner before the project's venv exists.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any


class ReleaseError(Exception):
    """A rollback refused: why, for the operator reading the CI log."""


def history(helm: str, release: str, namespace: str) -> list[dict[str, Any]]:
    """The release's revisions, oldest first; empty when it was never installed."""
    done = subprocess.run(
        [helm, "history", release, "-n", namespace, "-o", "json", "--max", "256"],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        if "release: not found" in done.stderr:
            return []
        raise ReleaseError(f"helm history {release} failed: {done.stderr.strip()}")
    revisions: list[dict[str, Any]] = json.loads(done.stdout or "[]")
    return sorted(revisions, key=lambda r: int(r["revision"]))


def serving(revisions: list[dict[str, Any]]) -> int | None:
    deployed = [int(r["revision"]) for r in revisions if r["status"] == "deployed"]
    return deployed[-1] if deployed else None


def latest(revisions: list[dict[str, Any]]) -> int | None:
    return int(revisions[-1]["revision"]) if revisions else None


def record_before(args: argparse.Namespace) -> None:
    previous = serving(history(args.helm, args.release, args.namespace))
    write(args.state, {"release": args.release, "namespace": args.namespace, "previous": previous})
    print(f"release {args.release}: revision {previous} serving before this deploy")


def record_after(args: argparse.Namespace) -> None:
    state = read(args.state)
    revisions = history(args.helm, args.release, args.namespace)
    state["deployed"] = serving(revisions)
    if state["deployed"] is None or state["deployed"] != latest(revisions):
        raise ReleaseError(f"the upgrade returned but revision {latest(revisions)} is not the one deployed")
    write(args.state, state)
    print(f"release {args.release}: revision {state['deployed']} deployed (previous: {state['previous']})")


def rollback(args: argparse.Namespace) -> None:
    target = int(args.revision) if args.revision else rollback_target(args)
    if target is None:
        return
    command = [args.helm, "rollback", args.release, str(target), "-n", args.namespace]
    subprocess.run([*command, "--wait", "--timeout", args.timeout], check=True)
    if args.state.exists():
        state = read(args.state)
        state["rolled_back_to"] = target
        write(args.state, state)
    print(f"release {args.release}: rolled back to revision {target}")


def rollback_target(args: argparse.Namespace) -> int | None:
    """The revision to return to, or None when there is nothing to undo."""
    if not args.state.exists():
        raise ReleaseError(
            f"no deploy of {args.release} recorded in {args.state}: name the revision "
            "(make rollback REVISION=N; see helm history)"
        )
    state = read(args.state)
    if "rolled_back_to" in state:
        print(f"release {args.release}: already rolled back to revision {state['rolled_back_to']}")
        return None
    if state.get("deployed") is None:
        print(
            f"release {args.release}: the upgrade did not succeed and --atomic restored the release "
            f"by itself (revision {state['previous']} serving before it); nothing to roll back"
        )
        return None
    if state["previous"] is None:
        raise ReleaseError(
            f"revision {state['deployed']} was the first install: there is no earlier revision "
            "to return to (helm uninstall, or deploy a fixed build)"
        )
    now = latest(history(args.helm, args.release, args.namespace))
    if now != state["deployed"]:
        raise ReleaseError(
            f"the release moved on since this deploy (revision {now}, this deploy made "
            f"{state['deployed']}): not rolling back someone else's release"
        )
    return int(state["previous"])


def read(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def write(path: Path, state: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(state, indent=2) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=["before", "after", "rollback"])
    parser.add_argument("--helm", required=True)
    parser.add_argument("--release", required=True)
    parser.add_argument("--namespace", required=True)
    parser.add_argument("--state", type=Path, required=True)
    parser.add_argument("--timeout", default="10m")
    parser.add_argument("--revision", default="", help="rollback: this revision instead of the recorded one")
    args = parser.parse_args(argv)
    try:
        {"before": record_before, "after": record_after, "rollback": rollback}[args.action](args)
    except ReleaseError as exc:
        print(f"release: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
