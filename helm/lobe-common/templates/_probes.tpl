{{/* HTTP probes against the service's own health endpoints (liveness never checks dependencies). */}}
{{- define "lobe-common.probe" -}}
{{- $probe := index .Values.probes .kind -}}
{{- if $probe.enabled }}
{{ .kind }}Probe:
  httpGet:
    path: {{ $probe.path }}
    port: http
  initialDelaySeconds: {{ $probe.initialDelaySeconds }}
  periodSeconds: {{ $probe.periodSeconds }}
  timeoutSeconds: {{ $probe.timeoutSeconds }}
  failureThreshold: {{ $probe.failureThreshold }}
  successThreshold: {{ $probe.successThreshold }}
{{- end }}
{{- end -}}

{{- define "lobe-common.probes" -}}
{{- range $kind := list "startup" "liveness" "readiness" }}
{{- include "lobe-common.probe" (dict "Values" $.Values "kind" $kind) }}
{{- end }}
{{- end -}}
