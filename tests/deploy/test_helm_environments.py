"""The umbrella chart as an operator installs it: values-staging.yaml and values-production.yaml.

helm/tools/check.sh lints, renders and validates both (kubernetes-validate --strict, 1.30) along
with the ci/ inputs; these tests read what the production render promises.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
HELM_DIR = ROOT / "helm"
RENDERED = ROOT / ".lobe" / "helm-check"
HELM = ROOT / ".lobe" / "tools" / "helm"
SERVICES = ("gateway", "chat-worker", "billing", "metrics")
Doc = dict[str, Any]


@pytest.fixture(scope="module")
def checked() -> None:
    result = subprocess.run(
        [HELM_DIR / "tools" / "check.sh"], cwd=ROOT, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, f"helm/tools/check.sh failed:\n{result.stdout}\n{result.stderr}"
    for env in ("staging", "production"):
        assert f"== lobe/values-{env}" in result.stdout, "check.sh must lint and validate it"


def rendered(env: str) -> list[Doc]:
    return [d for d in yaml.safe_load_all((RENDERED / f"lobe__values-{env}.yaml").read_text()) if d]


@pytest.fixture(scope="module")
def production(checked: None) -> list[Doc]:
    return rendered("production")


def of_kind(docs: list[Doc], kind: str) -> dict[str, Doc]:
    return {d["metadata"]["name"].removeprefix("lobe-ci-"): d for d in docs if d["kind"] == kind}


def test_gateway_hpa_scales_on_cpu_memory_and_requests_per_second_with_the_specified_behaviour(
    production: list[Doc],
) -> None:
    spec = of_kind(production, "HorizontalPodAutoscaler")["gateway"]["spec"]
    resources = {
        m["resource"]["name"]: m["resource"]["target"] for m in spec["metrics"] if m["type"] == "Resource"
    }
    assert resources == {
        "cpu": {"type": "Utilization", "averageUtilization": 70},
        "memory": {"type": "Utilization", "averageUtilization": 80},
    }
    [pods] = [m["pods"] for m in spec["metrics"] if m["type"] == "Pods"]
    assert pods == {
        "metric": {"name": "http_requests_per_second"},
        "target": {"type": "AverageValue", "averageValue": "50"},
    }
    down, up = spec["behavior"]["scaleDown"], spec["behavior"]["scaleUp"]
    assert down["stabilizationWindowSeconds"] == 300
    assert down["policies"] == [{"type": "Percent", "value": 50, "periodSeconds": 60}]
    assert up["stabilizationWindowSeconds"] == 60
    assert up["selectPolicy"] == "Max"  # 100 % or 2 pods, whichever is more
    assert {(p["type"], p["value"], p["periodSeconds"]) for p in up["policies"]} == {
        ("Percent", 100, 60),
        ("Pods", 2, 60),
    }


def test_workers_scale_on_streams_in_flight_per_pod_below_their_concurrency(production: list[Doc]) -> None:
    spec = of_kind(production, "HorizontalPodAutoscaler")["chat-worker"]["spec"]
    [pods] = [m["pods"] for m in spec["metrics"] if m["type"] == "Pods"]
    assert pods["metric"]["name"] == "worker_streams_active"
    concurrency = of_kind(production, "ConfigMap")["chat-worker"]["data"]["WORKER_MAX_CONCURRENCY"]
    assert 0 < int(pods["target"]["averageValue"]) < int(concurrency)


def test_ingress_has_tls_the_annotations_and_routes_only_the_public_api(production: list[Doc]) -> None:
    [ingress] = of_kind(production, "Ingress").values()
    notes = ingress["metadata"]["annotations"]
    assert notes["cert-manager.io/cluster-issuer"]
    assert notes["nginx.ingress.kubernetes.io/ssl-redirect"] == "true"
    assert notes["nginx.ingress.kubernetes.io/force-ssl-redirect"] == "true"
    assert notes["nginx.ingress.kubernetes.io/rate-limit"] == "100"
    assert notes["nginx.ingress.kubernetes.io/rate-limit-window"] == "1m"
    assert notes["nginx.ingress.kubernetes.io/limit-rpm"] == "100"  # the one ingress-nginx acts on
    assert notes["nginx.ingress.kubernetes.io/proxy-buffering"] == "off"  # SSE
    spec = ingress["spec"]
    hosts = {rule["host"] for rule in spec["rules"]}
    assert hosts <= {host for tls in spec["tls"] for host in tls["hosts"]}
    paths = [p for rule in spec["rules"] for p in rule["http"]["paths"]]
    assert [p["path"] for p in paths] == ["/v1"]
    assert all(p["backend"]["service"]["port"] == {"name": "http"} for p in paths)


def test_no_ingress_path_reaches_metrics_which_only_the_ops_port_serves(production: list[Doc]) -> None:
    gateway = of_kind(production, "Deployment")["gateway"]["spec"]["template"]["spec"]["containers"][0]
    ports = {p["name"]: p["containerPort"] for p in gateway["ports"]}
    assert ports == {"http": 3210, "ops": 3214}
    env = {e["name"]: e.get("value") for e in gateway["env"]}
    assert (env["GATEWAY_PORT"], env["OPS_PORT"]) == ("3210", "3214")
    assert of_kind(production, "ServiceMonitor")["gateway"]["spec"]["endpoints"][0]["port"] == "ops"
    for ingress in of_kind(production, "Ingress").values():
        for rule in ingress["spec"]["rules"]:
            for path in rule["http"]["paths"]:
                assert not "/metrics".startswith(path["path"].rstrip("/") + "/"), path
                assert path["backend"]["service"]["port"] != {"name": "ops"}


def egress_ports(policy: Doc) -> set[int]:
    return {p["port"] for rule in policy["spec"]["egress"] for p in rule.get("ports", [])}


def test_every_service_has_a_default_deny_network_policy_opening_only_what_it_needs(
    production: list[Doc],
) -> None:
    policies = of_kind(production, "NetworkPolicy")
    assert set(policies) == set(SERVICES)
    for name, policy in policies.items():
        spec = policy["spec"]
        assert spec["policyTypes"] == ["Ingress", "Egress"]
        assert spec["podSelector"]["matchLabels"]["app.kubernetes.io/name"] == name
        assert {4222, 53} <= egress_ports(policy), f"{name} must reach NATS and DNS"
    holders = {
        port: {n for n, p in policies.items() if port in egress_ports(p)} for port in (5432, 6379, 443)
    }
    assert holders == {5432: {"billing"}, 6379: {"gateway"}, 443: {"chat-worker"}}
    # The gateway accepts from the ingress controller; Prometheus may scrape every ops port.
    gateway_in = policies["gateway"]["spec"]["ingress"]
    assert any(
        peer.get("podSelector", {}).get("matchLabels", {}).get("app.kubernetes.io/name") == "ingress-nginx"
        for rule in gateway_in
        for peer in rule["from"]
    )
    for name, policy in policies.items():
        metrics_port = "ops" if name == "gateway" else "http"
        scrape = [
            r for r in policy["spec"]["ingress"] if r["ports"] == [{"port": metrics_port, "protocol": "TCP"}]
        ]
        peers = [peer for rule in scrape for peer in rule["from"]]
        labels = [p.get("namespaceSelector", {}).get("matchLabels", {}) for p in peers]
        assert {"kubernetes.io/metadata.name": "monitoring"} in labels, name


def test_every_service_gets_the_same_nats_and_stream_replicas_from_global(production: list[Doc]) -> None:
    for name, deployment in of_kind(production, "Deployment").items():
        env = {
            e["name"]: e.get("value") for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]
        }
        assert env["NATS_STREAM_REPLICAS"] == "3", name
        assert env["NATS_URL"] == "nats://nats.nats.svc:4222", name


def test_every_service_connects_as_its_own_nats_user_which_the_nats_chart_values_define(
    production: list[Doc],
) -> None:
    nats_values = yaml.safe_load((ROOT / "deploy" / "nats" / "auth-values.yaml").read_text())
    nats_users = {u["user"] for u in nats_values["config"]["merge"]["authorization"]["users"]}
    secret_keys = {e["valueFrom"]["secretKeyRef"]["key"] for e in nats_values["container"]["env"].values()}
    assert nats_users == secret_keys == {*SERVICES, "admin"}
    for name, deployment in of_kind(production, "Deployment").items():
        env = {e["name"]: e for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
        assert env["NATS_USER"]["value"] == name
        password = env["NATS_PASSWORD"]["valueFrom"]["secretKeyRef"]
        assert password == {"name": "lobe-credentials", "key": f"nats-password-{name}"}, name


def test_billing_backs_up_postgres_on_a_schedule_with_the_script_compose_runs(production: list[Doc]) -> None:
    [cron] = of_kind(production, "CronJob").values()
    job = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    container = job["containers"][0]
    assert container["command"] == ["/bin/sh", "/opt/lobe/pg-backup.sh", "backup"]
    assert container["image"].startswith("postgres:16")  # pg_dump of the server's major version
    env = {e["name"]: e for e in container["env"]}
    assert env["DATABASE_URL"]["valueFrom"]["secretKeyRef"]["key"] == "database-url"
    script = of_kind(production, "ConfigMap")["billing-backup"]["data"]["pg-backup.sh"]
    assert script == (HELM_DIR / "billing" / "files" / "pg-backup.sh").read_text()
    claim = {v["name"]: v for v in job["volumes"]}["backup"]["persistentVolumeClaim"]["claimName"]
    pvc = of_kind(production, "PersistentVolumeClaim")[claim.removeprefix("lobe-ci-")]
    assert pvc["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"


def test_staging_renders_the_same_shape_at_a_smaller_size(checked: None) -> None:
    staging = rendered("staging")
    assert set(of_kind(staging, "NetworkPolicy")) == set(SERVICES)
    [ingress] = of_kind(staging, "Ingress").values()
    assert ingress["spec"]["tls"]
    hpa = of_kind(staging, "HorizontalPodAutoscaler")["gateway"]["spec"]
    assert (
        hpa["maxReplicas"]
        < of_kind(rendered("production"), "HorizontalPodAutoscaler")["gateway"]["spec"]["maxReplicas"]
    )


def test_an_ingress_path_to_metrics_or_everything_is_rejected_by_the_schema(checked: None) -> None:
    for path in ("/", "/metrics"):
        out = subprocess.run(
            [
                HELM,
                "template",
                "rel",
                HELM_DIR / "gateway",
                "--set",
                "ingress.enabled=true",
                "--set",
                f"ingress.paths={{{path}}}",
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert out.returncode != 0, path
        assert "ingress.paths" in out.stderr


def test_stream_replicas_per_service_are_rejected_in_favour_of_global(checked: None) -> None:
    out = subprocess.run(
        [HELM, "template", "rel", HELM_DIR / "billing", "--set", "config.NATS_STREAM_REPLICAS=3"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode != 0
    assert "config: Must not validate the schema" in out.stderr


def test_billings_api_and_admin_api_are_reachable_from_no_ingress_only_from_the_cluster(
    production: list[Doc],
) -> None:
    """Billing serves its usage and admin API on its ops port (with /metrics): no Ingress routes to
    it, its Service is internal, and its NetworkPolicy admits only Prometheus and helm test pods."""
    ingress_backends = {
        path["backend"]["service"]["name"]
        for ingress in of_kind(production, "Ingress").values()
        for rule in ingress["spec"]["rules"]
        for path in rule["http"]["paths"]
    }
    assert ingress_backends
    assert all("gateway" in backend for backend in ingress_backends)
    service = of_kind(production, "Service")["billing"]
    assert service["spec"].get("type", "ClusterIP") == "ClusterIP"
    peers = [
        peer
        for rule in of_kind(production, "NetworkPolicy")["billing"]["spec"]["ingress"]
        for peer in rule["from"]
    ]
    admitted = [
        p.get("namespaceSelector", {}).get("matchLabels") or p.get("podSelector", {}).get("matchLabels")
        for p in peers
    ]
    assert {"kubernetes.io/metadata.name": "monitoring"} in admitted
    assert not any("ingress-nginx" in str(peer) for peer in peers)
