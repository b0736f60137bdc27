"""The umbrella chart as an operator installs it: values-staging.yaml and values-production.yaml.

helm/tools/check.sh lints, renders and validates both (kubernetes-validate --strict, 1.30) along
with the ci/ inputs; these tests read what the production render promises: sign-in reachable and
wired, real models, client IPs behind the ingress, alerts, drains on rollout, gentle scale-down,
TLS to every backing service. Each promise is held to the code that must honour it where there is
one (the gateway's routes and settings, the chat worker's model loader, promtool).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from lobe.chat_worker.deployments import load_catalog
from lobe.devtools.servers.binaries import debian_binary
from lobe.gateway.auth.provider_config import configured_providers
from lobe.gateway.auth.routes import JWKS_PATH
from lobe.gateway.auth.sign_in_flow import CALLBACK_PATH
from lobe.gateway.ratelimit.client_ip import parse_networks
from lobe.gateway.settings import GatewaySettings
from lobe.shared.settings import DatabaseSettings, NatsSettings, RedisSettings

ROOT = Path(__file__).resolve().parents[2]
HELM_DIR = ROOT / "helm"
RENDERED = ROOT / ".lobe" / "helm-check"
HELM = ROOT / ".lobe" / "tools" / "helm"
SERVICES = ("gateway", "chat-worker", "billing", "metrics")
RULES = ROOT / "deploy" / "prometheus" / "rules"
RULE_TESTS = ROOT / "deploy" / "prometheus" / "tests" / "lobe_test.yml"
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


def helm_template(chart: str, *sets: str) -> subprocess.CompletedProcess[str]:
    """`helm template` of one chart with --set overrides: how a refused value shows."""
    args: list[str | Path] = [HELM, "template", "rel", HELM_DIR / chart]
    for value in sets:
        args += ["--set", value]
    return subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=60)


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


def test_ingress_has_tls_the_annotations_and_routes_only_the_public_api_and_sign_in(
    production: list[Doc],
) -> None:
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
    assert [p["path"] for p in paths] == ["/v1", "/auth", "/.well-known"]
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
    # The gateway's 443 is the identity provider's range only; the workers reach any provider.
    assert holders == {5432: {"billing"}, 6379: {"gateway"}, 443: {"chat-worker", "gateway"}}
    gateway_443 = [
        r for r in policies["gateway"]["spec"]["egress"] if 443 in egress_ports({"spec": {"egress": [r]}})
    ]
    assert [peer["ipBlock"]["cidr"] for rule in gateway_443 for peer in rule["to"]] == ["203.0.113.0/24"]
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
        out = helm_template("gateway", "ingress.enabled=true", f"ingress.paths={{{path}}}")
        assert out.returncode != 0, path
        assert "ingress.paths" in out.stderr


def test_stream_replicas_per_service_are_rejected_in_favour_of_global(checked: None) -> None:
    out = helm_template("billing", "config.NATS_STREAM_REPLICAS=3")
    assert out.returncode != 0
    assert "config: Must not validate the schema" in out.stderr


def test_billings_api_and_admin_api_are_reachable_from_no_ingress_only_from_the_cluster(
    production: list[Doc],
) -> None:
    """Billing serves its usage and admin API on its ops port (with /metrics): no Ingress routes to
    it, its Service is internal, and its NetworkPolicy admits only the gateway (which forwards
    /v1/admin/*), Prometheus and helm test pods."""
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
    assert {"app.kubernetes.io/name": "gateway"} in admitted
    assert not any("ingress-nginx" in str(peer) for peer in peers)


def pod(docs: list[Doc], service: str) -> Doc:
    spec: Doc = of_kind(docs, "Deployment")[service]["spec"]["template"]["spec"]
    return spec


def env_of(container: Doc) -> dict[str, Doc]:
    return {e["name"]: e for e in container["env"]}


def secret_key(entry: Doc) -> str:
    ref = entry["valueFrom"]["secretKeyRef"]
    assert ref["name"] == "lobe-credentials", entry
    key: str = ref["key"]
    return key


def mounted_file(pod_spec: Doc, path: str) -> tuple[Doc, str]:
    """The volume serving `path` in the pod's first container, and the key it maps to the file."""
    mounts = pod_spec["containers"][0]["volumeMounts"]
    (mount,) = [m for m in mounts if path.startswith(m["mountPath"].rstrip("/") + "/")]
    assert mount.get("readOnly") is True, mount
    (volume,) = [v for v in pod_spec["volumes"] if v["name"] == mount["name"]]
    return volume, path.removeprefix(mount["mountPath"].rstrip("/") + "/")


def routed_by_ingress(docs: list[Doc], path: str) -> bool:
    prefixes = [
        p["path"]
        for ingress in of_kind(docs, "Ingress").values()
        for rule in ingress["spec"]["rules"]
        for p in rule["http"]["paths"]
        if p["pathType"] == "Prefix" and p["backend"]["service"]["port"] == {"name": "http"}
    ]
    return any(path == p or path.startswith(p.rstrip("/") + "/") for p in prefixes)


def test_sign_in_routes_are_reachable_through_the_ingress_and_callbacks_point_at_its_host(
    production: list[Doc],
) -> None:
    for path in (f"{CALLBACK_PATH}oidc", "/auth/login/oidc", "/auth/session", "/auth/logout", JWKS_PATH):
        assert routed_by_ingress(production, path), path
    assert not routed_by_ingress(production, "/metrics")
    assert not routed_by_ingress(production, "/api/ready")
    env = env_of(pod(production, "gateway")["containers"][0])
    [ingress] = of_kind(production, "Ingress").values()
    public = urlsplit(env["GATEWAY_PUBLIC_URL"]["value"])
    assert (public.scheme, public.netloc) == ("https", ingress["spec"]["rules"][0]["host"])


def test_sign_in_secrets_come_from_the_secret_and_the_gateway_accepts_the_rendered_settings(
    production: list[Doc], monkeypatch: pytest.MonkeyPatch
) -> None:
    container = pod(production, "gateway")["containers"][0]
    env = env_of(container)
    assert secret_key(env["SESSION_KEYS"]) == "session-keys"
    assert secret_key(env["OIDC_CLIENT_SECRET"]) == "oidc-client-secret"
    assert env["OIDC_DISCOVERY_URL"]["value"].startswith("https://")
    config = of_kind(production, "ConfigMap")["gateway"]["data"]
    assert not {"SESSION_KEYS", "OIDC_CLIENT_SECRET", "GITHUB_CLIENT_SECRET"} & set(config)
    # The pod's environment as the gateway will read it, each secret a stand-in.
    for name, value in config.items():
        monkeypatch.setenv(name, value)
    for name, entry in env.items():
        monkeypatch.setenv(name, entry.get("value", f"secret-{name}"))
    settings = GatewaySettings()
    assert settings.session_keys.get_secret_value() == "secret-SESSION_KEYS"
    assert settings.oidc_client_id == "lobe-gateway"
    assert settings.gateway_public_url == env["GATEWAY_PUBLIC_URL"]["value"]
    assert settings.billing_admin_token is not None
    assert parse_networks(settings.trusted_proxies)


def test_google_and_named_providers_render_with_their_own_secrets_and_the_gateway_offers_each(
    checked: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """helm/gateway/ci/sign-in-providers-values.yaml: Google beside two named OpenID providers."""
    rendered_file = RENDERED / "gateway__sign-in-providers.yaml"
    docs = [d for d in yaml.safe_load_all(rendered_file.read_text()) if d]
    env = env_of(pod(docs, "gateway")["containers"][0])
    sign_in = ("SESSION_KEYS", "GOOGLE_", "OIDC_")
    refs = {n: e["valueFrom"].get("secretKeyRef", {}) for n, e in env.items() if "valueFrom" in e}
    secrets = {n: (ref["name"], ref["key"]) for n, ref in refs.items() if n.startswith(sign_in)}
    assert secrets == {
        "SESSION_KEYS": ("lobe-sign-in", "session-keys"),
        "GOOGLE_CLIENT_SECRET": ("lobe-sign-in", "google-client-secret"),
        "OIDC_KEYCLOAK_CLIENT_SECRET": ("keycloak-client", "client-secret"),
        "OIDC_PARTNER_CLIENT_SECRET": ("lobe-sign-in", "partner-client-secret"),
    }
    for name, entry in env.items():
        monkeypatch.setenv(name, entry.get("value", f"secret-{name}"))
    offered = configured_providers(GatewaySettings())
    assert {name: (p.display_name, sorted(p.domains)) for name, p in offered.items()} == {
        "google": ("Google", ["gmail.com"]),
        "keycloak": ("Corp SSO", ["lobe.example"]),
        "partner": ("Partner", []),
    }


@pytest.mark.parametrize("name", ["google", "oidc", "github", "Corp", "corp-sso"])
def test_a_named_provider_may_not_take_a_built_in_name_or_one_no_variable_can_carry(
    checked: None, name: str
) -> None:
    result = helm_template(
        "gateway",
        "signIn.enabled=true",
        "signIn.publicUrl=https://api.lobe.example",
        f"signIn.providers[0].name={name}",
        "signIn.providers[0].issuer=https://sso.lobe.example",
        "signIn.providers[0].clientId=lobe",
        "signIn.providers[0].clientSecretKey=k",
    )
    assert result.returncode != 0
    assert "signIn.providers.0.name" in result.stderr, result.stderr


def test_the_gateway_reaches_the_identity_provider_only_on_443_to_its_listed_ranges(
    production: list[Doc],
) -> None:
    egress = of_kind(production, "NetworkPolicy")["gateway"]["spec"]["egress"]
    to_443 = [rule for rule in egress if {"port": 443, "protocol": "TCP"} in rule.get("ports", [])]
    assert [rule["ports"] for rule in to_443] == [[{"port": 443, "protocol": "TCP"}]]
    assert to_443[0]["to"] == [{"ipBlock": {"cidr": "203.0.113.0/24"}}]


def test_admin_requests_reach_billings_admin_api_through_both_network_policies(production: list[Doc]) -> None:
    url = urlsplit(of_kind(production, "ConfigMap")["gateway"]["data"]["BILLING_ADMIN_URL"])
    billing = of_kind(production, "Service")["billing"]
    [port] = [p for p in billing["spec"]["ports"] if p["name"] == "http"]
    assert (url.hostname, url.port) == (billing["metadata"]["name"], port["port"])
    target = port["targetPort"]
    container_port = {
        p["name"]: p["containerPort"] for p in pod(production, "billing")["containers"][0]["ports"]
    }
    policies = of_kind(production, "NetworkPolicy")
    out = [
        rule
        for rule in policies["gateway"]["spec"]["egress"]
        if {"port": container_port[target], "protocol": "TCP"} in rule.get("ports", [])
    ]
    assert [peer["podSelector"]["matchLabels"] for rule in out for peer in rule["to"]] == [
        {"app.kubernetes.io/name": "billing"}
    ]
    into = [
        r for r in policies["billing"]["spec"]["ingress"] if {"port": target, "protocol": "TCP"} in r["ports"]
    ]
    peers = [peer.get("podSelector", {}).get("matchLabels") for rule in into for peer in rule["from"]]
    assert {"app.kubernetes.io/name": "gateway"} in peers
    env = env_of(pod(production, "gateway")["containers"][0])
    assert secret_key(env["BILLING_ADMIN_TOKEN"]) == secret_key(
        env_of(pod(production, "billing")["containers"][0])["BILLING_ADMIN_TOKEN"]
    )


def test_the_chat_worker_loads_real_models_from_the_mounted_file_with_keys_from_the_secret(
    production: list[Doc], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = pod(production, "chat-worker")
    env = env_of(spec["containers"][0])
    path = env["MODELS_FILE"]["value"]
    volume, key = mounted_file(spec, path)
    configmap = of_kind(production, "ConfigMap")[volume["configMap"]["name"].removeprefix("lobe-ci-")]
    (tmp_path / "models.yaml").write_text(configmap["data"][key])
    for name, entry in env.items():
        if "valueFrom" in entry and "secretKeyRef" in entry["valueFrom"]:
            monkeypatch.setenv(name, f"sk-{secret_key(entry)}")
    catalog = load_catalog(tmp_path / "models.yaml")
    deployments = [d for m in catalog.models for d in m.deployments if d.provider != "mock"]
    assert {d.provider for d in deployments} >= {"openai", "anthropic"}
    for deployment in deployments:
        key_value = deployment.api_key()
        assert key_value is not None, f"{deployment.name}: its key variable is not filled from the Secret"
        assert key_value.get_secret_value().startswith("sk-")


def test_trusted_proxies_is_set_to_a_private_range_in_staging_and_production(
    production: list[Doc],
) -> None:
    proxies = parse_networks(of_kind(production, "ConfigMap")["gateway"]["data"]["TRUSTED_PROXIES"])
    assert proxies
    assert all(net.is_private and net.prefixlen >= 8 for net in proxies)
    assert "TRUSTED_PROXIES" in of_kind(rendered("staging"), "ConfigMap")["gateway"]["data"]


def test_the_release_alerts_with_the_rules_compose_loads_and_they_pass_their_unit_tests(
    production: list[Doc], tmp_path: Path
) -> None:
    [rule] = of_kind(production, "PrometheusRule").values()
    from_files = [g for f in sorted(RULES.glob("*.yml")) for g in yaml.safe_load(f.read_text())["groups"]]
    assert rule["spec"]["groups"] == from_files
    alerts = [r for g in from_files for r in g["rules"] if "alert" in r]
    assert len(alerts) >= 12
    # The Prometheus that picks up the ServiceMonitors picks up the rules too.
    monitors = of_kind(production, "ServiceMonitor")
    assert set(monitors) == set(SERVICES)
    for monitor in monitors.values():
        assert monitor["metadata"]["labels"]["release"] == rule["metadata"]["labels"]["release"]
    # The rendered rules, not the source, through the same promtool unit tests.
    (tmp_path / "rules").mkdir()
    (tmp_path / "tests").mkdir()
    (tmp_path / "rules" / "lobe.yml").write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}))
    shutil.copy(RULE_TESTS, tmp_path / "tests" / "lobe_test.yml")
    promtool = debian_binary("promtool", "prometheus")
    result = subprocess.run(
        [promtool, "test", "rules", "tests/lobe_test.yml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_scrape_jobs_are_named_as_the_rules_expect(production: list[Doc]) -> None:
    """LobeServiceDown reads up{job=~"gateway|chat-worker|billing|metrics"}: the Operator names the
    job after the Service's jobLabel label, which must be the bare service name."""
    down = next(
        r
        for f in RULES.glob("*.yml")
        for g in yaml.safe_load(f.read_text())["groups"]
        for r in g["rules"]
        if r.get("alert") == "LobeServiceDown"
    )
    for name, monitor in of_kind(production, "ServiceMonitor").items():
        label = monitor["spec"]["jobLabel"]
        assert of_kind(production, "Service")[name]["metadata"]["labels"][label] == name
        assert name in down["expr"]


def test_the_gateway_leaves_rotation_before_sigterm_and_drains_within_the_grace_period(
    production: list[Doc],
) -> None:
    spec = pod(production, "gateway")
    command = spec["containers"][0]["lifecycle"]["preStop"]["exec"]["command"]
    assert command[:2] == ["python", "-c"]
    sleep_s = float(command[2].removeprefix("import time; time.sleep(").removesuffix(")"))
    drain_s = float(of_kind(production, "ConfigMap")["gateway"]["data"]["SHUTDOWN_GRACE_S"])
    # Endpoints, kube-proxy and ingress-nginx need a few seconds to stop routing to the pod.
    assert sleep_s >= 5
    assert spec["terminationGracePeriodSeconds"] > sleep_s + drain_s


def test_a_grace_period_shorter_than_pre_stop_plus_drain_is_refused(checked: None) -> None:
    out = helm_template("gateway", "terminationGracePeriodSeconds=35")
    assert out.returncode != 0
    assert "terminationGracePeriodSeconds (35) must exceed" in out.stderr
    # The listener's delay after SIGTERM counts too: 10 s preStop + 25 s delay + 30 s drain > 60 s.
    delayed = helm_template("gateway", "config.SHUTDOWN_DELAY_S=25")
    assert delayed.returncode != 0
    assert "terminationGracePeriodSeconds (60) must exceed" in delayed.stderr
    assert helm_template("gateway", "config.SHUTDOWN_DELAY_S=15").returncode == 0  # 55 s < 60 s


@pytest.mark.parametrize("env", ["staging", "production"])
def test_every_hpa_lets_pods_go_gradually(env: str, checked: None) -> None:
    hpas = of_kind(rendered(env), "HorizontalPodAutoscaler")
    assert set(hpas) == {"gateway", "chat-worker"}
    for name, hpa in hpas.items():
        down = hpa["spec"]["behavior"]["scaleDown"]
        assert down["stabilizationWindowSeconds"] >= 300, name
        assert down["policies"], name
        for policy in down["policies"]:
            assert (policy["type"], policy["value"] <= 50) == ("Percent", True), (name, policy)
            assert policy["periodSeconds"] >= 60, (name, policy)
    workers = hpas["chat-worker"]["spec"]["behavior"]["scaleDown"]
    # Workers hold streams of minutes: a fifth at most every two minutes.
    assert workers["policies"] == [{"type": "Percent", "value": 20, "periodSeconds": 120}]


def test_an_hpa_without_scale_down_behaviour_is_refused_by_the_schema(checked: None) -> None:
    out = helm_template("metrics", "autoscaling.enabled=true", "autoscaling.behavior.scaleDown=null")
    assert out.returncode != 0
    assert "scaleDown is required" in out.stderr


def test_every_backend_connection_is_tls_verified_against_the_mounted_ca(production: list[Doc]) -> None:
    wanted = {
        "gateway": {"NATS_TLS_CA_FILE", "REDIS_TLS_CA_FILE"},
        "chat-worker": {"NATS_TLS_CA_FILE"},
        "billing": {"NATS_TLS_CA_FILE", "DATABASE_TLS_CA_FILE"},
        "metrics": {"NATS_TLS_CA_FILE"},
    }
    for service, variables in wanted.items():
        spec = pod(production, service)
        env = env_of(spec["containers"][0])
        assert {n for n in env if n.endswith("_TLS_CA_FILE")} == variables, service
        for variable in variables:
            volume, key = mounted_file(spec, env[variable]["value"])
            assert volume["configMap"] == {"name": "lobe-backend-ca", "items": [{"key": key, "path": key}]}
    # The migrations and the backups reach PostgreSQL too.
    [migrate] = list(of_kind(production, "Job").values())
    job = migrate["spec"]["template"]["spec"]
    mounted_file(job, env_of(job["containers"][0])["DATABASE_TLS_CA_FILE"]["value"])
    [cron] = of_kind(production, "CronJob").values()
    backup = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    backup_env = env_of(backup["containers"][0])
    assert backup_env["PGSSLMODE"]["value"] == "verify-full"
    mounted_file(backup, backup_env["PGSSLROOTCERT"]["value"])


def test_backend_tls_settings_turn_into_verified_connections(production: list[Doc]) -> None:
    """The settings the render sets are the ones the shared settings turn into TLS."""
    ca = env_of(pod(production, "billing")["containers"][0])["DATABASE_TLS_CA_FILE"]["value"]
    assert NatsSettings(nats_url="nats://nats.nats.svc:4222", nats_tls_ca_file=ca).nats_tls
    dsn = DatabaseSettings(database_url="postgresql://u:p@db/lobe", database_tls_ca_file=ca).database_url
    assert "sslmode=verify-full" in dsn.get_secret_value()
    redis = RedisSettings(redis_tls_ca_file=ca)
    options = redis.redis_from_url(redis.redis_url)
    assert options["url"].startswith("rediss://")
    assert options["ssl_cert_reqs"] == "required"


def test_each_service_connects_to_nats_as_its_own_user_by_default(checked: None) -> None:
    docs = [d for d in yaml.safe_load_all((RENDERED / "lobe__default.yaml").read_text()) if d]
    assert set(of_kind(docs, "Deployment")) == set(SERVICES)
    for name, deployment in of_kind(docs, "Deployment").items():
        env = env_of(deployment["spec"]["template"]["spec"]["containers"][0])
        assert env["NATS_USER"]["value"] == name
        assert env["NATS_PASSWORD"]["valueFrom"]["secretKeyRef"]["key"] == f"nats-password-{name}"
