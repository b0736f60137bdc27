{{/* Names and labels, kept within the 63 characters Kubernetes allows in names and label values. */}}

{{- define "lobe-common.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "lobe-common.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "lobe-common.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Selector labels: immutable on a Deployment, so only the stable ones. */}}
{{- define "lobe-common.selectorLabels" -}}
app.kubernetes.io/name: {{ include "lobe-common.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "lobe-common.labels" -}}
helm.sh/chart: {{ include "lobe-common.chart" . }}
{{ include "lobe-common.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: lobe
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/*
`helm test` pods: not the selector labels (a Service would count the pod as an endpoint and a
NetworkPolicy would confine it), but a component every service's NetworkPolicy lets in.
*/}}
{{- define "lobe-common.testLabels" -}}
helm.sh/chart: {{ include "lobe-common.chart" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: helm-test
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: lobe
{{- end -}}

{{- define "lobe-common.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "lobe-common.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/*
The existing Secret holding this service's credentials: the chart's own reference, else the
global one, else the convention "<release>-lobe". The chart never creates it: credentials are
never written into values.
*/}}
{{- define "lobe-common.secretName" -}}
{{- $global := (.Values.global | default dict) -}}
{{- .Values.existingSecret | default $global.existingSecret | default (printf "%s-lobe" .Release.Name) -}}
{{- end -}}

{{/* NOTES.txt lines telling the operator which Secret keys the release reads. */}}
{{- define "lobe-common.notes.secrets" -}}
{{- if .Values.secretEnv }}
Credentials are read from the existing Secret "{{ include "lobe-common.secretName" . }}" (never from values):
{{- range $var, $ref := .Values.secretEnv }}
  {{ $var }} <- key "{{ $ref.key }}"{{ if $ref.optional }} (optional){{ end }}
{{- end }}
Create it before the pods start, for example:
  kubectl -n {{ .Release.Namespace }} create secret generic {{ include "lobe-common.secretName" . }}{{ range $var, $ref := .Values.secretEnv }} --from-literal={{ $ref.key }}=...{{ end }}
{{- end }}
{{- end -}}

{{/* The named port serving /metrics: the separate ops port where the service has one. */}}
{{- define "lobe-common.metricsPortName" -}}
{{- if .Values.opsPort }}ops{{ else }}http{{ end -}}
{{- end -}}
