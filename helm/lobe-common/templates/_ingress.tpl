{{/*
Optional ingress (the gateway's); streaming needs buffering off and long read timeouts. Only the
listed public API paths are routed (with sign-in on, also /auth and /.well-known: _signin.tpl),
and only to the `http` port: /metrics lives on the ops port.
*/}}
{{- define "lobe-common.ingress" -}}
{{- if .Values.ingress.enabled -}}
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: {{ include "lobe-common.fullname" . }}
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "lobe-common.labels" . | nindent 4 }}
  {{- with .Values.ingress.annotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
spec:
  {{- with .Values.ingress.className }}
  ingressClassName: {{ . }}
  {{- end }}
  {{- with .Values.ingress.tls }}
  tls:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  rules:
    - host: {{ .Values.ingress.host | quote }}
      http:
        paths:
          {{- range (include "lobe-common.ingress.paths" . | fromJsonArray) }}
          - path: {{ . }}
            pathType: Prefix
            backend:
              service:
                name: {{ include "lobe-common.fullname" $ }}
                port:
                  name: http
          {{- end }}
{{- end -}}
{{- end -}}
