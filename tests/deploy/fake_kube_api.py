"""A Kubernetes API server that knows only what `helm upgrade --install --dry-run` and `helm history`
ask: its version, API discovery for the kinds the cluster provides (docs/deploy.md, "What the
cluster provides"), and a release's history (Helm 3's release Secrets; empty by default). Helm
maps every rendered manifest through this discovery, so a kind the cluster does not serve (a CRD
not installed) fails the dry-run as it would on a real cluster. Loopback only; every request is
recorded."""

from __future__ import annotations

import base64
import gzip
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

KUBE_VERSION = {"major": "1", "minor": "30", "gitVersion": "v1.30.0", "platform": "linux/amd64"}

# group/version -> [(kind, plural, namespaced)]
RESOURCES: dict[str, list[tuple[str, str, bool]]] = {
    "v1": [
        ("Namespace", "namespaces", False),
        ("Secret", "secrets", True),
        ("ConfigMap", "configmaps", True),
        ("Service", "services", True),
        ("ServiceAccount", "serviceaccounts", True),
        ("Pod", "pods", True),
        ("PersistentVolumeClaim", "persistentvolumeclaims", True),
    ],
    "apps/v1": [("Deployment", "deployments", True), ("StatefulSet", "statefulsets", True)],
    "batch/v1": [("Job", "jobs", True), ("CronJob", "cronjobs", True)],
    "autoscaling/v2": [("HorizontalPodAutoscaler", "horizontalpodautoscalers", True)],
    "policy/v1": [("PodDisruptionBudget", "poddisruptionbudgets", True)],
    "networking.k8s.io/v1": [("Ingress", "ingresses", True), ("NetworkPolicy", "networkpolicies", True)],
    "rbac.authorization.k8s.io/v1": [("Role", "roles", True), ("RoleBinding", "rolebindings", True)],
    # Prometheus Operator's CRDs.
    "monitoring.coreos.com/v1": [
        ("ServiceMonitor", "servicemonitors", True),
        ("PodMonitor", "podmonitors", True),
        ("PrometheusRule", "prometheusrules", True),
    ],
}


def _resource_list(group_version: str) -> dict[str, Any]:
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version,
        "resources": [
            {
                "name": plural,
                "singularName": kind.lower(),
                "namespaced": namespaced,
                "kind": kind,
                "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"],
            }
            for kind, plural, namespaced in RESOURCES[group_version]
        ],
    }


def _group_list() -> dict[str, Any]:
    groups: dict[str, list[str]] = {}
    for group_version in RESOURCES:
        if "/" in group_version:
            group, version = group_version.split("/")
            groups.setdefault(group, []).append(version)
    return {
        "kind": "APIGroupList",
        "apiVersion": "v1",
        "groups": [
            {
                "name": group,
                "versions": [{"groupVersion": f"{group}/{v}", "version": v} for v in versions],
                "preferredVersion": {"groupVersion": f"{group}/{versions[0]}", "version": versions[0]},
            }
            for group, versions in groups.items()
        ],
    }


def _release_secret(name: str, namespace: str, revision: int, status: str) -> dict[str, Any]:
    """A release revision stored the way Helm 3's secrets driver stores it: gzip, then base64."""
    release = {
        "name": name,
        "namespace": namespace,
        "version": revision,
        "info": {"status": status, "description": status, "last_deployed": "2026-12-01T00:00:00Z"},
        "chart": {
            "metadata": {"name": "lobe", "version": "0.1.0", "appVersion": "0.1.0", "apiVersion": "v2"}
        },
    }
    encoded = base64.b64encode(gzip.compress(json.dumps(release).encode()))
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "helm.sh/release.v1",
        "metadata": {
            "name": f"sh.helm.release.v1.{name}.v{revision}",
            "namespace": namespace,
            "labels": {"name": name, "owner": "helm", "status": status, "version": str(revision)},
        },
        "data": {"release": base64.b64encode(encoded).decode()},
    }


def _answer(path: str, releases: list[dict[str, Any]]) -> tuple[int, dict[str, Any]]:
    if path == "/version":
        return 200, KUBE_VERSION
    if path == "/api":
        return 200, {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []}
    if path == "/apis":
        return 200, _group_list()
    if path == "/api/v1":
        return 200, _resource_list("v1")
    if path.startswith("/apis/") and path.count("/") == 3 and path[len("/apis/") :] in RESOURCES:
        return 200, _resource_list(path[len("/apis/") :])
    if path.startswith("/api/v1/namespaces/") and path.endswith("/secrets"):
        return 200, {"kind": "SecretList", "apiVersion": "v1", "metadata": {}, "items": releases}
    return 404, {"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404}


@contextmanager
def fake_kube_api(
    release: tuple[str, str] = ("lobe", "default"), revisions: tuple[str, ...] = ()
) -> Iterator[tuple[str, list[str]]]:
    """Yields (server URL, the list of "METHOD path" requests it received). `revisions`: the
    statuses of `release` (name, namespace)'s revisions 1, 2, …"""
    requests: list[str] = []
    releases = [_release_secret(*release, n, status) for n, status in enumerate(revisions, 1)]

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            requests.append(f"{self.command} {self.path}")
            status, body = _answer(self.path.split("?")[0], releases)
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_POST = do_PUT = do_PATCH = do_DELETE = do_GET

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", requests
    finally:
        server.shutdown()
        server.server_close()
