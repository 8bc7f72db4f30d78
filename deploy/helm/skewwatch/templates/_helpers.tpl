{{- define "skewwatch.name" -}}{{ .Chart.Name }}{{- end -}}
{{- define "skewwatch.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}{{ .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else -}}{{ printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" }}{{- end -}}
{{- end -}}
{{- define "skewwatch.labels" -}}
app.kubernetes.io/name: {{ include "skewwatch.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}
{{- /* the pods skewwatch runs in: its own StatefulSet, or the model's pods (sidecar mode) */ -}}
{{- define "skewwatch.podSelector" -}}
{{- if eq .Values.mode "sidecar" -}}{{ toYaml .Values.sidecar.podLabels }}
{{- else -}}
app.kubernetes.io/name: {{ include "skewwatch.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}
{{- end -}}
{{- define "skewwatch.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}{{ default (include "skewwatch.fullname" .) .Values.serviceAccount.name }}
{{- else -}}{{ default "default" .Values.serviceAccount.name }}{{- end -}}
{{- end -}}
{{- define "skewwatch.kafkaSecret" -}}{{ default (printf "%s-kafka" (include "skewwatch.fullname" .)) .Values.kafka.existingSecret }}{{- end -}}
{{- define "skewwatch.tlsSecret" -}}{{ default (printf "%s-kafka-tls" (include "skewwatch.fullname" .)) .Values.kafka.tls.existingSecret }}{{- end -}}
{{- define "skewwatch.referenceConfigMap" -}}{{ default (printf "%s-reference" (include "skewwatch.fullname" .)) .Values.reference.existingConfigMap }}{{- end -}}
{{- define "skewwatch.image" -}}{{ printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}{{- end -}}

{{- /* The skewwatch container: the StatefulSet's, and the one to paste into a model Deployment as a native sidecar. */ -}}
{{- define "skewwatch.container" -}}
name: skewwatch
image: {{ include "skewwatch.image" . }}
imagePullPolicy: {{ .Values.image.pullPolicy }}
{{- if eq .Values.mode "sidecar" }}
restartPolicy: Always
{{- end }}
args: ["run", "--config", "/etc/skewwatch/skewwatch.yaml", "--worker-id", "$(POD_NAME)"{{ if eq .Values.mode "sidecar" }}, "--sidecar"{{ end }}]
env:
  - name: POD_NAME
    valueFrom: {fieldRef: {fieldPath: metadata.name}}
  {{- if or .Values.kafka.existingSecret .Values.kafka.saslPassword }}
  - name: SKEWWATCH_KAFKA__SECURITY__SASL_PASSWORD
    valueFrom:
      secretKeyRef: {name: {{ include "skewwatch.kafkaSecret" . }}, key: {{ .Values.kafka.saslPasswordKey }}}
  {{- end }}
  {{- with .Values.extraEnv }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
ports:
  - {name: metrics, containerPort: {{ .Values.config.web.port | default 9108 }}, protocol: TCP}
{{- if eq .Values.mode "sidecar" }}
{{- /* a native sidecar must not hold the model back: no startupProbe (the model starts once this
     process runs), no readinessProbe (it would be the Pod's); README "Why skewwatch cannot hold the
     model back" */}}
livenessProbe:
  httpGet: {path: /healthz, port: metrics}
  initialDelaySeconds: 10
  periodSeconds: 10
  timeoutSeconds: 3
{{- else }}
startupProbe:
  httpGet: {path: /healthz, port: metrics}
  periodSeconds: 2
  failureThreshold: 60
livenessProbe:
  httpGet: {path: /healthz, port: metrics}
  periodSeconds: 10
  timeoutSeconds: 3
readinessProbe:
  httpGet: {path: /readyz, port: metrics}
  periodSeconds: 5
  timeoutSeconds: 3
{{- end }}
resources: {{- toYaml .Values.resources | nindent 2 }}
securityContext: {{- toYaml .Values.securityContext | nindent 2 }}
volumeMounts:
  - {name: skewwatch-config, mountPath: /etc/skewwatch/skewwatch.yaml, subPath: skewwatch.yaml, readOnly: true}
  - {name: skewwatch-reference, mountPath: /etc/skewwatch/reference, readOnly: true}
  {{- if .Values.kafka.tls.enabled }}
  - {name: kafka-tls, mountPath: /etc/skewwatch/kafka-tls, readOnly: true}
  {{- end }}
  - {name: tmp, mountPath: /tmp}
{{- end -}}

{{- define "skewwatch.volumes" -}}
- name: skewwatch-config
  configMap: {name: {{ include "skewwatch.fullname" . }}-config}
- name: skewwatch-reference
  configMap: {name: {{ include "skewwatch.referenceConfigMap" . }}}
{{- if .Values.kafka.tls.enabled }}
- name: kafka-tls
  secret: {secretName: {{ include "skewwatch.tlsSecret" . }}}
{{- end }}
- name: tmp
  emptyDir: {sizeLimit: 64Mi}
{{- end -}}
