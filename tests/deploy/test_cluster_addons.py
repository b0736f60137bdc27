"""What the Lobe release needs from the cluster, as values for charts installed beside it:
prometheus-adapter (the HPAs' Pods metrics) and the official NATS chart (the JetStream cluster).

Neither chart can be fetched here (its repository is out of reach), so these tests hold our values
to what the umbrella chart expects of them, and the PromQL to promtool.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import REGISTRY

import lobe.chat_worker.metrics
import lobe.shared.http_telemetry  # noqa: F401 - these register the scaled-on series in REGISTRY
from lobe.devtools.servers.binaries import debian_binary

ROOT = Path(__file__).resolve().parents[2]
ADAPTER = ROOT / "deploy" / "prometheus-adapter" / "values.yaml"
NATS = ROOT / "deploy" / "nats" / "values.yaml"
ENVIRONMENTS = ("staging", "production")


def load(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text())
    assert isinstance(data, dict)
    return data


def umbrella(env: str) -> dict[str, Any]:
    return load(ROOT / "helm" / "lobe" / f"values-{env}.yaml")


def adapter_rules() -> dict[str, dict[str, Any]]:
    return {rule["name"]["as"]: rule for rule in load(ADAPTER)["rules"]["custom"]}


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_every_pods_metric_an_hpa_scales_on_is_served_by_the_adapter(env: str) -> None:
    wanted = {
        metric["name"]
        for service in ("gateway", "chat-worker", "billing", "metrics")
        for metric in umbrella(env)[service].get("autoscaling", {}).get("podsMetrics", [])
    }
    assert wanted == {"http_requests_per_second", "worker_streams_active"}
    assert wanted <= set(adapter_rules())


def test_requests_per_second_is_the_gateway_request_counter_rate_over_two_minutes_per_pod() -> None:
    rule = adapter_rules()["http_requests_per_second"]
    assert rule["seriesQuery"].startswith("lobe_http_request_duration_seconds_count{")
    assert rule["metricsQuery"] == "sum(rate(<<.Series>>{<<.LabelMatchers>>}[2m])) by (<<.GroupBy>>)"
    assert rule["resources"]["overrides"]["pod"] == {"resource": "pod"}
    workers = adapter_rules()["worker_streams_active"]
    assert workers["seriesQuery"].startswith("lobe_worker_streams_active{")


def test_adapter_queries_are_valid_promql(tmp_path: Path) -> None:
    promtool = debian_binary("promtool", "prometheus")
    rules = []
    for name, rule in adapter_rules().items():
        series = rule["name"]["matches"].strip("^$")
        # The adapter fills these in per request; any concrete values make the same shape.
        query = (
            rule["metricsQuery"]
            .replace("<<.Series>>", series)
            .replace("<<.LabelMatchers>>", 'namespace="lobe",pod=~"gateway-.*"')
            .replace("<<.GroupBy>>", "pod")
        )
        rules.append({"record": f"adapter:{name}", "expr": query})
        rules.append({"record": f"adapter:{name}:series", "expr": rule["seriesQuery"]})
    path = tmp_path / "adapter-rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "adapter", "rules": rules}]}))
    checked = subprocess.run([promtool, "check", "rules", path], capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_nats_values_make_a_three_node_jetstream_cluster_on_file_storage() -> None:
    config = load(NATS)["config"]
    assert config["cluster"] == {"enabled": True, "replicas": 3}
    jetstream = config["jetstream"]
    assert jetstream["enabled"] is True
    assert jetstream["fileStore"]["enabled"] is True
    assert jetstream["fileStore"]["pvc"]["enabled"] is True
    assert jetstream["memoryStore"]["enabled"] is False


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_the_release_points_at_that_cluster_with_no_more_stream_replicas_than_nodes(env: str) -> None:
    nats = umbrella(env)["global"]["nats"]
    # `helm install nats ... -n nats` (docs/deploy.md): the chart's client Service is nats.nats.
    assert nats["url"] == "nats://nats.nats.svc:4222"
    assert nats["streamReplicas"] in range(1, load(NATS)["config"]["cluster"]["replicas"] + 1)
    assert umbrella("production")["global"]["nats"]["streamReplicas"] == 3


def test_the_series_each_adapter_rule_serves_is_exported_by_the_service_it_scales() -> None:
    """An adapter rule over a series nobody exports serves nothing, and an HPA whose metric fails
    never scales down: hold each rule's series to the registry of the service that exports it."""
    exported = {
        family.name + suffix
        for family in REGISTRY.collect()
        for suffix in ({"histogram": "_count"}.get(family.type, ""),)
    }
    for name, rule in adapter_rules().items():
        series = rule["name"]["matches"].strip("^$")
        assert series in exported, f"{name}: {series} is exported by no service"
        assert rule["seriesQuery"].startswith(series + "{")


def test_nats_serves_tls_and_only_prometheus_may_reach_its_monitor_port(tmp_path: Path) -> None:
    values = load(NATS)
    assert values["config"]["nats"]["tls"] == {"enabled": True, "secretName": "nats-server-tls"}
    monitor = values["config"]["monitor"]["port"]
    [policy] = [r for r in values["extraResources"] if r["kind"] == "NetworkPolicy"]
    rules = policy["spec"]["ingress"]
    for rule in rules:
        ports = {p["port"] for p in rule["ports"]}
        if monitor in ports:
            assert rule["from"] == [
                {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}
            ]
    open_to_all = [rule for rule in rules if "from" not in rule]
    assert [p["port"] for rule in open_to_all for p in rule["ports"]] == [4222]  # clients, authenticated
    (tmp_path / "policy.yaml").write_text(yaml.safe_dump(policy))
    kv = Path(sys.executable).parent / "kubernetes-validate"
    checked = subprocess.run(
        [kv, "-k", "1.30.0", "--strict", "--quiet", tmp_path / "policy.yaml"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
