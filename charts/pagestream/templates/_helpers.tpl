{{- define "pagestream.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Resource name prefix; short enough that "-transformer" still fits in 63 characters. */}}
{{- define "pagestream.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 50 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 50 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 50 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "pagestream.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "pagestream.selectorLabels" -}}
app.kubernetes.io/name: {{ include "pagestream.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "pagestream.labels" -}}
helm.sh/chart: {{ include "pagestream.chart" . }}
{{ include "pagestream.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: pagestream
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Name of one role's resources. Call with (dict "root" $ "role" "analytics"). */}}
{{- define "pagestream.roleName" -}}
{{- printf "%s-%s" (include "pagestream.fullname" .root) .role }}
{{- end }}

{{- define "pagestream.roleSelectorLabels" -}}
{{ include "pagestream.selectorLabels" .root }}
app.kubernetes.io/component: {{ .role }}
{{- end }}

{{- define "pagestream.roleLabels" -}}
{{ include "pagestream.labels" .root }}
app.kubernetes.io/component: {{ .role }}
{{- end }}

{{- define "pagestream.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "pagestream.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "pagestream.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{- define "pagestream.redpanda.name" -}}
{{- printf "%s-redpanda" (include "pagestream.fullname" .) }}
{{- end }}

{{/* The bootstrap brokers every role uses: the in-cluster Redpanda, or kafka.brokers. */}}
{{- define "pagestream.brokers" -}}
{{- if .Values.redpanda.enabled }}
{{- $name := include "pagestream.redpanda.name" . }}
{{- printf "%s-0.%s.%s.svc.cluster.local:9092" $name $name .Release.Namespace }}
{{- else }}
{{- required "set kafka.brokers (host:port,host:port of your Redpanda or Kafka cluster) or redpanda.enabled=true" .Values.kafka.brokers | nospace }}
{{- end }}
{{- end }}

{{/* The distinct ports of the brokers, one per line, for the NetworkPolicy egress rule. */}}
{{- define "pagestream.brokerPorts" -}}
{{- $ports := list }}
{{- range splitList "," (include "pagestream.brokers" .) }}
{{- $port := regexFind "[0-9]+$" . }}
{{- if not $port }}{{ fail (printf "kafka.brokers: %q has no :port" .) }}{{ end }}
{{- $ports = append $ports $port }}
{{- end }}
{{- join "\n" (uniq $ports) }}
{{- end }}

{{- define "pagestream.sasl" -}}
{{- if hasPrefix "sasl_" .Values.kafka.securityProtocol }}true{{ end }}
{{- end }}

{{- define "pagestream.validate" -}}
{{- if and (include "pagestream.sasl" .) (not .Values.kafka.sasl.existingSecret) }}
{{- fail (printf "kafka.securityProtocol=%s needs kafka.sasl.existingSecret: the name of a Secret with keys %q and %q" .Values.kafka.securityProtocol .Values.kafka.sasl.usernameKey .Values.kafka.sasl.passwordKey) }}
{{- end }}
{{- if and .Values.kafka.tls.caSecret (not (hasSuffix "ssl" .Values.kafka.securityProtocol)) }}
{{- fail "kafka.tls.caSecret is set but kafka.securityProtocol is not ssl or sasl_ssl" }}
{{- end }}
{{- if and .Values.ingress.tls.enabled (not .Values.ingress.tls.secretName) }}
{{- fail "ingress.tls.enabled needs ingress.tls.secretName" }}
{{- end }}
{{- range .Values.ingress.paths }}
{{- $role := index $.Values.roles .role | default dict }}
{{- if and $.Values.ingress.enabled (not $role.enabled) }}
{{- fail (printf "ingress.paths routes %s to role %q, which is not enabled" .path .role) }}
{{- end }}
{{- end }}
{{- end }}

{{/* The roles the Ingress routes to, one per line. */}}
{{- define "pagestream.routedRoles" -}}
{{- $roles := list }}
{{- if .Values.ingress.enabled }}
{{- range .Values.ingress.paths }}{{ $roles = append $roles .role }}{{ end }}
{{- end }}
{{- join "\n" (uniq $roles) }}
{{- end }}

{{/* Non-secret environment of one role: what its config schema reads, as strings. */}}
{{- define "pagestream.roleEnv" -}}
{{- $root := .root }}
{{- $values := index $root.Values.roles .role }}
{{- $env := dict
  "HTTP_HOST" "0.0.0.0"
  "HTTP_PORT" (toString $values.port)
  "LOG_LEVEL" $root.Values.logLevel
  "SHUTDOWN_TIMEOUT_MS" (toString (mul $root.Values.shutdownTimeoutSeconds 1000))
  "KAFKA_BROKERS" (include "pagestream.brokers" $root)
  "KAFKA_CLIENT_ID" (printf "%s-%s" (include "pagestream.fullname" $root) .role)
  "KAFKA_SECURITY_PROTOCOL" $root.Values.kafka.securityProtocol
  "KAFKA_TOPIC_PARTITIONS" (toString $root.Values.kafka.topics.partitions)
  "KAFKA_TOPIC_REPLICATION" (toString $root.Values.kafka.topics.replication)
}}
{{- if include "pagestream.sasl" $root }}
{{- $_ := set $env "KAFKA_SASL_MECHANISM" $root.Values.kafka.sasl.mechanism }}
{{- end }}
{{- if $root.Values.kafka.tls.caSecret }}
{{- $_ := set $env "KAFKA_SSL_CA_LOCATION" "/etc/pagestream/kafka-ca/ca.crt" }}
{{- end }}
{{- range $name, $value := $values.env }}
{{- if or (hasPrefix "KAFKA_SASL_" $name) (regexMatch "PASSWORD|SECRET|TOKEN" $name) }}
{{- fail (printf "roles.%s.env.%s looks like a secret; the chart takes credentials only from kafka.sasl.existingSecret" $.role $name) }}
{{- end }}
{{- $_ := set $env $name (toString $value) }}
{{- end }}
{{- toYaml $env }}
{{- end }}
