{{/* Workloads: an OpenMemory component's Deployment, autoscaler, budget and Service; a store's
StatefulSet, Service and NetworkPolicy. */}}

{{/* A Deployment for one component in distributed mode, with its HPA and PodDisruptionBudget when
configured. Takes root, component and cfg (the component's values). */}}
{{- define "openmemory.deployment" -}}
{{- $root := .root -}}
{{- $cfg := .cfg -}}
{{- $autoscaled := and $cfg.autoscaling $cfg.autoscaling.enabled -}}
{{- $fewest := $cfg.replicas -}}
{{- if $autoscaled }}{{ $fewest = $cfg.autoscaling.minReplicas }}{{ end -}}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ include "openmemory.fullname" $root }}-{{ .component }}
  labels:
    {{- include "openmemory.componentLabels" . | nindent 4 }}
spec:
  {{- if not $autoscaled }}
  replicas: {{ $cfg.replicas }}
  {{- end }}
  selector:
    matchLabels:
      {{- include "openmemory.selector" . | nindent 6 }}
  template:
    {{- $containers := include "openmemory.container" . }}
    {{- $volumes := "- {name: data, emptyDir: {}}\n- {name: tmp, emptyDir: {}}" }}
    {{- $read := list "config/configmap.yaml" "config/secret.yaml" }}
    {{- $pod := dict "containers" $containers "volumes" $volumes "checksum" (include "openmemory.checksum" (dict "root" $root "files" $read)) }}
    {{- include "openmemory.podTemplate" (merge $pod .) | nindent 4 }}
{{- if $autoscaled }}
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: {{ include "openmemory.fullname" $root }}-{{ .component }}
  labels:
    {{- include "openmemory.componentLabels" . | nindent 4 }}
spec:
  scaleTargetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: {{ include "openmemory.fullname" $root }}-{{ .component }}
  minReplicas: {{ $cfg.autoscaling.minReplicas }}
  maxReplicas: {{ $cfg.autoscaling.maxReplicas }}
  metrics:
    {{- if eq ($cfg.autoscaling.metric | default "cpu") "lag" }}
    # The ingest backlog, from an external metrics API (prometheus-adapter; see values.yaml).
    - type: External
      external:
        metric:
          name: openmemory_ingest_pending_commands
        target:
          type: AverageValue
          averageValue: {{ $cfg.autoscaling.targetPendingCommands | quote }}
    {{- else }}
    - type: Resource
      resource:
        name: cpu
        target:
          type: Utilization
          averageUtilization: {{ $cfg.autoscaling.targetCPUUtilizationPercentage }}
    {{- end }}
{{- end }}
{{- if and $cfg.podDisruptionBudget $cfg.podDisruptionBudget.enabled (gt (int $fewest) 1) }}
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ include "openmemory.fullname" $root }}-{{ .component }}
  labels:
    {{- include "openmemory.componentLabels" . | nindent 4 }}
spec:
  minAvailable: {{ $cfg.podDisruptionBudget.minAvailable }}
  selector:
    matchLabels:
      {{- include "openmemory.selector" . | nindent 6 }}
{{- end }}
{{- end -}}

{{/* The Service of one OpenMemory component: its doors (of service.type) and its ops port, which
the ServiceMonitor scrapes. Takes root, component, and serviceName (default: <fullname>-<component>). */}}
{{- define "openmemory.service" -}}
{{- $ports := include "openmemory.ports" . | fromJson -}}
{{- $numbers := dict "mcp" .root.Values.service.gatewayPort "admin" .root.Values.service.adminPort "ops" 8766 -}}
apiVersion: v1
kind: Service
metadata:
  name: {{ .serviceName | default (printf "%s-%s" (include "openmemory.fullname" .root) .component) }}
  labels:
    {{- include "openmemory.componentLabels" . | nindent 4 }}
spec:
  type: {{ ternary "ClusterIP" .root.Values.service.type (eq .component "ingest" "search") }}
  selector:
    {{- include "openmemory.selector" . | nindent 4 }}
  ports:
    {{- range $name, $_ := $ports }}
    - {name: {{ $name }}, port: {{ get $numbers $name }}, targetPort: {{ $name }}}
    {{- end }}
{{- end -}}

{{/* A single-replica StatefulSet with a volume at .mountPath, and its Service, for an in-chart
store, and the NetworkPolicy that lets only its users in. Takes root and name (nats, qdrant, neo4j),
cfg, ports (name: number), clientPorts (the names the app uses), probe, and optionally command,
env, lifecycle, configFiles (templates whose change rolls the pod, besides the Secret), mounts and
volumes (lists; volumes default to a tmp emptyDir). */}}
{{- define "openmemory.store" -}}
{{- $root := .root -}}
{{- $store := merge (dict "component" "store") . -}}
{{- $fullname := printf "%s-%s" (include "openmemory.fullname" $root) .name -}}
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: {{ $fullname }}
  labels:
    {{- include "openmemory.componentLabels" $store | nindent 4 }}
spec:
  serviceName: {{ .serviceName | default $fullname }}
  replicas: {{ .replicas | default 1 }}
  {{- if gt (int (.replicas | default 1)) 1 }}
  podManagementPolicy: Parallel  # the peers find each other: no need to start them one by one
  {{- end }}
  selector:
    matchLabels:
      {{- include "openmemory.selector" $store | nindent 6 }}
  template:
    {{- $volumes := toYaml (.volumes | default (list (dict "name" "tmp" "emptyDir" dict))) }}
    {{- $containers := include "openmemory.storeContainer" $store }}
    {{- $read := prepend (.configFiles | default list) "config/secret.yaml" }}
    {{- $pod := dict "containers" $containers "volumes" $volumes "checksum" (include "openmemory.checksum" (dict "root" $root "files" $read)) }}
    {{- include "openmemory.podTemplate" (merge $pod $store) | nindent 4 }}
  volumeClaimTemplates:
    - metadata:
        name: data
      spec:
        accessModes: ["ReadWriteOnce"]
        {{- with .cfg.persistence.storageClass }}
        storageClassName: {{ . }}
        {{- end }}
        resources:
          requests:
            storage: {{ .cfg.persistence.size }}
---
apiVersion: v1
kind: Service
metadata:
  name: {{ $fullname }}
  labels:
    {{- include "openmemory.componentLabels" $store | nindent 4 }}
spec:
  selector:
    {{- include "openmemory.selector" $store | nindent 4 }}
  ports:
    {{- range $name, $port := .ports }}
    - {name: {{ $name }}, port: {{ $port }}, targetPort: {{ $name }}}
    {{- end }}
{{- if $root.Values.networkPolicy.enabled }}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: {{ $fullname }}
  labels:
    {{- include "openmemory.componentLabels" $store | nindent 4 }}
spec:
  podSelector:
    matchLabels:
      {{- include "openmemory.selector" $store | nindent 6 }}
  policyTypes: [Ingress]
  ingress:
    - from:
        - podSelector:
            matchLabels:
              {{- include "openmemory.selector" (dict "root" $root) | nindent 14 }}
            matchExpressions:
              - key: app.kubernetes.io/component
                operator: In
                values: {{ get (include "openmemory.storeUsers" . | fromJson) .name | toJson }}
      ports:
        {{- range .clientPorts }}
        - {port: {{ get $store.ports . }}, protocol: TCP}
        {{- end }}
    {{- with .peerPorts }}
    # The store's own pods, to each other (cluster routes, replication).
    - from:
        - podSelector:
            matchLabels:
              {{- include "openmemory.selector" $store | nindent 14 }}
      ports:
        {{- range . }}
        - {port: {{ get $store.ports . }}, protocol: TCP}
        {{- end }}
    {{- end }}
{{- end }}
{{- end -}}

{{/* A store's container (the arguments of openmemory.store). */}}
{{- define "openmemory.storeContainer" -}}
- name: {{ .name }}
  image: {{ .cfg.image }}
  {{- with .command }}
  command: {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .env }}
  env: {{- toYaml . | nindent 4 }}
  {{- end }}
  ports:
    {{- range $name, $port := .ports }}
    - {name: {{ $name }}, containerPort: {{ $port }}}
    {{- end }}
  readinessProbe: {{- toYaml .probe | nindent 4 }}
  {{- with .lifecycle }}
  lifecycle: {{- toYaml . | nindent 4 }}
  {{- end }}
  resources: {{- toYaml .cfg.resources | nindent 4 }}
  securityContext:
    {{- include "openmemory.overlay" (dict "base" .root.Values.securityContext "over" .cfg.securityContext) | nindent 4 }}
  volumeMounts:
    - {name: data, mountPath: {{ .mountPath }}}
    {{- with .mounts }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
{{- end -}}
