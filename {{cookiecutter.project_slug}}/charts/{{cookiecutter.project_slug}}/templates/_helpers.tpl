{{/*
Helpers shared by every template. Names follow `helm create`; the "counter."
prefix is fixed because templates are copied verbatim when the project is
generated.
*/}}

{{/* Chart name, overridable with nameOverride. */}}
{{- define "counter.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Fully qualified app name: release name, plus the chart name unless the release
name already contains it. 63 characters at most (DNS label); the longest
suffix added below is "-canary" / "-dashboards", so names stay valid.
*/}}
{{- define "counter.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 52 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 52 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 52 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* Chart name and version for the helm.sh/chart label. */}}
{{- define "counter.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Recommended labels shared by every resource. */}}
{{- define "counter.labels" -}}
helm.sh/chart: {{ include "counter.chart" . }}
{{ include "counter.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: {{ include "counter.name" . }}
{{- end }}

{{/* Labels that identify this release; every selector starts from them. */}}
{{- define "counter.selectorLabels" -}}
app.kubernetes.io/name: {{ include "counter.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Selector of every app pod, stable and canary. */}}
{{- define "counter.appSelectorLabels" -}}
{{ include "counter.selectorLabels" . }}
app.kubernetes.io/component: app
{{- end }}

{{/* Selector of the Redis pod. */}}
{{- define "counter.redisSelectorLabels" -}}
{{ include "counter.selectorLabels" . }}
app.kubernetes.io/component: redis
{{- end }}

{{- define "counter.redisFullname" -}}
{{- printf "%s-redis" (include "counter.fullname" .) }}
{{- end }}

{{/* The headless Service that governs the Redis StatefulSet (its pods' DNS names); 63
     characters at most, like every Service name, so the Redis name is cut to fit. */}}
{{- define "counter.redisHeadlessName" -}}
{{- printf "%s-headless" (include "counter.redisFullname" . | trunc 54 | trimSuffix "-") }}
{{- end }}

{{- define "counter.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "counter.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* Host the app connects to: the in-chart Redis Service or the external host. */}}
{{- define "counter.redisHost" -}}
{{- if .Values.redis.enabled }}
{{- include "counter.redisFullname" . }}
{{- else }}
{{- required "externalRedis.host is required when redis.enabled=false" .Values.externalRedis.host }}
{{- end }}
{{- end }}

{{- define "counter.redisPort" -}}
{{- if .Values.redis.enabled }}{{ .Values.redis.port }}{{ else }}{{ .Values.externalRedis.port }}{{ end }}
{{- end }}

{{/* The auth block that applies: redis.auth in-chart, externalRedis otherwise. */}}
{{- define "counter.redisAuth" -}}
{{- if .Values.redis.enabled }}{{ toYaml .Values.redis.auth }}{{ else }}{{ toYaml .Values.externalRedis.auth }}{{ end }}
{{- end }}

{{/* Name of the Secret holding the Redis password (created by the chart unless existingSecret is set). */}}
{{- define "counter.redisSecretName" -}}
{{- $auth := include "counter.redisAuth" . | fromYaml }}
{{- default (include "counter.redisFullname" .) $auth.existingSecret }}
{{- end }}

{{- define "counter.redisSecretKey" -}}
{{- $auth := include "counter.redisAuth" . | fromYaml }}
{{- default "redis-password" $auth.existingSecretPasswordKey }}
{{- end }}

{{/* "true" when the chart renders the Redis Secret itself. */}}
{{- define "counter.createRedisSecret" -}}
{{- $auth := include "counter.redisAuth" . | fromYaml }}
{{- if and $auth.enabled (not $auth.existingSecret) }}true{{ end }}
{{- end }}

{{/* "true" when the app must send a password to Redis. */}}
{{- define "counter.redisAuthEnabled" -}}
{{- $auth := include "counter.redisAuth" . | fromYaml }}
{{- if $auth.enabled }}true{{ end }}
{{- end }}

{{/*
Cross-field checks, each failing `helm template`/`install`/`upgrade` with one
line. `helm lint` ignores `fail`, so values.schema.json encodes
minReplicas <= maxReplicas as well.
*/}}
{{- define "counter.validateValues" -}}
{{- if and .Values.autoscaling.enabled (gt (int .Values.autoscaling.minReplicas) (int .Values.autoscaling.maxReplicas)) }}
{{- fail (printf "autoscaling.minReplicas=%v is not allowed: must not exceed autoscaling.maxReplicas=%v" .Values.autoscaling.minReplicas .Values.autoscaling.maxReplicas) }}
{{- end }}
{{- $auth := include "counter.redisAuth" . | fromYaml }}
{{- if and (not .Values.redis.enabled) $auth.enabled (not $auth.existingSecret) (not $auth.password) }}
{{- fail "externalRedis.auth.password=\"\" is not allowed with externalRedis.auth.enabled=true: set externalRedis.auth.existingSecret (recommended) or externalRedis.auth.password" }}
{{- end }}
{{- $drain := add .Values.preStopSleepSeconds .Values.gunicorn.gracefulTimeout }}
{{- if le (int .Values.terminationGracePeriodSeconds) (int $drain) }}
{{- fail (printf "terminationGracePeriodSeconds=%v is not allowed: must exceed preStopSleepSeconds + gunicorn.gracefulTimeout = %v, or the kubelet kills requests gunicorn is still finishing" .Values.terminationGracePeriodSeconds $drain) }}
{{- end }}
{{- if and .Values.istio.enabled (not .Values.istio.canary.image.tag) }}
{{- fail "istio.canary.image.tag=\"\" is not allowed when istio.enabled=true: set the image tag of the canary (v2)" }}
{{- end }}
{{- end }}

{{/* "true" when the Istio routing objects are rendered: the cluster serves their API, or force. */}}
{{- define "counter.istioRouting" -}}
{{- if and .Values.istio.enabled (or .Values.istio.force (.Capabilities.APIVersions.Has "networking.istio.io/v1")) }}true{{ end }}
{{- end }}

{{/* One line per object that a value switches on but the chart leaves out, because
     the cluster does not serve its API (.Capabilities). NOTES.txt shows the lines after
     an install; templates/left-out.yaml prints them as comments in `helm template`,
     which sees no cluster: there, --api-versions <api> announces one. */}}
{{- define "counter.leftOut" -}}
{{- $monitoring := .Capabilities.APIVersions.Has "monitoring.coreos.com/v1" }}
{{- if and .Values.istio.enabled (not (include "counter.istioRouting" .)) }}
istio.enabled=true, but the cluster has no networking.istio.io/v1 API: no VirtualService or DestinationRule, so the Service spreads traffic over v1 and v2 pods alike. Install Istio (make istio) and upgrade again, or set istio.force=true.
{{ end }}
{{- if and .Values.metrics.enabled .Values.metrics.serviceMonitor.enabled (not (or .Values.metrics.serviceMonitor.force $monitoring)) }}
metrics.serviceMonitor.enabled=true, but the cluster has no monitoring.coreos.com/v1 API: no ServiceMonitor. Install the Prometheus Operator (make monitoring), or set metrics.serviceMonitor.force=true.
{{ end }}
{{- if and .Values.metrics.enabled .Values.metrics.prometheusRule.enabled (not (or .Values.metrics.prometheusRule.force $monitoring)) }}
metrics.prometheusRule.enabled=true, but the cluster has no monitoring.coreos.com/v1 API: no PrometheusRule. Install the Prometheus Operator (make monitoring), or set metrics.prometheusRule.force=true.
{{ end }}
{{- end }}

{{/* "true" when the Redis pod runs the redis_exporter sidecar. */}}
{{- define "counter.redisMetricsEnabled" -}}
{{- if and .Values.metrics.enabled .Values.redis.enabled .Values.redis.metrics.enabled }}true{{ end }}
{{- end }}
