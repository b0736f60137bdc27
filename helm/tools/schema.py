"""Write (or --check) values.schema.json for every Lobe service chart and the umbrella chart.

The service charts share one values layout from the lobe-common library, so their schemas are
built here from one definition plus each chart's extras; editing a JSON schema by hand four
times is how they drift apart. Every object is closed (additionalProperties: false) so a typo in
a values file fails `helm lint` instead of being silently ignored.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

HELM = Path(__file__).resolve().parent.parent
SERVICE_CHARTS = ("gateway", "chat-worker", "billing", "metrics")
Schema = dict[str, Any]

STRING: Schema = {"type": "string"}
BOOL: Schema = {"type": "boolean"}
PORT: Schema = {"type": "integer", "minimum": 1, "maximum": 65535}
OPEN_MAP: Schema = {"type": "object"}  # Kubernetes objects passed through verbatim
LIST_OF_OBJECTS: Schema = {"type": "array", "items": {"type": "object"}}
STRING_MAP: Schema = {"type": "object", "additionalProperties": {"type": "string"}}
INT_OR_PERCENT: Schema = {
    "anyOf": [{"type": "integer", "minimum": 0}, {"type": "string", "pattern": "^([0-9]+%?)?$"}]
}
ENV_NAME = "^[A-Z_][A-Z0-9_]*$"


def closed(properties: dict[str, Schema], required: list[str] | None = None, **extra: Any) -> Schema:
    return {
        "type": "object",
        "additionalProperties": False,
        "properties": properties,
        "required": required if required is not None else sorted(properties),
        **extra,
    }


def optional(properties: dict[str, Schema]) -> Schema:
    return closed(properties, required=[])


def probe(success_must_be_one: bool) -> Schema:
    seconds = {"type": "integer", "minimum": 0}
    return closed(
        {
            "enabled": BOOL,
            "path": {"type": "string", "pattern": "^/"},
            "initialDelaySeconds": seconds,
            "periodSeconds": {"type": "integer", "minimum": 1},
            "timeoutSeconds": {"type": "integer", "minimum": 1},
            "failureThreshold": {"type": "integer", "minimum": 1},
            # Kubernetes rejects anything but 1 for liveness and startup probes.
            "successThreshold": {"const": 1} if success_must_be_one else {"type": "integer", "minimum": 1},
        }
    )


GLOBAL = optional(
    {
        "imageRegistry": STRING,
        "imagePullSecrets": {"type": "array", "items": STRING},
        "existingSecret": STRING,
        "imageTag": STRING,
        "nats": optional(
            {
                "url": STRING,
                "urlSecretKey": STRING,
                # JetStream allows 1 to 5 replicas; the streams get the same count everywhere.
                "streamReplicas": {"type": "integer", "minimum": 1, "maximum": 5},
                # A NATS user per service (deploy/nats/auth-values.yaml), password in existingSecret.
                "perServiceUsers": BOOL,
            }
        ),
        # TLS to each backing service, verified against one CA bundle (lobe-common's _tls.tpl).
        "tls": optional(
            {
                "caConfigMap": STRING,
                "caKey": {"type": "string", "pattern": "^[-._a-zA-Z0-9]+$"},
                "nats": BOOL,
                "postgres": BOOL,
                "redis": BOOL,
            }
        ),
    }
)
PEERS: Schema = LIST_OF_OBJECTS  # NetworkPolicyPeer objects, validated by Kubernetes' own schema
CIDR: Schema = {"type": "string", "pattern": "^[0-9a-fA-F.:]+/[0-9]{1,3}$"}
HPA_POLICY = closed(
    {
        "type": {"enum": ["Pods", "Percent"]},
        "value": {"type": "integer", "minimum": 1},
        "periodSeconds": {"type": "integer", "minimum": 1, "maximum": 1800},
    }
)
# HorizontalPodAutoscalerBehavior with scaleDown required: Kubernetes' default may remove every
# surplus pod at once, so every chart states how fast it lets pods go.
HPA_BEHAVIOR = closed(
    {
        "scaleDown": closed(
            {
                "stabilizationWindowSeconds": {"type": "integer", "minimum": 0, "maximum": 3600},
                "selectPolicy": {"enum": ["Max", "Min", "Disabled"]},
                "policies": {"type": "array", "minItems": 1, "items": HPA_POLICY},
            },
            required=["stabilizationWindowSeconds", "policies"],
        ),
        "scaleUp": OPEN_MAP,
    },
    required=["scaleDown"],
)


def network_policy() -> Schema:
    return closed(
        {
            "enabled": BOOL,
            "ingressFrom": PEERS,
            "metricsFrom": PEERS,
            "dns": closed({"to": PEERS}),
            "nats": closed({"port": PORT, "to": PEERS}),
            # Named NetworkPolicyEgressRule objects; null drops one a values file inherited.
            "egress": {"type": "object", "additionalProperties": {"type": ["object", "null"]}},
        }
    )


def service_schema(chart: str) -> Schema:
    props: dict[str, Schema] = {
        "global": GLOBAL,
        "nameOverride": STRING,
        "fullnameOverride": STRING,
        "commonLabels": STRING_MAP,
        "image": closed(
            {
                "registry": STRING,
                "repository": {"type": "string", "minLength": 1},
                "tag": STRING,
                "digest": {"type": "string", "pattern": "^(sha256:[a-f0-9]{64})?$"},
                "pullPolicy": {"enum": ["Always", "IfNotPresent", "Never"]},
                "pullSecrets": {"type": "array", "items": STRING},
            }
        ),
        "replicaCount": {"type": "integer", "minimum": 0},
        "updateStrategy": OPEN_MAP,
        "command": {"type": "array", "items": STRING},
        "args": {"type": "array", "items": STRING},
        "containerPort": PORT,
        "opsPort": {"type": "integer", "minimum": 0, "maximum": 65535},
        "listenEnv": closed(
            {"host": {"type": "string", "pattern": ENV_NAME}, "port": {"type": "string", "pattern": ENV_NAME}}
        ),
        "config": {
            "type": "object",
            "description": "Non-secret environment; values are templated with tpl.",
            "propertyNames": {"pattern": ENV_NAME},
            "additionalProperties": {"type": ["string", "number", "boolean"]},
            "not": {"anyOf": [{"required": [k]} for k in (*SECRET_VARS, *RELEASE_WIDE_VARS)]},
        },
        "existingSecret": STRING,
        "secretEnv": {
            "type": "object",
            "description": "Environment variables read from existingSecret: VAR -> {key, optional}.",
            "propertyNames": {"pattern": ENV_NAME},
            "additionalProperties": closed(
                {"key": {"type": "string", "minLength": 1}, "optional": BOOL}, required=["key"]
            ),
        },
        "extraEnv": LIST_OF_OBJECTS,
        "probes": closed({"startup": probe(True), "liveness": probe(True), "readiness": probe(False)}),
        "service": closed(
            {
                "type": {"enum": ["ClusterIP", "NodePort", "LoadBalancer"]},
                "port": PORT,
                "annotations": STRING_MAP,
            }
        ),
        "serviceAccount": closed(
            {"create": BOOL, "name": STRING, "annotations": STRING_MAP, "automountToken": BOOL}
        ),
        "podAnnotations": STRING_MAP,
        "podLabels": STRING_MAP,
        "podSecurityContext": OPEN_MAP,
        "containerSecurityContext": OPEN_MAP,
        "resources": OPEN_MAP,
        "terminationGracePeriodSeconds": {"type": "integer", "minimum": 0},
        "preStopSleepSeconds": {"type": "integer", "minimum": 0},
        "configFiles": {
            "type": "object",
            "description": "Operator-edited YAML files mounted at /etc/lobe/files: name -> {env, content}.",
            "propertyNames": {"pattern": "^[a-z0-9][-a-z0-9_.]*\\.ya?ml$"},
            "additionalProperties": closed(
                {"env": {"type": "string", "pattern": ENV_NAME}, "content": OPEN_MAP, "reloaded": BOOL},
                required=["env", "content"],
            ),
        },
        "pdb": closed({"create": BOOL, "minAvailable": INT_OR_PERCENT, "maxUnavailable": INT_OR_PERCENT}),
        "autoscaling": closed(
            {
                "enabled": BOOL,
                "minReplicas": {"type": "integer", "minimum": 1},
                "maxReplicas": {"type": "integer", "minimum": 1},
                "targetCPUUtilizationPercentage": {"type": ["integer", "null"], "minimum": 1, "maximum": 100},
                "targetMemoryUtilizationPercentage": {
                    "type": ["integer", "null"],
                    "minimum": 1,
                    "maximum": 100,
                },
                "podsMetrics": {
                    "type": "array",
                    "items": closed(
                        {
                            "name": {"type": "string", "minLength": 1},
                            "averageValue": {
                                "type": ["string", "integer"],
                                "pattern": "^[0-9]+(\\.[0-9]+)?m?$",
                            },
                        }
                    ),
                },
                "behavior": HPA_BEHAVIOR,
            },
            # A null target is how values switch a metric off, and Helm drops null keys entirely.
            required=["enabled", "minReplicas", "maxReplicas", "behavior"],
        ),
        "serviceMonitor": closed(
            {
                "enabled": BOOL,
                "namespace": STRING,
                "interval": {"type": "string", "pattern": "^[0-9]+(ms|s|m)$"},
                "scrapeTimeout": {"type": "string", "pattern": "^[0-9]+(ms|s|m)$"},
                "labels": STRING_MAP,
            }
        ),
        "networkPolicy": network_policy(),
        "topologySpread": closed({"enabled": BOOL, "topologyKey": {"type": "string", "minLength": 1}}),
        "nodeSelector": STRING_MAP,
        "tolerations": LIST_OF_OBJECTS,
        "affinity": OPEN_MAP,
        "extraVolumes": LIST_OF_OBJECTS,
        "extraVolumeMounts": LIST_OF_OBJECTS,
    }
    props.update(EXTRAS.get(chart, {}))
    # Helm hands each dependency a values block, the library chart included (it takes none).
    props["lobe-common"] = optional({"global": GLOBAL})
    # The umbrella chart's on/off switch for this service (its dependency condition).
    props["enabled"] = BOOL
    return {
        "$schema": "https://json-schema.org/draft-07/schema#",
        "title": f"Values of the Lobe {chart} chart",
        **closed(props, required=sorted(set(props) - {"global", "lobe-common", "enabled"})),
    }


# Variables that carry credentials: only ever through secretEnv, never in the ConfigMap.
SECRET_VARS = (
    "DATABASE_URL",
    "REDIS_URL",
    "CACHE_REDIS_URL",
    "OPENAI_API_KEY",
    "ANTHROPIC_API_KEY",
    "GEMINI_API_KEY",
    "GOOGLE_API_KEY",
    "AZURE_OPENAI_API_KEY",
    "GATEWAY_API_KEYS",
    "BILLING_ADMIN_TOKEN",
    "SESSION_KEYS",
    "OIDC_CLIENT_SECRET",
    "GITHUB_CLIENT_SECRET",
    "NATS_PASSWORD",
)
# Set once for the whole release (global.nats): differing per service, the streams would flap.
RELEASE_WIDE_VARS = ("NATS_STREAM_REPLICAS",)

EXTRAS: dict[str, dict[str, Schema]] = {
    "gateway": {
        "ingress": closed(
            {
                "enabled": BOOL,
                "className": STRING,
                "host": STRING,
                "annotations": STRING_MAP,
                "paths": {
                    "type": "array",
                    "minItems": 1,
                    "items": {"type": "string", "pattern": "^/"},
                    # /metrics is served on the ops port, and never routed.
                    "not": {"contains": {"pattern": "^/(metrics)?$"}},
                },
                "tls": LIST_OF_OBJECTS,
            }
        ),
        "signIn": closed(
            {
                "enabled": BOOL,
                "existingSecret": STRING,
                "publicUrl": {"type": "string", "pattern": "^(https?://[^/]+)?$"},
                "allowedEmailDomains": STRING,
                "sessionKeysKey": {"type": "string", "minLength": 1},
                "oidc": closed(
                    {
                        "enabled": BOOL,
                        "discoveryUrl": {"type": "string", "pattern": "^(https://.+)?$"},
                        "clientId": STRING,
                        "clientSecretKey": {"type": "string", "minLength": 1},
                    }
                ),
                "google": closed(
                    {
                        "enabled": BOOL,
                        "clientId": STRING,
                        "clientSecretKey": {"type": "string", "minLength": 1},
                        "allowedDomains": STRING,
                    }
                ),
                "github": closed(
                    {
                        "enabled": BOOL,
                        "clientId": STRING,
                        "clientSecretKey": {"type": "string", "minLength": 1},
                    }
                ),
                # OIDC_PROVIDERS: each an OpenID provider of its own (the gateway's OIDC_<NAME>_*).
                "providers": {
                    "type": "array",
                    "items": closed(
                        {
                            # The gateway's provider names: not one that has variables of its own.
                            "name": {
                                "type": "string",
                                "pattern": "^[a-z][a-z0-9_]{0,31}$",
                                "not": {"enum": ["oidc", "google", "github"]},
                            },
                            "displayName": STRING,
                            "issuer": {"type": "string", "pattern": "^https://.+$"},
                            "clientId": {"type": "string", "minLength": 1},
                            "existingSecret": STRING,
                            "clientSecretKey": {"type": "string", "minLength": 1},
                            "allowedDomains": STRING,
                        },
                        required=["name", "issuer", "clientId", "clientSecretKey"],
                    ),
                },
                "egressCIDRs": {"type": "array", "items": CIDR},
            }
        ),
    },
    "billing": {
        "backup": closed(
            {
                "enabled": BOOL,
                "schedule": {"type": "string", "minLength": 9},
                "keep": {"type": "integer", "minimum": 1},
                "image": closed(
                    {
                        "repository": {"type": "string", "minLength": 1},
                        "tag": {"type": "string", "minLength": 1},
                        "pullPolicy": {"enum": ["Always", "IfNotPresent", "Never"]},
                    }
                ),
                "persistence": closed({"existingClaim": STRING, "storageClass": STRING, "size": STRING}),
                "activeDeadlineSeconds": {"type": "integer", "minimum": 1},
                "resources": OPEN_MAP,
            }
        ),
        "migrations": closed(
            {
                "enabled": BOOL,
                "command": {"type": "array", "items": STRING, "minItems": 1},
                "backoffLimit": {"type": "integer", "minimum": 0},
                "activeDeadlineSeconds": {"type": "integer", "minimum": 1},
                "resources": OPEN_MAP,
            }
        ),
    },
}


def umbrella_schema() -> Schema:
    # Each subchart validates its own block against its own schema; here only the switch is checked.
    sub = {"type": "object", "properties": {"enabled": BOOL}, "required": ["enabled"]}
    dashboards = closed({"enabled": BOOL, "namespace": STRING, "labels": STRING_MAP})
    rules = closed({"enabled": BOOL, "namespace": STRING, "labels": STRING_MAP})
    return {
        "$schema": "https://json-schema.org/draft-07/schema#",
        "title": "Values of the Lobe umbrella chart",
        **closed(
            {
                "global": GLOBAL,
                **dict.fromkeys(SERVICE_CHARTS, sub),
                "grafanaDashboards": dashboards,
                "prometheusRule": rules,
            }
        ),
    }


def expected() -> dict[Path, str]:
    out = {HELM / chart / "values.schema.json": service_schema(chart) for chart in SERVICE_CHARTS}
    out[HELM / "lobe" / "values.schema.json"] = umbrella_schema()
    return {path: json.dumps(schema, indent=2) + "\n" for path, schema in out.items()}


def main(argv: list[str]) -> int:
    check = "--check" in argv
    stale = []
    for path, text in expected().items():
        if check:
            if not path.exists() or path.read_text() != text:
                stale.append(path)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    if stale:
        names = ", ".join(str(p.relative_to(HELM)) for p in stale)
        print(f"stale values.schema.json (run helm/tools/schema.py): {names}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
