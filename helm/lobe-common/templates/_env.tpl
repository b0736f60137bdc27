{{/*
Environment of the service container, in three parts:
- `config` (non-secret settings) from the chart's ConfigMap via envFrom;
- `secretEnv` (VAR: key) from the existing Secret, so no credential is ever written in values;
- `extraEnv` as literal EnvVar objects, for anything else (fieldRef and so on).
*/}}
{{- define "lobe-common.envFrom" -}}
- configMapRef:
    name: {{ include "lobe-common.fullname" . }}
{{- end -}}

{{- define "lobe-common.env" -}}
{{- /* The listener follows containerPort, so the port is stated once. */}}
- name: {{ .Values.listenEnv.host }}
  value: "0.0.0.0"
- name: {{ .Values.listenEnv.port }}
  value: {{ .Values.containerPort | quote }}
{{- with .Values.opsPort }}
{{- /* A separate ops listener (the gateway's): health and /metrics, never behind the Ingress. */}}
- name: OPS_HOST
  value: "0.0.0.0"
- name: OPS_PORT
  value: {{ . | quote }}
{{- end }}
- name: OTEL_SERVICE_NAME
  value: {{ include "lobe-common.name" . | quote }}
{{- /*
NATS as the release sees it, the same for every service (env wins over the ConfigMap): every
service declares the streams at start, so a replica count differing between two would flap.
*/}}
{{- $nats := (.Values.global | default dict).nats | default dict }}
{{- if $nats.urlSecretKey }}
- name: NATS_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "lobe-common.secretName" . }}
      key: {{ $nats.urlSecretKey }}
{{- else if $nats.url }}
- name: NATS_URL
  value: {{ $nats.url | quote }}
{{- end }}
- name: NATS_STREAM_REPLICAS
  value: {{ $nats.streamReplicas | default 1 | quote }}
{{- if $nats.perServiceUsers }}
{{- /* Its own NATS user, named like the service (lobe.shared.catalog.permissions). */}}
- name: NATS_USER
  value: {{ include "lobe-common.name" . | quote }}
- name: NATS_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "lobe-common.secretName" . }}
      key: {{ printf "nats-password-%s" (include "lobe-common.name" .) }}
{{- end }}
- name: POD_NAME
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
{{- if .Values.secretEnv }}
{{- $secret := include "lobe-common.secretName" . }}
{{- range $var, $ref := .Values.secretEnv }}
- name: {{ $var }}
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: {{ $ref.key }}
      optional: {{ $ref.optional | default false }}
{{- end }}
{{- end }}
{{- include "lobe-common.tls.env" . }}
{{- include "lobe-common.files.env" . }}
{{- include "lobe-common.signIn.env" . }}
{{- with .Values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end -}}
