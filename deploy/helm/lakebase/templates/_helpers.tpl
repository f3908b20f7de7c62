{{/* Names, labels and image references shared by the templates. */}}

{{- define "lakebase.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The full name: the release name, followed by the chart's unless it already holds it. */}}
{{- define "lakebase.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "lakebase.controllerName" -}}
{{- printf "%s-controller" (include "lakebase.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "lakebase.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The recommended app.kubernetes.io labels. */}}
{{- define "lakebase.labels" -}}
helm.sh/chart: {{ include "lakebase.chart" . }}
{{ include "lakebase.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/part-of: lakebase
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "lakebase.selectorLabels" -}}
app.kubernetes.io/name: {{ include "lakebase.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: controller
{{- end -}}

{{- define "lakebase.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "lakebase.controllerName" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "lakebase.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default "dev" .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/* The namespace the controller's namespaced rights are granted in. */}}
{{- define "lakebase.watchNamespace" -}}
{{- .Values.watchNamespace -}}
{{- end -}}
