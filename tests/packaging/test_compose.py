"""docker-compose.yml and deploy/: the suite's wiring is consistent (no Docker engine needed)."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import REGISTRY, CollectorRegistry

import lobe.billing.db_metrics
import lobe.billing.metrics
import lobe.chat_worker.metrics
import lobe.gateway.metrics
import lobe.shared.http_telemetry  # noqa: F401 - these register the services' series in REGISTRY
from lobe.chat_worker.routing.metrics import RoutingMetrics
from lobe.devtools.promql import metric_names
from lobe.devtools.servers.binaries import debian_binary
from lobe.gateway.ratelimit.client_ip import parse_networks
from lobe.metrics.aggregation import UsageMetrics
from lobe.metrics.lag import ConsumerLag

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
APP_PORTS = {"gateway": 3210, "chat-worker": 3211, "billing": 3212, "metrics": 3213}
# Where Prometheus scrapes /metrics: the gateway's ops port, never its public one.
METRICS_PORTS = {**APP_PORTS, "gateway": 3214}
PORT_ENV = {
    "gateway": "GATEWAY_PORT",
    "chat-worker": "OPS_PORT",
    "billing": "OPS_PORT",
    "metrics": "OPS_PORT",
}
HOST_ENV = {
    "gateway": "GATEWAY_HOST",
    "chat-worker": "OPS_HOST",
    "billing": "OPS_HOST",
    "metrics": "OPS_HOST",
}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert isinstance(data, dict)
    return data


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    result: dict[str, dict[str, Any]] = compose["services"]
    return result


def depends_on(service: dict[str, Any]) -> dict[str, Any]:
    deps = service.get("depends_on", {})
    return {key: {} for key in deps} if isinstance(deps, list) else dict(deps)


def test_every_dependency_names_a_defined_service_and_waits_on_health(
    services: dict[str, dict[str, Any]],
) -> None:
    for name, service in services.items():
        for dep, cond in depends_on(service).items():
            assert dep in services, f"{name} depends on undefined service {dep}"
            condition = cond.get("condition", "service_started")
            if condition == "service_healthy":
                has_check = "healthcheck" in services[dep] or "build" in services[dep]  # image HEALTHCHECK
                assert has_check, f"{name} waits for {dep} to be healthy, but {dep} has no healthcheck"


def test_each_app_service_builds_its_own_dockerfile_from_the_repo_root(
    services: dict[str, dict[str, Any]],
) -> None:
    for name in APP_PORTS:
        build = services[name]["build"]
        assert build["context"] == "."
        dockerfile = ROOT / build["dockerfile"]
        assert dockerfile == ROOT / "services" / name / "Dockerfile"
        assert dockerfile.is_file()
        assert services[name]["image"] == f"lobe-{name}:dev"


def test_app_ports_agree_across_compose_dockerfiles_prometheus_and_nginx(
    services: dict[str, dict[str, Any]],
) -> None:
    scrape = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    targets: dict[str, set[str]] = {}
    for job in scrape["scrape_configs"]:
        found = {t for sc in job.get("static_configs", []) for t in sc["targets"]}
        found |= {f"{n}:{sd['port']}" for sd in job.get("dns_sd_configs", []) for n in sd["names"]}
        targets[job["job_name"]] = found
    nginx = (DEPLOY / "nginx" / "nginx.conf").read_text()
    for name, port in APP_PORTS.items():
        env = services[name]["environment"]
        assert env[PORT_ENV[name]] == str(port)
        assert env[HOST_ENV[name]] == "0.0.0.0", f"{name} must bind all interfaces in a container"
        assert env["NATS_URL"] == "nats://nats:4222"
        assert services[name]["expose"] == sorted({str(port), str(METRICS_PORTS[name])})
        dockerfile = (ROOT / "services" / name / "Dockerfile").read_text()
        assert f"EXPOSE {port}" in dockerfile
        assert f"{PORT_ENV[name]}={port}" in dockerfile
        metrics_at = f"{name}:{METRICS_PORTS[name]}"
        assert targets[name] == {metrics_at}, f"prometheus scrapes {name} at {targets.get(name)}"
    assert "server gateway:3210;" in nginx


def test_credentials_come_from_the_environment_not_the_file(services: dict[str, dict[str, Any]]) -> None:
    for var in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY"):
        assert services["chat-worker"]["environment"][var] == f"${{{var}:-}}"
    assert "${POSTGRES_PASSWORD:-" in services["billing"]["environment"]["DATABASE_URL"]


def test_billing_starts_only_after_migrations_completed(services: dict[str, dict[str, Any]]) -> None:
    migrate = services["billing-migrate"]
    assert migrate["command"] == ["python", "-m", "lobe.billing.migrations"]
    assert depends_on(services["billing"])["billing-migrate"]["condition"] == "service_completed_successfully"


def test_nats_runs_with_jetstream(services: dict[str, dict[str, Any]]) -> None:
    assert "-js" in services["nats"]["command"]


def test_published_ports_bind_to_loopback_only(services: dict[str, dict[str, Any]]) -> None:
    published = [p for s in services.values() for p in s.get("ports", [])]
    assert published, "nginx, prometheus and grafana publish ports"
    assert all(str(p).startswith("127.0.0.1:") for p in published)


def test_mounted_config_files_exist(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), f"{name} mounts missing {source}"


def test_nginx_streams_sse_without_buffering_and_outlasts_the_gateway_timeout() -> None:
    conf = (DEPLOY / "nginx" / "nginx.conf").read_text()
    assert re.search(r"^\s*proxy_buffering off;", conf, re.M)
    read_timeout = int(re.search(r"proxy_read_timeout (\d+)s;", conf).group(1))  # type: ignore[union-attr]
    assert read_timeout > 600
    nginx = debian_binary("nginx", "nginx")
    # `nginx -t` resolves upstream names: point the gateway at loopback for the syntax check.
    test_dir = ROOT / ".lobe" / "nginx-test"
    test_dir.mkdir(parents=True, exist_ok=True)
    (test_dir / "nginx.conf").write_text(conf.replace("server gateway:3210;", "server 127.0.0.1:3210;"))
    # The TLS server block needs its certificate (tls/ beside the config, as `make tls` writes it).
    made = subprocess.run(["make", "-s", "tls", f"TLS_DIR={test_dir / 'tls'}"], cwd=ROOT, capture_output=True)
    assert made.returncode == 0, made.stderr
    result = subprocess.run(
        [
            nginx,
            "-t",
            "-q",
            "-p",
            str(test_dir),
            "-c",
            str(test_dir / "nginx.conf"),
            "-e",
            str(test_dir / "e.log"),
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr


def dashboard_panels() -> list[dict[str, Any]]:
    dashboard = json.loads((DEPLOY / "grafana" / "dashboards" / "lobe-overview.json").read_text())
    return [p for p in dashboard["panels"] if p["type"] != "row"]


def dashboard_exprs() -> list[str]:
    return [t["expr"] for p in dashboard_panels() for t in p["targets"]]


def alert_rules() -> list[dict[str, Any]]:
    rules = yaml.safe_load((DEPLOY / "prometheus" / "rules" / "lobe.yml").read_text())
    return [rule for group in rules["groups"] for rule in group["rules"]]


def exported_series() -> set[str]:
    """Every series name the services can export: each registry's families, with the sample
    names Prometheus stores for their type (a labelled family has no sample until first used)."""
    registries = [REGISTRY, UsageMetrics().registry, CollectorRegistry(), RoutingMetrics().registry]
    ConsumerLag(registries[2])
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}
    return {
        family.name + suffix
        for registry in registries
        for family in registry.collect()
        for suffix in suffixes.get(family.type, ("",))
    }


# The host's series the system panel reads, from node-exporter in compose (tests/e2e/test_prometheus.py
# reads them from a real one), and what Prometheus itself records per target.
NODE_EXPORTER_SERIES = {
    "node_cpu_seconds_total",
    "node_memory_MemAvailable_bytes",
    "node_memory_MemTotal_bytes",
}
PROMETHEUS_SERIES = {"up"}


def test_dashboard_and_alert_queries_name_only_series_the_suite_exports() -> None:
    exprs = dashboard_exprs()
    assert len(exprs) >= 20
    recorded = {rule["record"] for rule in alert_rules() if "record" in rule}
    exported = exported_series() | NODE_EXPORTER_SERIES | PROMETHEUS_SERIES | recorded
    for expr in [*exprs, *(rule["expr"] for rule in alert_rules())]:
        unknown = metric_names(expr) - exported
        assert not unknown, f"{expr!r} reads series nobody exports: {sorted(unknown)}"
    used = {name for expr in exprs for name in metric_names(expr)}
    seed = {
        "lobe_http_request_duration_seconds_count",
        "lobe_chat_requests_total",
        "lobe_message_tokens_total",
        "lobe_streaming_connections_active",
        "lobe_database_query_duration_seconds_bucket",
        "lobe_user_sessions_active",
        *NODE_EXPORTER_SERIES,
    }
    assert seed <= used, f"the dashboard lacks the seed's {sorted(seed - used)}"


def test_the_seeds_six_panels_are_on_the_dashboard() -> None:
    titles = {p["title"]: p["type"] for p in dashboard_panels()}
    assert titles["HTTP request rate"] == "timeseries"
    assert titles["Chat success rate"] == "stat"
    assert titles["Token usage by provider"] == "timeseries"
    assert titles["Active streaming connections"] == "gauge"
    assert titles["Database query performance"] == "heatmap"
    assert titles["System resources"] == "timeseries"


def test_grafana_provisioning_points_at_the_dashboard_prometheus_and_jaeger() -> None:
    prov = DEPLOY / "grafana" / "provisioning"
    sources = yaml.safe_load((prov / "datasources" / "prometheus.yml").read_text())["datasources"]
    by_type = {source["type"]: source for source in sources}
    assert by_type["prometheus"]["url"] == "http://prometheus:9090"
    assert by_type["jaeger"]["url"] == "http://jaeger:16686"
    used_uids = {p["datasource"]["uid"] for p in dashboard_panels()}
    used_uids |= {t["datasource"]["uid"] for p in dashboard_panels() for t in p["targets"]}
    assert used_uids == {by_type["prometheus"]["uid"]}
    provider = yaml.safe_load((prov / "dashboards" / "lobe.yml").read_text())["providers"][0]
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards"


def test_prometheus_config_rules_and_dashboard_promql_pass_promtool(tmp_path: Path) -> None:
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    assert {job["job_name"] for job in config["scrape_configs"]} >= set(APP_PORTS)
    promtool = debian_binary("promtool", "prometheus")
    run = [promtool, "check", "config", "--syntax-only", str(DEPLOY / "prometheus" / "prometheus.yml")]
    assert subprocess.run(run, capture_output=True, timeout=60).returncode == 0
    rules = subprocess.run([promtool, "check", "rules", str(DEPLOY / "prometheus" / "rules" / "lobe.yml")])
    assert rules.returncode == 0
    # promtool has no bare "parse this query", but it parses every rule: wrap the dashboard's queries.
    concrete = [
        e.replace("$__rate_interval", "5m").replace("$provider", ".*").replace("$model", ".*")
        for e in dashboard_exprs()
    ]
    group = {
        "groups": [
            {
                "name": "dashboard",
                "rules": [{"record": f"dash:q{i}", "expr": e} for i, e in enumerate(concrete)],
            }
        ]
    }
    (tmp_path / "dash.yml").write_text(yaml.safe_dump(group))
    checked = subprocess.run(
        [promtool, "check", "rules", str(tmp_path / "dash.yml")], capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_every_alert_has_a_promtool_unit_test_and_they_all_pass() -> None:
    tests_file = DEPLOY / "prometheus" / "tests" / "lobe_test.yml"
    unit_tests = yaml.safe_load(tests_file.read_text())["tests"]
    tested = {case["alertname"] for test in unit_tests for case in test.get("alert_rule_test", [])}
    alerts = {rule["alert"] for rule in alert_rules() if "alert" in rule}
    assert alerts <= tested, f"alerts without a unit test: {sorted(alerts - tested)}"
    # Each alert is shown both firing and quiet.
    for alert in alerts:
        outcomes = {
            bool(case["exp_alerts"])
            for test in unit_tests
            for case in test.get("alert_rule_test", [])
            if case["alertname"] == alert
        }
        assert outcomes == {True, False}, f"{alert} is not tested both firing and quiet"
    promtool = debian_binary("promtool", "prometheus")
    result = subprocess.run(
        [promtool, "test", "rules", str(tests_file)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_services_send_traces_to_the_collector_which_forwards_them_to_jaeger(
    services: dict[str, dict[str, Any]],
) -> None:
    for name in APP_PORTS:
        endpoint = services[name]["environment"]["OTEL_EXPORTER_OTLP_ENDPOINT"]
        assert endpoint == "${OTEL_EXPORTER_OTLP_ENDPOINT:-http://otel-collector:4318}", name
    collector = yaml.safe_load((DEPLOY / "otel-collector" / "config.yaml").read_text())
    assert collector["receivers"]["otlp"]["protocols"]["http"]["endpoint"] == "0.0.0.0:4318"
    assert "4318" in services["otel-collector"]["expose"]
    pipeline = collector["service"]["pipelines"]["traces"]
    assert pipeline["receivers"] == ["otlp"]
    (exporter,) = pipeline["exporters"]
    assert collector["exporters"][exporter]["endpoint"] == "jaeger:4317"
    assert services["jaeger"]["environment"]["COLLECTOR_OTLP_ENABLED"] == "true"
    assert "4317" in services["jaeger"]["expose"]


def test_prometheus_scrapes_node_exporter_for_the_system_panel(services: dict[str, dict[str, Any]]) -> None:
    scrape = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    targets = {
        t for job in scrape["scrape_configs"] for sc in job.get("static_configs", []) for t in sc["targets"]
    }
    assert "node-exporter:9100" in targets
    assert services["node-exporter"]["expose"] == ["9100"]


def test_the_gateway_trusts_x_forwarded_for_only_from_the_network_it_shares_with_nginx_alone(
    services: dict[str, dict[str, Any]], compose: dict[str, Any]
) -> None:
    trusted = services["gateway"]["environment"]["TRUSTED_PROXIES"]
    [subnet] = [c["subnet"] for c in compose["networks"]["edge"]["ipam"]["config"]]
    assert parse_networks(trusted) == parse_networks(subnet)
    on_edge = {name for name, s in services.items() if "edge" in s.get("networks", [])}
    assert on_edge == {"gateway", "nginx"}
    # nginx is what sets the header the gateway trusts, appending the peer it saw.
    conf = (DEPLOY / "nginx" / "nginx.conf").read_text()
    assert "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;" in conf


def test_prometheus_sends_alerts_to_alertmanager_whose_config_amtool_accepts(
    services: dict[str, dict[str, Any]],
) -> None:
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    targets = [
        t for am in config["alerting"]["alertmanagers"] for sc in am["static_configs"] for t in sc["targets"]
    ]
    assert targets == ["alertmanager:9093"]
    alertmanager = services["alertmanager"]
    assert "--config.file=/etc/alertmanager/alertmanager.yml" in alertmanager["command"]
    assert "./deploy/alertmanager:/etc/alertmanager:ro" in alertmanager["volumes"]
    routing = yaml.safe_load((DEPLOY / "alertmanager" / "alertmanager.yml").read_text())
    receivers = {r["name"] for r in routing["receivers"]}
    assert routing["route"]["receiver"] in receivers
    # Every severity the rules use reaches a receiver with somewhere to send it.
    severities = {rule["labels"]["severity"] for rule in alert_rules() if "alert" in rule}
    assert severities == {"critical", "warning"}
    critical = [r for r in routing["route"]["routes"] if 'severity="critical"' in r["matchers"]]
    assert [r["receiver"] for r in critical] == ["on-call"]
    for receiver in routing["receivers"]:
        assert receiver["webhook_configs"], receiver["name"]
    amtool = debian_binary("amtool", "prometheus-alertmanager")
    checked = subprocess.run(
        [amtool, "check-config", str(DEPLOY / "alertmanager" / "alertmanager.yml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
