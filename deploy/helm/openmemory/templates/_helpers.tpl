{{/* Names, labels and addresses. Workloads are in _workloads.tpl, their pods in _pod.tpl. */}}

{{- define "openmemory.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}{{ .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else -}}{{ printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" }}{{- end -}}
{{- end -}}

{{/* Selector labels. .name is the application: openmemory (the default) or a store's (nats,
qdrant, neo4j); .component is its part: gateway, ingest, search, admin, all (single mode) or store. */}}
{{- define "openmemory.selector" -}}
app.kubernetes.io/name: {{ .name | default .root.Chart.Name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
{{- with .component }}
app.kubernetes.io/component: {{ . }}
{{- end }}
{{- end -}}

{{/* Labels of one component's objects (same arguments as the selector). */}}
{{- define "openmemory.componentLabels" -}}
{{ include "openmemory.selector" . }}
app.kubernetes.io/part-of: openmemory
{{- if not .name }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
{{- end }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version }}
{{- end -}}

{{/* Labels of the release's shared objects (ConfigMap, Secret, ...); takes the root context. */}}
{{- define "openmemory.labels" -}}
{{ include "openmemory.componentLabels" (dict "root" .) }}
{{- end -}}

{{/* A checksum of the rendered .files (templates under templates/): as a pod annotation it rolls the
pods when one of them changes. */}}
{{- define "openmemory.checksum" -}}
{{- $root := .root -}}
{{- $rendered := list -}}
{{- range .files }}
{{- $rendered = append $rendered (include (print $root.Template.BasePath "/" .) $root) -}}
{{- end -}}
{{- join "\n---\n" $rendered | sha256sum -}}
{{- end -}}

{{- define "openmemory.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{- define "openmemory.secretName" -}}
{{- .Values.secrets.existingSecret | default (printf "%s-secrets" (include "openmemory.fullname" .)) -}}
{{- end -}}

{{- define "openmemory.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{ .Values.serviceAccount.name | default (include "openmemory.fullname" .) }}
{{- else -}}
{{ .Values.serviceAccount.name | default "default" }}
{{- end -}}
{{- end -}}

{{/* Which components use each store (the `uses` of the services' components; deploy/check.py
compares the two): only they get its credentials, and only they may reach it. */}}
{{- define "openmemory.storeUsers" -}}
{"nats": ["gateway", "admin", "ingest", "search"], "qdrant": ["ingest", "search"], "neo4j": ["ingest", "search"]}
{{- end -}}

{{/* The ports each component listens on: its doors, and the ops port (/healthz, /readyz, /metrics)
that every one of them serves. */}}
{{- define "openmemory.ports" -}}
{{- $doors := dict "all" (dict "mcp" 8765 "admin" 3000) "gateway" (dict "mcp" 8765) "admin" (dict "admin" 3000) -}}
{{- toJson (merge (dict "ops" 8766) (get $doors .component | default dict)) -}}
{{- end -}}

{{/* The Service in front of a door: the MCP endpoint ("mcp") or the dashboard ("dashboard"). */}}
{{- define "openmemory.doorService" -}}
{{- include "openmemory.fullname" .root -}}
{{- if eq .root.Values.mode "distributed" }}-{{ ternary "gateway" "admin" (eq .door "mcp") }}{{ end -}}
{{- end -}}

{{/* NATS: with auth, the user and password are put into the URL by Kubernetes from the container's
NATS_USER and NATS_PASSWORD (the app reads only OPENMEMORY_NATS_URL). */}}
{{- define "openmemory.natsUrl" -}}
{{- $url := .Values.nats.url | default (printf "nats://%s-nats:4222" (include "openmemory.fullname" .)) -}}
{{- if .Values.nats.auth.enabled -}}
{{- $parts := splitn "://" 2 $url -}}
{{- printf "%s://$(NATS_USER):$(NATS_PASSWORD)@%s" $parts._0 $parts._1 -}}
{{- else -}}
{{ $url }}
{{- end -}}
{{- end -}}

{{- define "openmemory.qdrantUrl" -}}
{{- .Values.qdrant.url | default (printf "http://%s-qdrant:6333" (include "openmemory.fullname" .)) -}}
{{- end -}}

{{- define "openmemory.graphUrl" -}}
{{- .Values.neo4j.url | default (printf "bolt://%s-neo4j:7687" (include "openmemory.fullname" .)) -}}
{{- end -}}

{{/* The Ingress host of "mcp" or "dashboard", when the Ingress is on. */}}
{{- define "openmemory.ingressHost" -}}
{{- if .root.Values.ingress.enabled -}}
{{ ternary .root.Values.ingress.mcpHost .root.Values.ingress.dashboardHost (eq .door "mcp") }}
{{- end -}}
{{- end -}}

{{/* The public URL of "mcp" or "dashboard": publicUrl.<door>, else from its Ingress host (https
when a TLS entry names the host), else nothing. */}}
{{- define "openmemory.publicUrl" -}}
{{- $host := include "openmemory.ingressHost" . -}}
{{- $tls := false -}}
{{- range .root.Values.ingress.tls }}{{ if has $host (.hosts | default list) }}{{ $tls = true }}{{ end }}{{ end -}}
{{- if get .root.Values.publicUrl .door -}}
{{ get .root.Values.publicUrl .door }}
{{- else if $host -}}
{{ ternary "https" "http" $tls }}://{{ $host }}{{ if eq .door "mcp" }}/mcp{{ end }}
{{- end -}}
{{- end -}}

{{/* The Host headers one door accepts, as JSON: loopback, its Service by every in-cluster name
(any port, and bare for port 80), its public host and Ingress host, and allowedHosts. */}}
{{- define "openmemory.allowedHosts" -}}
{{- $svc := include "openmemory.doorService" . -}}
{{- $ns := .root.Release.Namespace -}}
{{- $hosts := list "127.0.0.1:*" "localhost:*" "[::1]:*" -}}
{{- range list $svc (printf "%s.%s" $svc $ns) (printf "%s.%s.svc" $svc $ns) (printf "%s.%s.svc.%s" $svc $ns .root.Values.clusterDomain) }}
{{- $hosts = append (append $hosts (printf "%s:*" .)) . -}}
{{- end -}}
{{- $public := list (include "openmemory.ingressHost" .) -}}
{{- with include "openmemory.publicUrl" . }}{{ $public = append $public (urlParse .).host }}{{ end -}}
{{- range compact $public }}
{{- $hosts = append (append $hosts .) (printf "%s:*" (regexReplaceAll ":[0-9]+$" . "")) -}}
{{- end -}}
{{- concat $hosts .root.Values.allowedHosts | uniq | toJson -}}
{{- end -}}

{{/* The browser origins one door accepts, as JSON: loopback for MCP (the app's own default), the
public URL's origin, and allowedOrigins. */}}
{{- define "openmemory.allowedOrigins" -}}
{{- $origins := ternary (list "http://127.0.0.1:*" "http://localhost:*" "http://[::1]:*") list (eq .door "mcp") -}}
{{- with include "openmemory.publicUrl" . }}
{{- $url := urlParse . -}}
{{- $origins = append $origins (printf "%s://%s" $url.scheme $url.host) -}}
{{- end -}}
{{- concat $origins .root.Values.allowedOrigins | uniq | toJson -}}
{{- end -}}
