{{/*
Operator-edited YAML files (`configFiles`: file name -> {env, content, reloaded}) in one ConfigMap,
mounted read-only as a directory at /etc/lobe/files, each file's path in its `env` variable (the
chat worker's MODELS_FILE, billing's PRICES_FILE). A directory mount, not subPath, so the kubelet
updates the files in place: a service that re-reads its file (`reloaded: true`) picks up a change
without a restart; the others roll on the checksum of their files.
*/}}
{{- define "lobe-common.files.dir" -}}/etc/lobe/files{{- end -}}

{{- define "lobe-common.files.configmap" -}}
{{- if .Values.configFiles }}
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ include "lobe-common.fullname" . }}-files
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "lobe-common.labels" . | nindent 4 }}
data:
  {{- range $name, $file := .Values.configFiles }}
  {{ $name }}: |
    {{- toYaml $file.content | nindent 4 }}
  {{- end }}
{{- end }}
{{- end -}}

{{/* What a change to rolls the pods: the files their services read only at start. */}}
{{- define "lobe-common.files.checksum" -}}
{{- $static := dict -}}
{{- range $name, $file := .Values.configFiles -}}
{{- if not $file.reloaded }}{{ $_ := set $static $name $file.content }}{{ end -}}
{{- end -}}
{{- if $static }}{{ toYaml $static | sha256sum }}{{ end -}}
{{- end -}}

{{- define "lobe-common.files.env" -}}
{{- range $name, $file := .Values.configFiles }}
- name: {{ $file.env }}
  value: {{ printf "%s/%s" (include "lobe-common.files.dir" $) $name | quote }}
{{- end }}
{{- end -}}

{{- define "lobe-common.files.volumeMount" -}}
{{- if .Values.configFiles }}
- name: config-files
  mountPath: {{ include "lobe-common.files.dir" . }}
  readOnly: true
{{- end }}
{{- end -}}

{{- define "lobe-common.files.volume" -}}
{{- if .Values.configFiles }}
- name: config-files
  configMap:
    name: {{ include "lobe-common.fullname" . }}-files
{{- end }}
{{- end -}}
