"""`make deploy DRY_RUN=1` from a fresh clone: the real Helm 3.17 runs `upgrade --install --dry-run`
against a fake Kubernetes API (tests/deploy/fake_kube_api.py), with no subchart built beforehand."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from .fake_kube_api import fake_kube_api

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ("gateway", "chat-worker", "billing", "metrics")


def fresh_clone(dest: Path) -> Path:
    """What a clone of this tree holds: the tracked files (plus new, not ignored ones), nothing that
    a build left behind (charts/, Chart.lock, .lobe/)."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = ROOT / name
        if not os.path.lexists(source):  # deleted in the work tree, not yet committed
            continue
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_symlink():
            target.symlink_to(os.readlink(source))
        else:
            shutil.copy2(source, target)
    return dest


def images(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "image" and isinstance(value, str):
                yield value
            else:
                yield from images(value)
    elif isinstance(node, list):
        for item in node:
            yield from images(item)


@pytest.fixture(scope="module")
def helm() -> Path:
    subprocess.run([ROOT / "helm" / "tools" / "get-helm.sh"], check=True, capture_output=True, timeout=300)
    return ROOT / ".lobe" / "tools" / "helm"


@pytest.mark.parametrize("env", ["staging", "production"])
def test_deploy_dry_runs_from_a_fresh_clone_with_every_image_by_digest(
    env: str, helm: Path, tmp_path: Path
) -> None:
    clone = fresh_clone(tmp_path / "clone")
    assert not (clone / "helm" / "lobe" / "charts").exists()
    assert not (clone / "helm" / "gateway" / "charts").exists()
    digests = tmp_path / "digests"
    digests.mkdir()
    for i, service in enumerate(SERVICES):
        (digests / f"lobe-{service}.digest").write_text(f"sha256:{str(i) * 64}\n")

    with fake_kube_api() as (api, requests):
        result = subprocess.run(
            [
                "make",
                "--no-print-directory",
                "deploy",
                f"ENV={env}",
                "DRY_RUN=1",
                f"HELM={helm}",
                f"PYTHON={sys.executable}",
                "REGISTRY=registry.test/lobe",
                "IMAGE_TAG=abc123",
                f"IMAGE_DIGESTS={digests}",
                # Helm would fetch the API's OpenAPI document; `make helm-check` validates the same
                # manifests offline against the Kubernetes 1.30 schemas instead.
                "HELM_FLAGS=--disable-openapi-validation",
            ],
            cwd=clone,
            env={**os.environ, "HELM_KUBEAPISERVER": api, "HOME": str(tmp_path), "KUBECONFIG": "/dev/null"},
            capture_output=True,
            text=True,
            timeout=300,
        )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert f"GET /api/v1/namespaces/lobe-{env}/secrets?labelSelector=name%3Dlobe%2Cowner%3Dhelm" in requests
    assert not [r for r in requests if not r.startswith("GET ")], "a dry run changed the cluster"
    assert not (clone / ".lobe" / "release").exists(), "a dry run recorded a release"

    manifest = result.stdout[result.stdout.index("---") : result.stdout.index("\nNOTES:")]
    docs = [doc for doc in yaml.safe_load_all(manifest) if doc]
    kinds = {doc["kind"] for doc in docs}
    ours = {image for doc in docs for image in images(doc) if "/lobe-" in image}
    assert ours == {
        f"registry.test/lobe/lobe-{service}:abc123@sha256:{str(i) * 64}" for i, service in enumerate(SERVICES)
    }
    assert {"Deployment", "Job", "ServiceMonitor", "HorizontalPodAutoscaler"} <= kinds
