{{/* Non-secret settings; the deployment's checksum annotation rolls pods when they change. */}}
{{- define "lobe-common.configmap" -}}
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ include "lobe-common.fullname" . }}
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "lobe-common.labels" . | nindent 4 }}
data:
  {{- range $key, $value := .Values.config }}
  {{ $key }}: {{ tpl (toString $value) $ | quote }}
  {{- end }}
{{- end -}}
