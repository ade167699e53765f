{{- define "openmemory.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}{{ .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else -}}{{ printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" }}{{- end -}}
{{- end -}}

{{- define "openmemory.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "openmemory.selector" -}}
app.kubernetes.io/name: {{ .root.Chart.Name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "openmemory.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{- define "openmemory.secretName" -}}
{{- .Values.secrets.existingSecret | default (printf "%s-secrets" (include "openmemory.fullname" .)) -}}
{{- end -}}

{{- define "openmemory.natsUrl" -}}
{{- .Values.nats.url | default (printf "nats://%s-nats:4222" (include "openmemory.fullname" .)) -}}
{{- end -}}

{{- define "openmemory.qdrantUrl" -}}
{{- .Values.qdrant.url | default (printf "http://%s-qdrant:6333" (include "openmemory.fullname" .)) -}}
{{- end -}}

{{- define "openmemory.graphUrl" -}}
{{- .Values.neo4j.url | default (printf "bolt://%s-neo4j:7687" (include "openmemory.fullname" .)) -}}
{{- end -}}

{{/* Health port of a component: the gateway's, the dashboard's, or the ops port. */}}
{{- define "openmemory.healthPort" -}}
{{- if has .component (list "all" "gateway") -}}8765{{- else if eq .component "admin" -}}3000{{- else -}}8766{{- end -}}
{{- end -}}

{{/* The container every OpenMemory workload runs; .component is its --target. */}}
{{- define "openmemory.container" -}}
{{- $root := .root -}}
- name: openmemory
  image: {{ include "openmemory.image" $root }}
  imagePullPolicy: {{ $root.Values.image.pullPolicy }}
  args: ["--target", {{ .component | quote }}]
  envFrom:
    - configMapRef:
        name: {{ include "openmemory.fullname" $root }}-config
  env:
    {{- if and (ne .component "all") (or $root.Values.secrets.existingSecret $root.Values.secrets.neo4jPassword) }}
    - name: OPENMEMORY_GRAPH_PASSWORD
      valueFrom:
        secretKeyRef:
          name: {{ include "openmemory.secretName" $root }}
          key: graph-password
    {{- end }}
    - name: OTEL_SERVICE_NAME
      value: {{ printf "openmemory-%s" .component | quote }}
  ports:
    - {name: health, containerPort: {{ include "openmemory.healthPort" . }}}
    {{- if eq .component "all" }}
    - {name: admin, containerPort: 3000}
    {{- end }}
  livenessProbe:
    httpGet: {path: /healthz, port: health}
    initialDelaySeconds: 10
    periodSeconds: 15
    failureThreshold: 4
  readinessProbe:
    httpGet: {path: /readyz, port: health}
    periodSeconds: 10
  startupProbe:
    httpGet: {path: /healthz, port: health}
    periodSeconds: 2
    failureThreshold: 60
  resources:
    {{- toYaml .resources | nindent 4 }}
  securityContext:
    {{- toYaml $root.Values.securityContext | nindent 4 }}
  volumeMounts:
    - {name: data, mountPath: /data}
    - {name: tmp, mountPath: /tmp}
{{- end -}}

{{/* A Deployment (+ optional HPA) for one component in distributed mode. */}}
{{- define "openmemory.deployment" -}}
{{- $root := .root -}}
{{- $cfg := .cfg -}}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ include "openmemory.fullname" $root }}-{{ .component }}
  labels:
    {{- include "openmemory.labels" $root | nindent 4 }}
    app.kubernetes.io/component: {{ .component }}
spec:
  {{- if not (and $cfg.autoscaling $cfg.autoscaling.enabled) }}
  replicas: {{ $cfg.replicas }}
  {{- end }}
  selector:
    matchLabels:
      {{- include "openmemory.selector" . | nindent 6 }}
  template:
    metadata:
      labels:
        {{- include "openmemory.labels" $root | nindent 8 }}
        app.kubernetes.io/component: {{ .component }}
      annotations:
        checksum/config: {{ include (print $root.Template.BasePath "/config/configmap.yaml") $root | sha256sum }}
    spec:
      {{- with $root.Values.imagePullSecrets }}
      imagePullSecrets: {{- toYaml . | nindent 8 }}
      {{- end }}
      securityContext:
        {{- toYaml $root.Values.podSecurityContext | nindent 8 }}
      terminationGracePeriodSeconds: 60
      containers:
        {{- include "openmemory.container" (dict "root" $root "component" .component "resources" $cfg.resources) | nindent 8 }}
      volumes:
        - {name: data, emptyDir: {}}
        - {name: tmp, emptyDir: {}}
{{- if and $cfg.autoscaling $cfg.autoscaling.enabled }}
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: {{ include "openmemory.fullname" $root }}-{{ .component }}
  labels:
    {{- include "openmemory.labels" $root | nindent 4 }}
    app.kubernetes.io/component: {{ .component }}
spec:
  scaleTargetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: {{ include "openmemory.fullname" $root }}-{{ .component }}
  minReplicas: {{ $cfg.autoscaling.minReplicas }}
  maxReplicas: {{ $cfg.autoscaling.maxReplicas }}
  metrics:
    - type: Resource
      resource:
        name: cpu
        target:
          type: Utilization
          averageUtilization: {{ $cfg.autoscaling.targetCPUUtilizationPercentage }}
{{- end }}
{{- end -}}

{{/* A Service in front of one component's health/metrics port (and its own port). */}}
{{- define "openmemory.service" -}}
apiVersion: v1
kind: Service
metadata:
  name: {{ include "openmemory.fullname" .root }}-{{ .component }}
  labels:
    {{- include "openmemory.labels" .root | nindent 4 }}
    app.kubernetes.io/component: {{ .component }}
spec:
  type: {{ .type | default "ClusterIP" }}
  selector:
    {{- include "openmemory.selector" . | nindent 4 }}
  ports:
    - {name: http, port: {{ .port }}, targetPort: {{ include "openmemory.healthPort" . }}}
{{- end -}}

{{/* A single-replica StatefulSet with a volume, for the in-chart NATS, Qdrant and Neo4j. */}}
{{- define "openmemory.store" -}}
{{- $root := .root -}}
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: {{ include "openmemory.fullname" $root }}-{{ .component }}
  labels:
    {{- include "openmemory.labels" $root | nindent 4 }}
    app.kubernetes.io/component: {{ .component }}
spec:
  serviceName: {{ include "openmemory.fullname" $root }}-{{ .component }}
  replicas: 1
  selector:
    matchLabels:
      {{- include "openmemory.selector" . | nindent 6 }}
  template:
    metadata:
      labels:
        {{- include "openmemory.labels" $root | nindent 8 }}
        app.kubernetes.io/component: {{ .component }}
    spec:
      containers:
        - name: {{ .component }}
          image: {{ .cfg.image }}
          {{- with .args }}
          args: {{- toYaml . | nindent 12 }}
          {{- end }}
          {{- with .env }}
          env: {{- toYaml . | nindent 12 }}
          {{- end }}
          ports:
            {{- range $name, $port := .ports }}
            - {name: {{ $name }}, containerPort: {{ $port }}}
            {{- end }}
          readinessProbe:
            {{- toYaml .probe | nindent 12 }}
          resources:
            {{- toYaml .cfg.resources | nindent 12 }}
          volumeMounts:
            - {name: data, mountPath: {{ .mountPath }}}
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
  name: {{ include "openmemory.fullname" $root }}-{{ .component }}
  labels:
    {{- include "openmemory.labels" $root | nindent 4 }}
    app.kubernetes.io/component: {{ .component }}
spec:
  selector:
    {{- include "openmemory.selector" . | nindent 4 }}
  ports:
    {{- range $name, $port := .ports }}
    - {name: {{ $name }}, port: {{ $port }}, targetPort: {{ $name }}}
    {{- end }}
{{- end -}}
