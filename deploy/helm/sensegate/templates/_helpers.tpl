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

{{/*
sensegate.secretFileKeys maps the keys of secretFiles.values to the config
keys they fill (also the file names in the Secret).
*/}}
{{- define "sensegate.secretFileKeys" -}}
oidcClientSecret: identity.oidc.client_secret
oidcCookieSecrets: identity.oidc.cookie_secrets
cookieSecrets: identity.cookie_secrets
redisPassword: store.redis.password
encryptionKeys: store.encryption_keys
{{- end }}

{{/*
sensegate.secretFiles is the Secret of secretFiles as YAML: {name: ...,
keys: [config keys it holds], data: {config key: base64}} (data only when
the chart creates it), or {} when there is none.
*/}}
{{- define "sensegate.secretFiles" -}}
{{- $sf := .Values.secretFiles }}
{{- $data := dict }}
{{- range $vk, $key := include "sensegate.secretFileKeys" . | fromYaml }}
{{- $v := get $sf.values $vk }}
{{- if kindIs "slice" $v }}{{ $v = join "\n" $v }}{{ end }}
{{- if $v }}{{ $_ := set $data $key (printf "%s\n" $v | b64enc) }}{{ end }}
{{- end }}
{{- if $sf.existingSecret }}
{{- if $data }}
{{- fail "sensegate: set secretFiles.existingSecret or secretFiles.values, not both" }}
{{- end }}
{{- if not $sf.existingSecretKeys }}
{{- fail (printf "sensegate: secretFiles.existingSecret %s needs secretFiles.existingSecretKeys, the config keys it holds (e.g. [store.encryption_keys])" $sf.existingSecret) }}
{{- end }}
{{- toYaml (dict "name" $sf.existingSecret "keys" (sortAlpha $sf.existingSecretKeys)) }}
{{- else if $data }}
{{- toYaml (dict "name" (printf "%s-secrets" (include "sensegate.fullname" . | trunc 55 | trimSuffix "-")) "keys" (keys $data | sortAlpha) "data" $data) }}
{{- else }}
{{- "{}" }}
{{- end }}
{{- end }}

{{/*
sensegate.qlikSecret is the Secret of the Qlik certificates as YAML:
{name: ..., data: {...}} (data only when the chart creates it).
*/}}
{{- define "sensegate.qlikSecret" -}}
{{- $q := .Values.qlikCertificates }}
{{- $pem := $q.pem | default dict }}
{{- $given := or $pem.root $pem.client $pem.clientKey }}
{{- if $q.existingSecret }}
{{- if $given }}
{{- fail "sensegate: set qlikCertificates.existingSecret or qlikCertificates.pem, not both (set existingSecret to \"\" to create the Secret from pem)" }}
{{- end }}
{{- toYaml (dict "name" $q.existingSecret) }}
{{- else }}
{{- if not (and $pem.root $pem.client $pem.clientKey) }}
{{- fail "sensegate: the Qlik certificates need qlikCertificates.existingSecret (a Secret with root.pem, client.pem, client_key.pem) or all of qlikCertificates.pem.root, .client and .clientKey (base64 of each PEM file)" }}
{{- end }}
{{- range $k, $v := $pem }}
{{- if not (regexMatch "^[A-Za-z0-9+/=\\s]+$" $v) }}
{{- fail (printf "sensegate: qlikCertificates.pem.%s is not base64 (write the output of base64 -w0 of the PEM file)" $k) }}
{{- end }}
{{- end }}
{{- toYaml (dict "name" (printf "%s-qlik" (include "sensegate.fullname" . | trunc 58 | trimSuffix "-")) "data" (dict "root.pem" ($pem.root | nospace) "client.pem" ($pem.client | nospace) "client_key.pem" ($pem.clientKey | nospace))) }}
{{- end }}
{{- end }}

{{/*
sensegate.replicated is "true" when more than one pod can run.
*/}}
{{- define "sensegate.replicated" -}}
{{- if or (gt (int .Values.replicaCount) 1) .Values.autoscaling.enabled }}true{{ end }}
{{- end }}
