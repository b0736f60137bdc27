{{/*
Default deny, in and out, for the service's pods; then only what the service needs:
- in: `ingressFrom` on the service port (the gateway: the ingress controller), this release's
  `helm test` pods, and `metricsFrom` (Prometheus) on the port that serves /metrics;
- out: DNS, NATS, and the chart's named `egress` rules (billing: PostgreSQL; gateway: Redis;
  chat-worker: the providers on 443). Named, so values files override one rule by its name.
*/}}
{{- define "lobe-common.networkpolicy" -}}
{{- if .Values.networkPolicy.enabled -}}
{{- $np := .Values.networkPolicy -}}
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: {{ include "lobe-common.fullname" . }}
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "lobe-common.labels" . | nindent 4 }}
spec:
  podSelector:
    matchLabels:
      {{- include "lobe-common.selectorLabels" . | nindent 6 }}
  policyTypes: [Ingress, Egress]
  ingress:
    - from:
        {{- with $np.ingressFrom }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
        - podSelector:
            matchLabels:
              app.kubernetes.io/instance: {{ .Release.Name }}
              app.kubernetes.io/component: helm-test
      ports:
        - port: http
          protocol: TCP
    {{- with $np.metricsFrom }}
    - from:
        {{- toYaml . | nindent 8 }}
      ports:
        - port: {{ include "lobe-common.metricsPortName" $ }}
          protocol: TCP
    {{- end }}
  egress:
    - to:
        {{- toYaml $np.dns.to | nindent 8 }}
      ports:
        - port: 53
          protocol: UDP
        - port: 53
          protocol: TCP
    - to:
        {{- toYaml $np.nats.to | nindent 8 }}
      ports:
        - port: {{ $np.nats.port }}
          protocol: TCP
    {{- include "lobe-common.signIn.egress" . | indent 4 }}
    {{- range $name, $rule := $np.egress }}
    {{- if $rule }}
    # {{ $name }}
    - {{- toYaml $rule | nindent 6 }}
    {{- end }}
    {{- end }}
{{- end -}}
{{- end -}}
