{{/*
`helm test`: a pod that asks the release's Service for its readiness endpoint. It runs the
service's own image (python is there) so the test pulls nothing new.
*/}}
{{- define "lobe-common.testpod" -}}
apiVersion: v1
kind: Pod
metadata:
  name: {{ include "lobe-common.fullname" . }}-test-health
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "lobe-common.testLabels" . | nindent 4 }}
  annotations:
    helm.sh/hook: test
    helm.sh/hook-delete-policy: before-hook-creation,hook-succeeded
spec:
  restartPolicy: Never
  automountServiceAccountToken: false
  {{- with (include "lobe-common.imagePullSecrets" . | trim) }}
  {{- . | nindent 2 }}
  {{- end }}
  securityContext:
    {{- toYaml .Values.podSecurityContext | nindent 4 }}
  containers:
    - name: health
      image: {{ include "lobe-common.image" . | quote }}
      imagePullPolicy: {{ .Values.image.pullPolicy }}
      command:
        - python
        - -c
        - |
          import sys, urllib.request
          url = "http://{{ include "lobe-common.fullname" . }}:{{ .Values.service.port }}{{ .Values.probes.readiness.path }}"
          with urllib.request.urlopen(url, timeout=5) as resp:
              print(url, resp.status)
              sys.exit(0 if resp.status == 200 else 1)
      securityContext:
        {{- toYaml .Values.containerSecurityContext | nindent 8 }}
      resources:
        limits:
          cpu: 100m
          memory: 64Mi
{{- end -}}
