{{/*
Prometheus Operator scrape config for the service's /metrics. `labels` must match the Prometheus'
serviceMonitorSelector (kube-prometheus-stack: release: <its release name>). jobLabel makes the job
the service's name ("gateway"), as compose's scrape jobs are, so the one rules file
(deploy/prometheus/rules) holds in both.
*/}}
{{- define "lobe-common.servicemonitor" -}}
{{- if .Values.serviceMonitor.enabled -}}
apiVersion: monitoring.coreos.com/v1
kind: ServiceMonitor
metadata:
  name: {{ include "lobe-common.fullname" . }}
  namespace: {{ default .Release.Namespace .Values.serviceMonitor.namespace }}
  labels:
    {{- include "lobe-common.labels" . | nindent 4 }}
    {{- with .Values.serviceMonitor.labels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  jobLabel: app.kubernetes.io/name
  namespaceSelector:
    matchNames:
      - {{ .Release.Namespace }}
  selector:
    matchLabels:
      {{- include "lobe-common.selectorLabels" . | nindent 6 }}
  endpoints:
    - port: {{ include "lobe-common.metricsPortName" . }}
      path: /metrics
      interval: {{ .Values.serviceMonitor.interval }}
      scrapeTimeout: {{ .Values.serviceMonitor.scrapeTimeout }}
{{- end -}}
{{- end -}}
