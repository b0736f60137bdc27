"""Prometheus (Debian's `prometheus`) scraping the targets a test names, and node-exporter
(Debian's `prometheus-node-exporter`) for the host's series: loopback only, free ports, the
scrape config generated here. `query` asks Prometheus's HTTP API (/api/v1/query)."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from lobe.devtools.ports import LOOPBACK
from lobe.devtools.servers.base import EmbeddedServer
from lobe.devtools.servers.binaries import debian_binary

# The collectors the dashboard's system panel reads; the others only slow every scrape down.
NODE_COLLECTORS = ("cpu", "meminfo", "loadavg", "filesystem")


def answers_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as resp:
            return bool(resp.status == 200)
    except (OSError, urllib.error.URLError):
        return False


class PromQLError(RuntimeError):
    """Prometheus refused a query; carries its errorType and message."""


class PrometheusServer(EmbeddedServer):
    """`scrape` maps a job name to its targets (`host:port`, each serving /metrics)."""

    name = "prometheus"

    def __init__(
        self,
        scrape: Mapping[str, Sequence[str]],
        interval_s: float = 1.0,
        rule_files: Sequence[Path] = (),
        home: Path | str | None = None,
        port: int | None = None,
        host: str = LOOPBACK,
    ) -> None:
        super().__init__(home, port, host)
        self.scrape = {job: list(targets) for job, targets in scrape.items()}
        self.interval_s = interval_s
        self.rule_files = [str(path) for path in rule_files]
        self.config_path = self.home / "prometheus.yml"

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def config(self) -> dict[str, Any]:
        interval = f"{round(self.interval_s * 1000)}ms"
        return {
            "global": {"scrape_interval": interval, "evaluation_interval": interval},
            "rule_files": self.rule_files,
            "scrape_configs": [
                {"job_name": job, "static_configs": [{"targets": targets}]}
                for job, targets in self.scrape.items()
            ],
        }

    def prepare(self) -> None:
        self.config_path.write_text(yaml.safe_dump(self.config(), sort_keys=False))

    def command(self) -> list[str]:
        return [
            str(debian_binary("prometheus", "prometheus")),
            f"--config.file={self.config_path}",
            f"--storage.tsdb.path={self.home / 'data'}",
            f"--web.listen-address={self.host}:{self.port}",
            "--log.level=warn",
        ]

    def is_ready(self) -> bool:
        return answers_ok(f"{self.url}/-/ready")

    def api(self, path: str, **params: str) -> Any:
        """The `data` of a successful answer from /api/v1/<path>."""
        url = f"{self.url}/api/v1/{path}?{urllib.parse.urlencode(params)}"
        try:
            with urllib.request.urlopen(url, timeout=10) as resp:
                body = json.load(resp)
        except urllib.error.HTTPError as exc:
            body = json.load(exc)
        if body.get("status") != "success":
            raise PromQLError(f"{body.get('errorType')}: {body.get('error')} ({params})")
        return body["data"]

    def query(self, expr: str, at: float | None = None) -> list[dict[str, Any]]:
        """An instant query's result vector: [{"metric": {labels}, "value": [ts, "value"]}, ...]."""
        params = {"query": expr} if at is None else {"query": expr, "time": f"{at:.3f}"}
        data = self.api("query", **params)
        if data["resultType"] != "vector":
            raise PromQLError(f"{expr} is a {data['resultType']}, not an instant vector")
        result: list[dict[str, Any]] = data["result"]
        return result

    def series_names(self) -> set[str]:
        """Every metric name Prometheus holds."""
        return set(self.api("label/__name__/values"))


class NodeExporter(EmbeddedServer):
    name = "node-exporter"

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def target(self) -> str:
        return f"{self.host}:{self.port}"

    def command(self) -> list[str]:
        return [
            str(debian_binary("prometheus-node-exporter", "prometheus-node-exporter")),
            f"--web.listen-address={self.target}",
            "--collector.disable-defaults",
            *(f"--collector.{name}" for name in NODE_COLLECTORS),
        ]

    def is_ready(self) -> bool:
        return answers_ok(f"{self.url}/metrics")
