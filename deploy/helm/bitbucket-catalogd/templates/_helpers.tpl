{{/* The release's name for every object: the chart's name, unless the release already says it. */}}
{{- define "catalogd.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "catalogd.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "catalogd.labels" -}}
{{ include "catalogd.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* One replica on SQLite (its store is one volume); replicaCount on PostgreSQL. */}}
{{- define "catalogd.replicas" -}}
{{- if eq .Values.database "postgres" -}}{{ .Values.replicaCount }}{{- else -}}1{{- end -}}
{{- end -}}

{{- define "catalogd.secretDir" -}}/var/run/secrets/bitbucket-catalogd{{- end -}}

{{/* The app-config the daemon serves: the `config` value with the listener and database the chart sets. */}}
{{- define "catalogd.appConfig" -}}
{{- $database := dict -}}
{{- if eq .Values.database "postgres" -}}
{{- $connection := dict "host" .Values.postgres.host "port" (int .Values.postgres.port) "user" .Values.postgres.user "database" .Values.postgres.database "password" (dict "$file" (printf "%s/%s" (include "catalogd.secretDir" .) .Values.postgres.passwordKey)) -}}
{{- if not (kindIs "invalid" .Values.postgres.ssl) -}}
{{- $_ := set $connection "ssl" .Values.postgres.ssl -}}
{{- end -}}
{{- $database = dict "client" "pg" "connection" $connection -}}
{{- else -}}
{{- $database = dict "client" "better-sqlite3" "connection" "/app/data/catalog.sqlite" -}}
{{- end -}}
{{- $config := deepCopy (default dict .Values.config) -}}
{{- $backend := deepCopy (default dict $config.backend) -}}
{{- $_ := set $backend "listen" (dict "host" "0.0.0.0" "port" 7007) -}}
{{- $_ = set $backend "database" $database -}}
{{- $_ = set $config "backend" $backend -}}
{{- toYaml $config -}}
{{- end -}}
