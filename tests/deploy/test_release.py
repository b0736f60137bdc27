"""Release logic of `make deploy` / `make helm-test` / `make rollback` (tools/release.py), the same
targets and order CI runs (deliver.yml), against a fake `helm` that keeps revisions as Helm does
(tests/deploy/fake_helm.py): no cluster here."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from .fake_kube_api import fake_kube_api

ROOT = Path(__file__).resolve().parents[2]
FAKE_HELM = Path(__file__).with_name("fake_helm.py")


class Pipeline:
    """One CI workspace deploying ENV=staging with the fake helm."""

    def __init__(self, tmp_path: Path) -> None:
        self.state = tmp_path / "helm-state.json"
        self.helm = tmp_path / "helm"
        self.helm.write_text(f'#!/bin/sh\nexec {sys.executable} {FAKE_HELM} "$@"\n')
        self.helm.chmod(0o755)
        self.release_dir = tmp_path / "release"

    def make(self, *goals: str, fail: str = "", **variables: str) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "FAKE_HELM_STATE": str(self.state), "FAKE_HELM_FAIL": fail}
        settings = {
            "ENV": "staging",
            "HELM": str(self.helm),
            "PYTHON": sys.executable,
            "RELEASE_STATE_DIR": str(self.release_dir),
            "IMAGE_DIGESTS": str(self.release_dir / "no-digests"),
            **variables,
        }
        return subprocess.run(
            ["make", "--no-print-directory", *goals, *(f"{k}={v}" for k, v in settings.items())],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    def deploy(self, build: str, fail: str = "") -> subprocess.CompletedProcess[str]:
        return self.make("deploy", fail=fail, IMAGE_TAG=build)

    def helm_state(self) -> dict[str, Any]:
        state: dict[str, Any] = json.loads(self.state.read_text())
        return state

    def serving(self) -> str:
        deployed = [r["image"] for r in self.helm_state()["revisions"] if r["status"] == "deployed"]
        assert len(deployed) == 1, self.helm_state()["revisions"]
        return str(deployed[0])

    def rollbacks(self) -> list[list[str]]:
        return [c for c in self.helm_state()["calls"] if c[0] == "rollback"]


@pytest.fixture
def pipeline(tmp_path: Path) -> Pipeline:
    return Pipeline(tmp_path)


def ok(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_failed_upgrade_leaves_the_previous_revision_serving_and_rollback_undoes_nothing(
    pipeline: Pipeline,
) -> None:
    ok(pipeline.deploy("v1"))
    failed = pipeline.deploy("v2", fail="upgrade")
    assert failed.returncode != 0
    assert pipeline.serving() == "v1"  # --atomic put revision 1's build back as revision 3

    # CI runs `make rollback` after any failed step. `helm rollback lobe 0` would now return to
    # revision 2, the failed v2; the recorded release knows the upgrade never succeeded.
    rolled = pipeline.make("rollback")
    ok(rolled)
    assert "nothing to roll back" in rolled.stdout
    assert pipeline.rollbacks() == []
    assert pipeline.serving() == "v1"


def test_a_failed_helm_test_after_a_good_upgrade_returns_to_the_revision_recorded_before_it(
    pipeline: Pipeline,
) -> None:
    ok(pipeline.deploy("v1"))
    assert pipeline.deploy("v2", fail="upgrade").returncode != 0  # revisions 2 (failed), 3 (v1)
    ok(pipeline.deploy("v3"))  # revision 4
    assert pipeline.serving() == "v3"

    assert pipeline.make("helm-test", fail="test").returncode != 0
    ok(pipeline.make("rollback"))

    assert [c[:3] for c in pipeline.rollbacks()] == [["rollback", "lobe", "3"]]
    assert "--wait" in pipeline.rollbacks()[0]
    assert pipeline.serving() == "v1"
    # A second `make rollback` (a re-run job) changes nothing more.
    ok(pipeline.make("rollback"))
    assert len(pipeline.rollbacks()) == 1


def test_rollback_refuses_when_the_release_moved_on_since_this_deploy(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    ok(pipeline.deploy("v1"))
    ok(pipeline.deploy("v2"))
    (tmp_path / "other").mkdir()
    other = Pipeline(tmp_path / "other")  # another workspace, same cluster
    other.state = pipeline.state
    ok(other.deploy("v3"))

    refused = pipeline.make("rollback")
    assert refused.returncode != 0
    assert "moved on" in refused.stderr
    assert pipeline.rollbacks() == []
    assert pipeline.serving() == "v3"


def test_rollback_after_a_first_install_refuses_for_there_is_nothing_to_return_to(
    pipeline: Pipeline,
) -> None:
    ok(pipeline.deploy("v1"))
    refused = pipeline.make("rollback")
    assert refused.returncode != 0
    assert "first install" in refused.stderr
    assert pipeline.rollbacks() == []


def test_rollback_without_a_recorded_deploy_needs_a_revision(pipeline: Pipeline) -> None:
    ok(pipeline.deploy("v1"))
    ok(pipeline.deploy("v2"))
    for state in pipeline.release_dir.iterdir():
        state.unlink()

    refused = pipeline.make("rollback")
    assert refused.returncode != 0
    assert "REVISION=" in refused.stderr
    ok(pipeline.make("rollback", REVISION="1"))
    assert [c[:3] for c in pipeline.rollbacks()] == [["rollback", "lobe", "1"]]
    assert pipeline.serving() == "v1"


def test_deploy_names_every_image_by_the_pushed_digest_in_the_push_registry(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    digests = tmp_path / "digests"
    digests.mkdir()
    for service in ("gateway", "chat-worker", "billing", "metrics"):
        (digests / f"lobe-{service}.digest").write_text(f"sha256:{service[0] * 64}\n")
    ok(pipeline.make("deploy", IMAGE_TAG="v1", IMAGE_DIGESTS=str(digests), REGISTRY="registry.test/lobe"))
    upgrade = next(c for c in pipeline.helm_state()["calls"] if c[0] == "upgrade")
    sets = {v for flag, v in itertools.pairwise(upgrade) if flag == "--set"}
    for service in ("gateway", "chat-worker", "billing", "metrics"):
        assert f"{service}.image.registry=registry.test/lobe" in sets
        assert f"{service}.image.digest=sha256:{service[0] * 64}" in sets
    assert pipeline.serving() == "sha256:" + "g" * 64


@pytest.mark.parametrize(
    ("revisions", "previous"),
    [
        ((), None),
        (("superseded", "deployed"), 2),
        # A failed upgrade and the revision --atomic made of revision 1: the one serving is 3.
        (("superseded", "failed", "deployed"), 3),
    ],
)
def test_the_record_reads_the_serving_revision_from_real_helm_history(
    revisions: tuple[str, ...], previous: int | None, tmp_path: Path
) -> None:
    helm = ROOT / ".lobe" / "tools" / "helm"
    subprocess.run([ROOT / "helm" / "tools" / "get-helm.sh"], check=True, capture_output=True, timeout=300)
    state = tmp_path / "state.json"
    with fake_kube_api(("lobe", "lobe-staging"), revisions) as (api, requests):
        args = [
            "--helm",
            str(helm),
            "--release",
            "lobe",
            "--namespace",
            "lobe-staging",
            "--state",
            str(state),
        ]
        recorded = subprocess.run(
            [sys.executable, ROOT / "tools" / "release.py", "before", *args],
            env={**os.environ, "HELM_KUBEAPISERVER": api, "HOME": str(tmp_path), "KUBECONFIG": "/dev/null"},
            capture_output=True,
            text=True,
            timeout=60,
        )
    ok(recorded)
    assert json.loads(state.read_text())["previous"] == previous
    assert any(r.startswith("GET /api/v1/namespaces/lobe-staging/secrets") for r in requests)
