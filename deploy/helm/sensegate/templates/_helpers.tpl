{{- define "sensegate.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "sensegate.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "sensegate.selectorLabels" -}}
app.kubernetes.io/name: {{ include "sensegate.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "sensegate.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "sensegate.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/*
sensegate.adminService is "true" when the admin Service is rendered:
adminService.enabled, or serviceMonitor.enabled (the ServiceMonitor
scrapes through it); "" otherwise.
*/}}
{{- define "sensegate.adminService" -}}
{{- if or .Values.adminService.enabled .Values.serviceMonitor.enabled }}true{{ end }}
{{- end }}

{{/*
sensegate.adminServiceName is the admin Service's name: the full name
with -admin, within Kubernetes' 63 characters.
*/}}
{{- define "sensegate.adminServiceName" -}}
{{- printf "%s-admin" (include "sensegate.fullname" . | trunc 57 | trimSuffix "-") }}
{{- end }}

{{/*
sensegate.validate fails the render when the values cannot work: more
than one replica (or an autoscaler) with sessions kept in one pod's memory,
or the removed service.adminPort (the admin port left the main Service).
*/}}
{{- define "sensegate.validate" -}}
{{- if hasKey .Values.service "adminPort" }}
{{- fail "sensegate: service.adminPort is gone: the admin port (metrics, readiness, pprof) is no longer on the main Service; set adminService.enabled=true and adminService.port for a ClusterIP Service of its own" }}
{{- end }}
{{- $store := ((.Values.config).store).type | default "memory" }}
{{- if and (or (gt (int .Values.replicaCount) 1) .Values.autoscaling.enabled) (ne $store "redis") }}
{{- fail (printf "sensegate: replicaCount %d%s requires config.store.type: redis (with store.type %s each pod keeps its own logins, so users would be logged out as requests move between pods); set config.store.type=redis and config.store.redis.addr, or replicaCount=1 without autoscaling" (int .Values.replicaCount) (ternary " with autoscaling.enabled" "" .Values.autoscaling.enabled) $store) }}
{{- end }}
{{- end }}
