{{/*
One app Deployment. Called with a dict:
  root    - the chart context
  name    - resource name
  version - value of the "version" label (Istio subsets v1/v2)
  tag     - image tag
  replicas - replica count; left out when the HPA owns it
*/}}
{{- define "counter.deployment" -}}
{{- $root := .root }}
{{- $values := $root.Values }}
{{- $redisAuth := include "counter.redisAuthEnabled" $root }}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ .name }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "counter.labels" $root | nindent 4 }}
    app.kubernetes.io/component: app
    version: {{ .version }}
spec:
  {{- if hasKey . "replicas" }}
  replicas: {{ .replicas }}
  {{- end }}
  revisionHistoryLimit: {{ $values.revisionHistoryLimit }}
  selector:
    matchLabels:
      {{- include "counter.appSelectorLabels" $root | nindent 6 }}
      version: {{ .version }}
  strategy:
    type: RollingUpdate
    rollingUpdate:
      maxSurge: 1
      maxUnavailable: 0
  template:
    metadata:
      labels:
        {{- include "counter.appSelectorLabels" $root | nindent 8 }}
        version: {{ .version }}
        {{- with $values.podLabels }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
        {{- if $values.istio.enabled }}
        sidecar.istio.io/inject: "true"
        {{- end }}
      annotations:
        checksum/config: {{ include (print $root.Template.BasePath "/configmap.yaml") $root | sha256sum }}
        {{- if $values.metrics.enabled }}
        prometheus.io/scrape: "true"
        prometheus.io/port: {{ $values.app.port | quote }}
        prometheus.io/path: /metrics
        {{- end }}
        {{- with $values.podAnnotations }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
    spec:
      serviceAccountName: {{ include "counter.serviceAccountName" $root }}
      automountServiceAccountToken: false
      {{- with $values.imagePullSecrets }}
      imagePullSecrets:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      securityContext:
        {{- toYaml $values.podSecurityContext | nindent 8 }}
      terminationGracePeriodSeconds: {{ $values.terminationGracePeriodSeconds }}
      {{- with $values.scheduling.schedulerName }}
      schedulerName: {{ . }}
      {{- end }}
      {{- $affinity := include "counter.affinity" $root }}
      {{- if $affinity }}
      affinity:
        {{- $affinity | nindent 8 }}
      {{- end }}
      {{- if $values.scheduling.topologySpread.enabled }}
      topologySpreadConstraints:
        - maxSkew: {{ $values.scheduling.topologySpread.maxSkew }}
          topologyKey: {{ $values.scheduling.topologySpread.topologyKey }}
          whenUnsatisfiable: {{ $values.scheduling.topologySpread.whenUnsatisfiable }}
          labelSelector:
            matchLabels:
              {{- include "counter.appSelectorLabels" $root | nindent 14 }}
          matchLabelKeys:
            - pod-template-hash
      {{- end }}
      {{- with $values.nodeSelector }}
      nodeSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $values.tolerations }}
      tolerations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      containers:
        - name: app
          image: {{ printf "%s:%s" $values.image.repository (.tag | toString) | quote }}
          imagePullPolicy: {{ $values.image.pullPolicy }}
          ports:
            - name: http
              containerPort: {{ $values.app.port }}
              protocol: TCP
          envFrom:
            - configMapRef:
                name: {{ include "counter.fullname" $root }}
          env:
            - name: APP_VERSION
              value: {{ .tag | toString | quote }}
            {{- if $redisAuth }}
            - name: REDIS_PASSWORD
              valueFrom:
                secretKeyRef:
                  name: {{ include "counter.redisSecretName" $root }}
                  key: {{ include "counter.redisSecretKey" $root }}
            {{- end }}
            {{- with $values.extraEnv }}
            {{- toYaml . | nindent 12 }}
            {{- end }}
          startupProbe:
            httpGet:
              path: /health/live
              port: http
            {{- toYaml $values.probes.startup | nindent 12 }}
          livenessProbe:
            httpGet:
              path: /health/live
              port: http
            {{- toYaml $values.probes.liveness | nindent 12 }}
          readinessProbe:
            httpGet:
              path: /health/ready
              port: http
            {{- toYaml $values.probes.readiness | nindent 12 }}
          {{- if $values.preStopSleepSeconds }}
          # A deleted pod leaves the Service's endpoints while it is told to stop; the
          # kube-proxies and ingress controllers learn it a moment later and keep sending
          # it new connections until then. Serving on for these seconds before gunicorn's
          # SIGTERM (which closes its listeners) makes rollouts drop no request.
          lifecycle:
            preStop:
              exec:
                command: ["sleep", {{ $values.preStopSleepSeconds | quote }}]
          {{- end }}
          resources:
            {{- toYaml $values.resources | nindent 12 }}
          securityContext:
            {{- toYaml $values.containerSecurityContext | nindent 12 }}
          volumeMounts:
            - name: tmp
              mountPath: /tmp
      volumes:
        # The root filesystem is read-only; /tmp holds the Prometheus
        # multiprocess files and gunicorn's worker heartbeat files.
        - name: tmp
          emptyDir:
            medium: Memory
            sizeLimit: {{ $values.tmpSizeLimit }}
{{- end }}

{{/* Pod affinity towards Redis and anti-affinity between app replicas, as configured. */}}
{{- define "counter.affinity" -}}
{{- $scheduling := .Values.scheduling }}
{{- if and $scheduling.podAffinityToRedis.enabled .Values.redis.enabled }}
podAffinity:
  preferredDuringSchedulingIgnoredDuringExecution:
    - weight: {{ $scheduling.podAffinityToRedis.weight }}
      podAffinityTerm:
        topologyKey: {{ $scheduling.podAffinityToRedis.topologyKey }}
        labelSelector:
          matchLabels:
            {{- include "counter.redisSelectorLabels" . | nindent 12 }}
{{- end }}
{{- if $scheduling.podAntiAffinity.enabled }}
podAntiAffinity:
  {{- if eq $scheduling.podAntiAffinity.mode "required" }}
  requiredDuringSchedulingIgnoredDuringExecution:
    - topologyKey: {{ $scheduling.podAntiAffinity.topologyKey }}
      labelSelector:
        matchLabels:
          {{- include "counter.appSelectorLabels" . | nindent 10 }}
  {{- else }}
  preferredDuringSchedulingIgnoredDuringExecution:
    - weight: {{ $scheduling.podAntiAffinity.weight }}
      podAffinityTerm:
        topologyKey: {{ $scheduling.podAntiAffinity.topologyKey }}
        labelSelector:
          matchLabels:
            {{- include "counter.appSelectorLabels" . | nindent 12 }}
  {{- end }}
{{- end }}
{{- end }}
