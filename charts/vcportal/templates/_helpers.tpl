{{/* Names: the release's full name, cut to 63 characters minus the longest suffix. */}}
{{- define "vcportal.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "vcportal.serviceAccountName" -}}
{{- .Values.serviceAccount.name | default (include "vcportal.fullname" .) -}}
{{- end -}}

{{/* Selector labels: immutable once a workload exists. Called with
     (dict "component" "web" "Chart" $.Chart "Release" $.Release). */}}
{{- define "vcportal.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "vcportal.labels" -}}
{{ include "vcportal.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "vcportal.image" -}}
{{- $root := index . 0 -}}{{- $image := index . 1 -}}
{{- $tag := $image.tag | default $root.Chart.AppVersion -}}
{{- if $root.Values.image.registry -}}
{{- printf "%s/%s:%s" $root.Values.image.registry $image.repository $tag -}}
{{- else -}}
{{- printf "%s:%s" $image.repository $tag -}}
{{- end -}}
{{- end -}}

{{/* This portal's name on the host objects it writes (vcportal.io/installation, at most
     40 characters): the release and its namespace, so two installations on one cluster
     never take each other's; a longer one is cut and keeps a hash of the whole. The
     admission policy needs it before the portal's database exists (docs/installation.md). */}}
{{- define "vcportal.installation" -}}
{{- $name := printf "%s-%s" .Release.Namespace .Release.Name -}}
{{- if gt (len $name) 40 -}}
{{- printf "%s-%s" ($name | trunc 33 | trimSuffix "-") ($name | sha256sum | trunc 6) -}}
{{- else -}}
{{- $name -}}
{{- end -}}
{{- end -}}

{{/* Cluster-wide objects carry the namespace too: two releases of one name may coexist. */}}
{{- define "vcportal.clusterName" -}}
{{- printf "%s-%s" (include "vcportal.fullname" .) .Release.Namespace | trunc 52 | trimSuffix "-" -}}
{{- end -}}

{{- define "vcportal.secretName" -}}
{{- include "vcportal.fullname" . -}}
{{- end -}}

{{- define "vcportal.gatewayTLSSecretName" -}}
{{- .Values.gateway.tls.existingSecret | default (printf "%s-gateway-tls" (include "vcportal.fullname" .)) -}}
{{- end -}}

{{/* A value of the chart's Secret: kept from the Secret in the cluster, else `generated`. */}}
{{- define "vcportal.keep" -}}
{{- $root := index . 0 -}}{{- $key := index . 1 -}}{{- $generated := index . 2 -}}
{{- $existing := lookup "v1" "Secret" $root.Release.Namespace (include "vcportal.secretName" $root) -}}
{{- if and $existing $existing.data (hasKey $existing.data $key) -}}
{{- index $existing.data $key | b64dec -}}
{{- else -}}
{{- $generated -}}
{{- end -}}
{{- end -}}

{{- define "vcportal.bundledDatabase" -}}
{{- if and .Values.database.bundled.enabled (not .Values.database.url) (not .Values.database.existingSecret.name) -}}true{{- end -}}
{{- end -}}

{{- define "vcportal.bundledRedis" -}}
{{- if and .Values.redis.bundled.enabled (not .Values.redis.url) (not .Values.redis.existingSecret.name) -}}true{{- end -}}
{{- end -}}

{{/* The hosts of `url` and `gateway.url`: Django's allowed hosts, with the Service's names. */}}
{{- define "vcportal.allowedHosts" -}}
{{- $name := include "vcportal.fullname" . -}}
{{- $hosts := list $name (printf "%s.%s" $name .Release.Namespace) (printf "%s.%s.svc" $name .Release.Namespace) (printf "%s.%s.svc.cluster.local" $name .Release.Namespace) -}}
{{- range (list .Values.url .Values.gateway.url) -}}
{{- if . -}}{{- $hosts = append $hosts (urlParse .).hostname -}}{{- end -}}
{{- end -}}
{{- if .Values.ingress.enabled -}}{{- $hosts = append $hosts .Values.ingress.host -}}{{- end -}}
{{- $hosts | uniq | join "," -}}
{{- end -}}

{{- define "vcportal.gatewayURL" -}}
{{- if .Values.gateway.url -}}
{{- .Values.gateway.url -}}
{{- else if hasPrefix "https://" .Values.url -}}
{{- .Values.url -}}
{{- else if .Values.gateway.tls.enabled -}}
{{- printf "https://%s.%s.svc:%v" (include "vcportal.fullname" .) .Release.Namespace .Values.web.service.gatewayPort -}}
{{- end -}}
{{- end -}}

{{/* The environment of every portal container: secrets by reference only. */}}
{{- define "vcportal.env" -}}
{{- $secret := include "vcportal.secretName" . -}}
{{- $keys := .Values.secrets.existingSecret | default $secret -}}
- name: DJANGO_SECRET_KEY
  valueFrom: {secretKeyRef: {name: {{ $keys }}, key: django-secret-key}}
- name: FIELD_ENCRYPTION_KEYS
  valueFrom: {secretKeyRef: {name: {{ $keys }}, key: field-encryption-keys}}
- name: DATABASE_URL
  valueFrom: {secretKeyRef: {name: {{ .Values.database.existingSecret.name | default $secret }}, key: {{ ternary .Values.database.existingSecret.key "database-url" (ne .Values.database.existingSecret.name "") }}}}
- name: REDIS_URL
  valueFrom: {secretKeyRef: {name: {{ .Values.redis.existingSecret.name | default $secret }}, key: {{ ternary .Values.redis.existingSecret.key "redis-url" (ne .Values.redis.existingSecret.name "") }}}}
- name: VCPORTAL_METRICS_TOKEN
  valueFrom: {secretKeyRef: {name: {{ $secret }}, key: metrics-token}}
- name: DJANGO_ALLOWED_HOSTS
  value: {{ include "vcportal.allowedHosts" . | quote }}
{{- with .Values.url }}
- name: DJANGO_CSRF_TRUSTED_ORIGINS
  value: {{ trimSuffix "/" . | quote }}
- name: DJANGO_SECURE_COOKIES
  value: {{ hasPrefix "https://" . | quote }}
{{- end }}
- name: DJANGO_BEHIND_PROXY
  value: {{ .Values.ingress.enabled | quote }}
{{- with include "vcportal.gatewayURL" . }}
- name: VCPORTAL_GATEWAY_URL
  value: {{ . | quote }}
{{- end }}
{{- if .Values.gateway.tls.enabled }}
- name: VCPORTAL_GATEWAY_CA_FILE
  value: /etc/vcportal/gateway-tls/ca.crt
{{- end }}
- name: VCPORTAL_KUBERNETES_VERSIONS
  value: {{ join "," .Values.config.kubernetesVersions | quote }}
- name: LOG_LEVEL
  value: {{ .Values.config.logLevel | quote }}
- name: VCPORTAL_VAR_DIR
  value: /var/lib/vcportal
- name: VCPORTAL_INSTALLATION
  value: {{ include "vcportal.installation" . | quote }}
# The GitOps controller (VirtualCluster objects) is not part of the chart yet.
- name: VCPORTAL_GITOPS_CLUSTER
  value: ""
{{- if .Values.hostCluster.enabled }}
- name: VCPORTAL_NAMESPACE_ROLE
  value: {{ printf "%s-namespace" (include "vcportal.clusterName" .) | quote }}
- name: VCPORTAL_SERVICE_ACCOUNT
  value: {{ printf "%s/%s" .Release.Namespace (include "vcportal.serviceAccountName" .) | quote }}
- name: VCPORTAL_RUNTIME_IMAGE
  value: {{ .Values.hostCluster.runtimeImage | quote }}
- name: VCPORTAL_CLUSTER_DNS_IMAGE
  value: {{ .Values.hostCluster.clusterDNSImage | quote }}
- name: VCPORTAL_HOSTS_IMAGE
  value: {{ .Values.hostCluster.hostsImage | quote }}
{{- end }}
{{- with .Values.config.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Writable places on a read-only root filesystem. */}}
{{- define "vcportal.scratchVolumes" -}}
- name: tmp
  emptyDir: {}
- name: var
  emptyDir: {}
{{- end -}}

{{- define "vcportal.scratchMounts" -}}
- name: tmp
  mountPath: /tmp
- name: var
  mountPath: /var/lib/vcportal
{{- end -}}

{{/* Every portal pod waits for its revision's migrations before it starts. */}}
{{- define "vcportal.waitForMigrations" -}}
- name: wait-for-migrations
  image: {{ include "vcportal.image" (list . .Values.image) }}
  imagePullPolicy: {{ .Values.image.pullPolicy }}
  command: [python3, /app/manage.py, wait_for_migrations, --timeout, "900"]
  env:
    {{- include "vcportal.env" . | nindent 4 }}
  securityContext:
    {{- toYaml .Values.containerSecurityContext | nindent 4 }}
  resources:
    {{- toYaml .Values.migrations.resources | nindent 4 }}
  volumeMounts:
    {{- include "vcportal.scratchMounts" . | nindent 4 }}
{{- end -}}

{{- define "vcportal.podCommon" -}}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- with .Values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}
