{{/* What values.schema.json cannot say: fail before anything is created, naming the value. */}}
{{- define "vcportal.validate" -}}
{{- if not (or .Values.database.url .Values.database.existingSecret.name .Values.database.bundled.enabled) -}}
{{- fail "database: set database.url, database.existingSecret.name, or database.bundled.enabled=true (a trial database)" -}}
{{- end -}}
{{- if not (or .Values.redis.url .Values.redis.existingSecret.name .Values.redis.bundled.enabled) -}}
{{- fail "redis: set redis.url, redis.existingSecret.name, or redis.bundled.enabled=true (a trial broker)" -}}
{{- end -}}
{{- if and (include "vcportal.bundledDatabase" .) (not .Values.database.bundled.image.tag) -}}
{{- fail "database.bundled.image.tag: name the PostgreSQL image's tag (`make images` prints it), or set database.url" -}}
{{- end -}}
{{- if and (include "vcportal.bundledRedis" .) (not .Values.redis.bundled.image.tag) -}}
{{- fail "redis.bundled.image.tag: name the Redis image's tag (`make images` prints it), or set redis.url" -}}
{{- end -}}
{{- if and .Values.ingress.enabled (not .Values.ingress.host) -}}
{{- fail "ingress.host: an Ingress needs the host name it serves" -}}
{{- end -}}
{{- if and (ne .Values.web.service.type "NodePort") (or .Values.web.service.httpNodePort .Values.web.service.gatewayNodePort) -}}
{{- fail (printf "web.service.httpNodePort/gatewayNodePort: node ports need web.service.type=NodePort, not %s" .Values.web.service.type) -}}
{{- end -}}
{{- end -}}
{{- define "vcportal.validateHostCluster" -}}
{{- if .Values.hostCluster.enabled -}}
{{- if not .Values.hostCluster.runtimeImage -}}
{{- fail "hostCluster.runtimeImage: name the image of vclusters' control planes (vcluster-runtime), or set hostCluster.enabled=false" -}}
{{- end -}}
{{- if not .Values.hostCluster.clusterDNSImage -}}
{{- fail "hostCluster.clusterDNSImage: name the CoreDNS image vclusters run, or set hostCluster.enabled=false" -}}
{{- end -}}
{{- if and (has .Values.hostCluster.access (list "nodeport" "ingress")) (not .Values.hostCluster.accessAddress) -}}
{{- fail (printf "hostCluster.accessAddress: access %s needs it (a node's address, or the ingress domain)" .Values.hostCluster.access) -}}
{{- end -}}
{{- end -}}
{{- end -}}
