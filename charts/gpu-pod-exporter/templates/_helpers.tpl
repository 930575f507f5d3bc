{{/*
Names. app.kubernetes.io/name is always gpu-pod-exporter (there is no nameOverride): the
ServiceMonitor's and PodMonitor's jobLabel reads it, and the shipped alerts and dashboards select
job="gpu-pod-exporter".
*/}}
{{- define "gpu-pod-exporter.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 56 | trimSuffix "-" -}}
{{- else if contains "gpu-pod-exporter" .Release.Name -}}
{{- .Release.Name | trunc 56 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-gpu-pod-exporter" .Release.Name | trunc 56 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "gpu-pod-exporter.labels" -}}
app.kubernetes.io/name: gpu-pod-exporter
app.kubernetes.io/instance: {{ .Release.Name | quote }}
app.kubernetes.io/part-of: gpu-pod-exporter
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service | quote }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | quote }}
{{- end -}}

{{/* The selector of one vendor's agents (root context and vendor name in a list). */}}
{{- define "gpu-pod-exporter.selectorLabels" -}}
{{- $root := index . 0 -}}
app.kubernetes.io/name: gpu-pod-exporter
app.kubernetes.io/instance: {{ $root.Release.Name | quote }}
app.kubernetes.io/component: {{ printf "%s-agent" (index . 1) }}
{{- end -}}

{{- define "gpu-pod-exporter.image" -}}
{{- $tag := .Values.image.tag | default .Chart.AppVersion -}}
{{- if .Values.image.digest -}}
{{- printf "%s:%s@%s" .Values.image.repository $tag .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository $tag -}}
{{- end -}}
{{- end -}}

{{/* One vendor's agent image (root context and vendor name in a list): the NVIDIA agent with
vendors.nvidia.dcgm.address runs the DCGM variant. */}}
{{- define "gpu-pod-exporter.agentImage" -}}
{{- $root := index . 0 -}}
{{- $dcgm := $root.Values.vendors.nvidia.dcgm | default dict -}}
{{- if and (eq (index . 1) "nvidia") $dcgm.address -}}
{{- $tag := $dcgm.imageTag | default (printf "%s-dcgm" ($root.Values.image.tag | default $root.Chart.AppVersion)) -}}
{{- if $dcgm.imageDigest -}}
{{- printf "%s:%s@%s" $root.Values.image.repository $tag $dcgm.imageDigest -}}
{{- else -}}
{{- printf "%s:%s" $root.Values.image.repository $tag -}}
{{- end -}}
{{- else -}}
{{- include "gpu-pod-exporter.image" $root -}}
{{- end -}}
{{- end -}}

{{/* The vendors to deploy, in a fixed order; fails on none. */}}
{{- define "gpu-pod-exporter.vendors" -}}
{{- $out := list -}}
{{- range $v := list "nvidia" "amd" -}}
{{- if (index $.Values.vendors $v).enabled -}}{{- $out = append $out $v -}}{{- end -}}
{{- end -}}
{{- if not $out -}}{{- fail "enable at least one of vendors.nvidia.enabled, vendors.amd.enabled" -}}{{- end -}}
{{- $dcgm := $.Values.vendors.nvidia.dcgm | default dict -}}
{{- if and (or $dcgm.library $dcgm.imageTag $dcgm.imageDigest) (not $dcgm.address) -}}
{{- fail "vendors.nvidia.dcgm.library, imageTag and imageDigest take effect only with vendors.nvidia.dcgm.address: set it, or leave them empty" -}}
{{- end -}}
{{- join " " $out -}}
{{- end -}}

{{/* The scrape endpoint's scheme: https when the web config serves TLS. */}}
{{- define "gpu-pod-exporter.scheme" -}}
{{- if and .Values.webConfig.secretName .Values.webConfig.tls -}}https{{- else -}}http{{- end -}}
{{- end -}}

{{/* What a ServiceMonitor endpoint and a PodMonitor endpoint share. */}}
{{- define "gpu-pod-exporter.endpoint" -}}
{{- $m := index . 1 -}}
{{- with index . 0 -}}
port: metrics
path: /metrics
scheme: {{ include "gpu-pod-exporter.scheme" . }}
interval: {{ $m.interval }}
scrapeTimeout: {{ $m.scrapeTimeout }}
# Required: the agent's per-pod series carry the GPU users' own namespace, pod and container
# labels; without honorLabels Prometheus renames them exported_* and every pod series claims the
# agent's pod (docs/operations.md, "Hardened Prometheus", for Prometheus setups that override it).
honorLabels: true
{{- with $m.tlsConfig }}
tlsConfig:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $m.basicAuth }}
basicAuth:
  {{- toYaml . | nindent 2 }}
{{- end }}
relabelings:
  # The node the agent runs on, for the dashboards' node variable and the alerts' text.
  - sourceLabels: [__meta_kubernetes_pod_node_name]
    targetLabel: node
    action: replace
  {{- with $m.relabelings }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
{{- with $m.metricRelabelings }}
metricRelabelings:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}
{{- end -}}
