{{- define "lobe-common.service" -}}
apiVersion: v1
kind: Service
metadata:
  name: {{ include "lobe-common.fullname" . }}
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "lobe-common.labels" . | nindent 4 }}
  {{- with .Values.service.annotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
spec:
  type: {{ .Values.service.type }}
  selector:
    {{- include "lobe-common.selectorLabels" . | nindent 4 }}
  ports:
    - name: http
      port: {{ .Values.service.port }}
      targetPort: http
      protocol: TCP
    {{- with .Values.opsPort }}
    - name: ops
      port: {{ . }}
      targetPort: ops
      protocol: TCP
    {{- end }}
{{- end -}}
