{{/* Pods: the template every workload shares, and the OpenMemory container. */}}

{{/* .base with .over's keys put on top, as YAML. One level deep, and unlike mergeOverwrite a zero
value (runAsUser: 0, false) in .over counts: an override is what it says. */}}
{{- define "openmemory.overlay" -}}
{{- $out := deepCopy .base -}}
{{- range $key, $value := .over }}{{ $_ := set $out $key $value }}{{ end -}}
{{- toYaml $out -}}
{{- end -}}

{{/* A pod template: labels, annotations, service account, security and placement; the component's
own settings (.cfg) win over the global ones. Takes the selector's arguments (root, name,
component), cfg, the rendered .containers and .volumes, and a .checksum of the configuration the
pods read (a change rolls them). */}}
{{- define "openmemory.podTemplate" -}}
{{- $root := .root -}}
{{- $values := $root.Values -}}
{{- $cfg := .cfg -}}
{{- $selector := include "openmemory.selector" . | fromYaml -}}
metadata:
  labels:
    {{- include "openmemory.componentLabels" . | nindent 4 }}
    {{- with merge (dict) ($cfg.podLabels | default dict) $values.podLabels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- $annotations := merge (dict) ($cfg.podAnnotations | default dict) $values.podAnnotations }}
  {{- with .checksum }}{{ $_ := set $annotations "checksum/config" . }}{{ end }}
  {{- with $annotations }}
  annotations: {{- toYaml . | nindent 4 }}
  {{- end }}
spec:
  serviceAccountName: {{ include "openmemory.serviceAccountName" $root }}
  automountServiceAccountToken: {{ $values.serviceAccount.automountServiceAccountToken }}
  {{- with $values.imagePullSecrets }}
  imagePullSecrets: {{- toYaml . | nindent 4 }}
  {{- end }}
  securityContext:
    {{- include "openmemory.overlay" (dict "base" $values.podSecurityContext "over" $cfg.podSecurityContext) | nindent 4 }}
  terminationGracePeriodSeconds: {{ $cfg.terminationGracePeriodSeconds | default 60 }}
  {{- with $cfg.nodeSelector | default $values.nodeSelector }}
  nodeSelector: {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $cfg.tolerations | default $values.tolerations }}
  tolerations: {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $cfg.affinity | default $values.affinity }}
  affinity: {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- $spread := list }}
  {{- range $cfg.topologySpreadConstraints | default $values.topologySpreadConstraints }}
  {{- $spread = append $spread (merge (deepCopy .) (dict "labelSelector" (dict "matchLabels" $selector))) }}
  {{- end }}
  {{- with $spread }}
  topologySpreadConstraints: {{- toYaml . | nindent 4 }}
  {{- end }}
  containers:
    {{- .containers | nindent 4 }}
  volumes:
    {{- .volumes | nindent 4 }}
{{- end -}}

{{/* The OpenMemory container; .component is its --target ("all" in single mode). Settings come
from the release's ConfigMap; credentials only to the components that use the store. */}}
{{- define "openmemory.container" -}}
{{- $root := .root -}}
{{- $values := $root.Values -}}
{{- $cfg := .cfg -}}
{{- $users := include "openmemory.storeUsers" . | fromJson -}}
{{- $secret := include "openmemory.secretName" $root -}}
- name: openmemory
  image: {{ include "openmemory.image" $root }}
  imagePullPolicy: {{ $values.image.pullPolicy }}
  args: ["--target", {{ .component | quote }}]
  envFrom:
    - configMapRef:
        name: {{ include "openmemory.fullname" $root }}-config
    {{- with concat $values.envFrom ($cfg.envFrom | default list) }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  env:
    {{- if has .component $users.nats }}
    {{- if $values.nats.auth.enabled }}
    - name: NATS_USER
      valueFrom: {secretKeyRef: {name: {{ $secret }}, key: nats-user}}
    - name: NATS_PASSWORD
      valueFrom: {secretKeyRef: {name: {{ $secret }}, key: nats-password}}
    {{- end }}
    - name: OPENMEMORY_NATS_URL  # here, not in the ConfigMap: with auth it holds the password
      value: {{ include "openmemory.natsUrl" $root | quote }}
    {{- end }}
    {{- if and (has .component $users.qdrant) $values.qdrant.auth.enabled }}
    - name: OPENMEMORY_QDRANT_API_KEY
      valueFrom: {secretKeyRef: {name: {{ $secret }}, key: qdrant-api-key}}
    {{- end }}
    {{- if has .component $users.neo4j }}
    - name: OPENMEMORY_GRAPH_PASSWORD
      valueFrom: {secretKeyRef: {name: {{ $secret }}, key: graph-password}}
    {{- end }}
    - name: OTEL_SERVICE_NAME
      value: {{ printf "openmemory-%s" .component | quote }}
    {{- with $cfg.modelThreads }}
    - name: OPENMEMORY_MODEL_THREADS  # else onnxruntime takes a thread per core of the node
      value: {{ . | quote }}
    {{- end }}
    {{- with concat $values.extraEnv ($cfg.extraEnv | default list) }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  ports:
    {{- range $name, $port := include "openmemory.ports" . | fromJson }}
    - {name: {{ $name }}, containerPort: {{ $port }}}
    {{- end }}
  # With OPENMEMORY_OPS_SEPARATE the probes and metrics are on the ops port only.
  startupProbe:
    httpGet: {path: /healthz, port: ops}
    periodSeconds: 2
    failureThreshold: 60
  livenessProbe:
    httpGet: {path: /healthz, port: ops}
    periodSeconds: 15
    failureThreshold: 4
  readinessProbe:
    httpGet: {path: /readyz, port: ops}
    periodSeconds: 10
  resources:
    {{- toYaml $cfg.resources | nindent 4 }}
  securityContext:
    {{- include "openmemory.overlay" (dict "base" $values.securityContext "over" $cfg.securityContext) | nindent 4 }}
  volumeMounts:
    - {name: data, mountPath: /data}
    - {name: tmp, mountPath: /tmp}
{{- end -}}
