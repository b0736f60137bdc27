{{/*
Browser sign-in (the gateway's `signIn` block, docs/auth.md): sessions signed with SESSION_KEYS,
identities from any of an OpenID provider, Google, GitHub and the named OpenID providers of
signIn.providers, all at once. Secrets come from signIn.existingSecret (a named provider's own
existingSecret first; else the release's Secret); client ids and URLs are not secret and come from values. With sign-in on, the
Ingress also routes /auth and /.well-known, and the NetworkPolicy lets the gateway reach the
identity provider on 443.
*/}}
{{- define "lobe-common.signIn.on" -}}
{{- with .Values.signIn }}{{ if .enabled }}true{{ end }}{{ end -}}
{{- end -}}

{{- define "lobe-common.signIn.publicUrl" -}}
{{- $in := .Values.signIn -}}
{{- if $in.publicUrl -}}{{ $in.publicUrl }}
{{- else if .Values.ingress.host -}}http{{ if .Values.ingress.tls }}s{{ end }}://{{ .Values.ingress.host }}
{{- else -}}{{ fail "signIn: set signIn.publicUrl (or ingress.host): the callback URLs the identity provider redirects to" }}
{{- end -}}
{{- end -}}

{{- define "lobe-common.signIn.secretRef" -}}
valueFrom:
  secretKeyRef:
    name: {{ .secret }}
    key: {{ .key }}
{{- end -}}

{{- define "lobe-common.signIn.env" -}}
{{- if include "lobe-common.signIn.on" . }}
{{- $in := .Values.signIn }}
{{- $secret := $in.existingSecret | default (include "lobe-common.secretName" .) }}
{{- if not (or $in.oidc.enabled $in.google.enabled $in.github.enabled $in.providers) }}
{{- fail "signIn: enable signIn.oidc, signIn.google or signIn.github, or list signIn.providers (an identity provider to sign in with)" }}
{{- end }}
- name: GATEWAY_PUBLIC_URL
  value: {{ include "lobe-common.signIn.publicUrl" . | quote }}
- name: SESSION_KEYS
  {{- include "lobe-common.signIn.secretRef" (dict "secret" $secret "key" $in.sessionKeysKey) | nindent 2 }}
{{- with $in.allowedEmailDomains }}
- name: ALLOWED_EMAIL_DOMAINS
  value: {{ . | quote }}
{{- end }}
{{- if $in.oidc.enabled }}
- name: OIDC_DISCOVERY_URL
  value: {{ required "signIn.oidc.discoveryUrl is required" $in.oidc.discoveryUrl | quote }}
- name: OIDC_CLIENT_ID
  value: {{ required "signIn.oidc.clientId is required" $in.oidc.clientId | quote }}
- name: OIDC_CLIENT_SECRET
  {{- include "lobe-common.signIn.secretRef" (dict "secret" $secret "key" $in.oidc.clientSecretKey) | nindent 2 }}
{{- end }}
{{- if $in.google.enabled }}
- name: GOOGLE_CLIENT_ID
  value: {{ required "signIn.google.clientId is required" $in.google.clientId | quote }}
- name: GOOGLE_CLIENT_SECRET
  {{- include "lobe-common.signIn.secretRef" (dict "secret" $secret "key" $in.google.clientSecretKey) | nindent 2 }}
{{- with $in.google.allowedDomains }}
- name: GOOGLE_ALLOWED_DOMAINS
  value: {{ . | quote }}
{{- end }}
{{- end }}
{{- with $in.providers }}
{{- $names := list }}
{{- range . }}{{ $names = append $names .name }}{{ end }}
- name: OIDC_PROVIDERS
  value: {{ join "," $names | quote }}
{{- range . }}
{{- $prefix := printf "OIDC_%s_" (upper .name) }}
- name: {{ $prefix }}ISSUER
  value: {{ .issuer | quote }}
- name: {{ $prefix }}CLIENT_ID
  value: {{ .clientId | quote }}
- name: {{ $prefix }}CLIENT_SECRET
  {{- include "lobe-common.signIn.secretRef" (dict "secret" (.existingSecret | default $secret) "key" .clientSecretKey) | nindent 2 }}
{{- with .displayName }}
- name: {{ $prefix }}DISPLAY_NAME
  value: {{ . | quote }}
{{- end }}
{{- with .allowedDomains }}
- name: {{ $prefix }}ALLOWED_DOMAINS
  value: {{ . | quote }}
{{- end }}
{{- end }}
{{- end }}
{{- if $in.github.enabled }}
- name: GITHUB_CLIENT_ID
  value: {{ required "signIn.github.clientId is required" $in.github.clientId | quote }}
- name: GITHUB_CLIENT_SECRET
  {{- include "lobe-common.signIn.secretRef" (dict "secret" $secret "key" $in.github.clientSecretKey) | nindent 2 }}
{{- end }}
{{- end }}
{{- end -}}

{{- define "lobe-common.signIn.egress" -}}
{{- if and (include "lobe-common.signIn.on" .) .Values.networkPolicy.enabled }}
{{- $cidrs := .Values.signIn.egressCIDRs }}
{{- if not $cidrs }}
{{- fail "signIn with networkPolicy: list the identity provider's address ranges in signIn.egressCIDRs (else the gateway cannot reach it)" }}
{{- end }}
# identity provider (sign-in)
- to:
    {{- range $cidrs }}
    - ipBlock:
        cidr: {{ . }}
    {{- end }}
  ports:
    - port: 443
      protocol: TCP
{{- end }}
{{- end -}}

{{/* The Ingress paths: the chart's, and sign-in's callbacks and session-key set when it is on. */}}
{{- define "lobe-common.ingress.paths" -}}
{{- $paths := .Values.ingress.paths -}}
{{- if include "lobe-common.signIn.on" . -}}
{{- $paths = concat $paths (list "/auth" "/.well-known") | uniq -}}
{{- end -}}
{{- toJson $paths -}}
{{- end -}}
