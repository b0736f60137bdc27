{{/* registry/repository:tag@digest; the tag defaults to global.imageTag (one build for the whole
release, as `make deploy` sets it), then to the chart's appVersion. */}}
{{- define "lobe-common.image" -}}
{{- $global := (.Values.global | default dict) -}}
{{- $registry := default $global.imageRegistry .Values.image.registry -}}
{{- $ref := .Values.image.repository -}}
{{- if $registry -}}{{- $ref = printf "%s/%s" $registry $ref -}}{{- end -}}
{{- $ref = printf "%s:%s" $ref (.Values.image.tag | default $global.imageTag | default .Chart.AppVersion) -}}
{{- if .Values.image.digest -}}{{- $ref = printf "%s@%s" $ref .Values.image.digest -}}{{- end -}}
{{- $ref -}}
{{- end -}}

{{- define "lobe-common.imagePullSecrets" -}}
{{- $global := (.Values.global | default dict) -}}
{{- $secrets := concat ($global.imagePullSecrets | default list) (.Values.image.pullSecrets | default list) | uniq -}}
{{- with $secrets }}
imagePullSecrets:
{{- range . }}
  - name: {{ . }}
{{- end }}
{{- end }}
{{- end -}}
