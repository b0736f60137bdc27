{{/* Keeps a replica serving through node drains; only meaningful with more than one replica. */}}
{{- define "lobe-common.pdb" -}}
{{- if .Values.pdb.create -}}
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ include "lobe-common.fullname" . }}
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "lobe-common.labels" . | nindent 4 }}
spec:
  {{- if .Values.pdb.maxUnavailable }}
  maxUnavailable: {{ .Values.pdb.maxUnavailable }}
  {{- else }}
  minAvailable: {{ .Values.pdb.minAvailable }}
  {{- end }}
  selector:
    matchLabels:
      {{- include "lobe-common.selectorLabels" . | nindent 6 }}
{{- end -}}
{{- end -}}
