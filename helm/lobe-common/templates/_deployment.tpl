{{/*
The service Deployment. Pods run as the image's non-root user with a read-only root filesystem
(/tmp is an emptyDir) and get terminationGracePeriodSeconds to drain NATS on SIGTERM.

preStopSleepSeconds (the gateway's): a pod being deleted keeps serving that long before SIGTERM,
while the endpoint controller and every ingress controller and kube-proxy take it out of rotation;
without it, requests routed in that window meet a closed listener. The kubelet counts the grace
period from the start of preStop, so it must outlast the sleep plus the service's own drain
(SHUTDOWN_DELAY_S, then SHUTDOWN_GRACE_S): checked here rather than discovered as SIGKILLed streams.
*/}}
{{- define "lobe-common.deployment" -}}
{{- $preStop := int (.Values.preStopSleepSeconds | default 0) }}
{{- $drain := add (int (.Values.config.SHUTDOWN_DELAY_S | default 0)) (int (.Values.config.SHUTDOWN_GRACE_S | default 0)) }}
{{- if le (int .Values.terminationGracePeriodSeconds) (add $preStop $drain) }}
{{- fail (printf "terminationGracePeriodSeconds (%d) must exceed preStopSleepSeconds (%d) + config.SHUTDOWN_DELAY_S + config.SHUTDOWN_GRACE_S (%d)" (int .Values.terminationGracePeriodSeconds) $preStop $drain) }}
{{- end }}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ include "lobe-common.fullname" . }}
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "lobe-common.labels" . | nindent 4 }}
spec:
  {{- if not .Values.autoscaling.enabled }}
  replicas: {{ .Values.replicaCount }}
  {{- end }}
  revisionHistoryLimit: 5
  strategy:
    {{- toYaml .Values.updateStrategy | nindent 4 }}
  selector:
    matchLabels:
      {{- include "lobe-common.selectorLabels" . | nindent 6 }}
  template:
    metadata:
      labels:
        {{- include "lobe-common.labels" . | nindent 8 }}
        {{- with .Values.podLabels }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      annotations:
        checksum/config: {{ include "lobe-common.configmap" . | sha256sum }}
        {{- with (include "lobe-common.files.checksum" .) }}
        checksum/files: {{ . }}
        {{- end }}
        {{- with .Values.podAnnotations }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
    spec:
      serviceAccountName: {{ include "lobe-common.serviceAccountName" . }}
      automountServiceAccountToken: {{ .Values.serviceAccount.automountToken }}
      {{- with (include "lobe-common.imagePullSecrets" . | trim) }}
      {{- . | nindent 6 }}
      {{- end }}
      securityContext:
        {{- toYaml .Values.podSecurityContext | nindent 8 }}
      terminationGracePeriodSeconds: {{ .Values.terminationGracePeriodSeconds }}
      containers:
        - name: {{ include "lobe-common.name" . }}
          image: {{ include "lobe-common.image" . | quote }}
          imagePullPolicy: {{ .Values.image.pullPolicy }}
          {{- with .Values.command }}
          command:
            {{- toYaml . | nindent 12 }}
          {{- end }}
          {{- with .Values.args }}
          args:
            {{- toYaml . | nindent 12 }}
          {{- end }}
          ports:
            - name: http
              containerPort: {{ .Values.containerPort }}
              protocol: TCP
            {{- with .Values.opsPort }}
            - name: ops
              containerPort: {{ . }}
              protocol: TCP
            {{- end }}
          envFrom:
            {{- include "lobe-common.envFrom" . | nindent 12 }}
          env:
            {{- include "lobe-common.env" . | nindent 12 }}
          {{- include "lobe-common.probes" . | trim | nindent 10 }}
          {{- if $preStop }}
          lifecycle:
            preStop:
              exec:
                # The image's own python (the helm test pod runs it too): the hook needs nothing more.
                command: ["python", "-c", "import time; time.sleep({{ $preStop }})"]
          {{- end }}
          resources:
            {{- toYaml .Values.resources | nindent 12 }}
          securityContext:
            {{- toYaml .Values.containerSecurityContext | nindent 12 }}
          volumeMounts:
            - name: tmp
              mountPath: /tmp
            {{- include "lobe-common.tls.volumeMount" . | indent 12 }}
            {{- include "lobe-common.files.volumeMount" . | indent 12 }}
            {{- with .Values.extraVolumeMounts }}
            {{- toYaml . | nindent 12 }}
            {{- end }}
      volumes:
        - name: tmp
          emptyDir:
            sizeLimit: 64Mi
        {{- include "lobe-common.tls.volume" . | indent 8 }}
        {{- include "lobe-common.files.volume" . | indent 8 }}
        {{- with .Values.extraVolumes }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      {{- with .Values.nodeSelector }}
      nodeSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with .Values.affinity }}
      affinity:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with .Values.tolerations }}
      tolerations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- if .Values.topologySpread.enabled }}
      topologySpreadConstraints:
        - maxSkew: 1
          topologyKey: {{ .Values.topologySpread.topologyKey }}
          whenUnsatisfiable: ScheduleAnyway
          labelSelector:
            matchLabels:
              {{- include "lobe-common.selectorLabels" . | nindent 14 }}
      {{- end }}
{{- end -}}
