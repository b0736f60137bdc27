{{/*
TLS to the backing services (global.tls): one CA bundle, from a ConfigMap of the release's
namespace, mounted read-only into each pod that connects to a backend with TLS on. Which backends a
service reaches follows from the credentials it reads: DATABASE_URL (PostgreSQL), REDIS_URL
(Redis); every service reaches NATS. The services verify the servers against the bundle (their
*_TLS_CA_FILE settings: NATS TLS, sslmode=verify-full, rediss://).
*/}}
{{- define "lobe-common.tls.caDir" -}}/etc/lobe/tls{{- end -}}

{{- define "lobe-common.tls.on" -}}
{{- $tls := (.Values.global | default dict).tls | default dict -}}
{{- $secretEnv := .Values.secretEnv | default dict -}}
{{- if or $tls.nats (and $tls.postgres (hasKey $secretEnv "DATABASE_URL")) (and $tls.redis (hasKey $secretEnv "REDIS_URL")) -}}true{{- end -}}
{{- end -}}

{{- define "lobe-common.tls.caFile" -}}
{{- $tls := (.Values.global | default dict).tls | default dict -}}
{{- printf "%s/%s" (include "lobe-common.tls.caDir" .) ($tls.caKey | default "ca.crt") -}}
{{- end -}}

{{- define "lobe-common.tls.env" -}}
{{- $tls := (.Values.global | default dict).tls | default dict -}}
{{- $secretEnv := .Values.secretEnv | default dict -}}
{{- $ca := include "lobe-common.tls.caFile" . -}}
{{- if $tls.nats }}
- name: NATS_TLS_CA_FILE
  value: {{ $ca | quote }}
{{- end }}
{{- if and $tls.postgres (hasKey $secretEnv "DATABASE_URL") }}
- name: DATABASE_TLS_CA_FILE
  value: {{ $ca | quote }}
{{- end }}
{{- if and $tls.redis (hasKey $secretEnv "REDIS_URL") }}
- name: REDIS_TLS_CA_FILE
  value: {{ $ca | quote }}
{{- end }}
{{- end -}}

{{- define "lobe-common.tls.volumeMount" -}}
{{- if include "lobe-common.tls.on" . }}
- name: backend-ca
  mountPath: {{ include "lobe-common.tls.caDir" . }}
  readOnly: true
{{- end }}
{{- end -}}

{{- define "lobe-common.tls.volume" -}}
{{- if include "lobe-common.tls.on" . }}
{{- $tls := (.Values.global | default dict).tls | default dict }}
- name: backend-ca
  configMap:
    name: {{ required "global.tls: caConfigMap names the ConfigMap holding the backends' CA bundle" $tls.caConfigMap }}
    items:
      - key: {{ $tls.caKey | default "ca.crt" }}
        path: {{ $tls.caKey | default "ca.crt" }}
{{- end }}
{{- end -}}
