{{/*
Names, labels and the pieces every pod template shares. Nothing here may be random or
time-dependent: two renders of the chart must be byte-identical (GitOps).
*/}}

{{/* The chart name, or nameOverride. */}}
{{- define "shm-webhook.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The object name prefix: fullnameOverride, else <release>-<name>, else the release name when it
already contains the chart name. Also the Service's name, so the certificates' DNS names.
*/}}
{{- define "shm-webhook.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/*
The full name with a suffix, at most 52 characters (a CronJob's limit, so one rule fits every
kind): (list . "certs") -> <fullname>-certs.
*/}}
{{- define "shm-webhook.suffixedName" -}}
{{- $ctx := index . 0 }}
{{- $suffix := index . 1 }}
{{- $room := sub 51 (len $suffix) | int }}
{{- printf "%s-%s" (include "shm-webhook.fullname" $ctx | trunc $room | trimSuffix "-") $suffix }}
{{- end }}

{{- define "shm-webhook.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels of every object; each object adds its app.kubernetes.io/component. */}}
{{- define "shm-webhook.labels" -}}
helm.sh/chart: {{ include "shm-webhook.chart" . }}
app.kubernetes.io/name: {{ include "shm-webhook.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: shm-webhook
{{- end }}

{{/*
The webhook pods' selector. The component keeps the certificate Jobs' pods out of the
Service, the PodDisruptionBudget and the topology spread.
*/}}
{{- define "shm-webhook.selectorLabels" -}}
app.kubernetes.io/name: {{ include "shm-webhook.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: webhook
{{- end }}

{{/* The webhook pods' ServiceAccount. */}}
{{- define "shm-webhook.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "shm-webhook.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The Secret holding tls.crt and tls.key; manual mode requires tls.existingSecret. */}}
{{- define "shm-webhook.secretName" -}}
{{- if eq .Values.tls.mode "manual" }}
{{- required "tls.existingSecret is required with tls.mode=manual: the name of a kubernetes.io/tls Secret in the release namespace" .Values.tls.existingSecret }}
{{- else }}
{{- include "shm-webhook.suffixedName" (list . "tls") }}
{{- end }}
{{- end }}

{{/* The MutatingWebhookConfiguration (cluster-scoped) and the webhook's name inside it. */}}
{{- define "shm-webhook.webhookConfigName" -}}
{{- include "shm-webhook.fullname" . }}
{{- end }}

{{- define "shm-webhook.webhookName" -}}
{{- printf "%s.%s.svc" (include "shm-webhook.fullname" .) .Release.Namespace }}
{{- end }}

{{/* Identity of the renewal CronJob and the post-install Job (bootstrap mode). */}}
{{- define "shm-webhook.certsName" -}}
{{- include "shm-webhook.suffixedName" (list . "certs") }}
{{- end }}

{{/* Identity of the pre-install Job: a hook itself, gone once the hooks succeed. */}}
{{- define "shm-webhook.certsHookName" -}}
{{- include "shm-webhook.suffixedName" (list . "certs-hook") }}
{{- end }}

{{- define "shm-webhook.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{- define "shm-webhook.certsImage" -}}
{{- $image := .Values.tls.bootstrap.image }}
{{- printf "%s:%s" (default .Values.image.repository $image.repository) (default (default .Chart.AppVersion .Values.image.tag) $image.tag) }}
{{- end }}

{{/* failurePolicy: the value when set, else Fail without a defaultSize and Ignore with one. */}}
{{- define "shm-webhook.failurePolicy" -}}
{{- if .Values.failurePolicy }}
{{- .Values.failurePolicy }}
{{- else if .Values.defaultSize }}
{{- "Ignore" }}
{{- else }}
{{- "Fail" }}
{{- end }}
{{- end }}

{{/* Namespaces the webhook never applies to, in both scopes. */}}
{{- define "shm-webhook.excludedNamespaces" -}}
{{- $always := list .Release.Namespace "kube-system" "kube-public" "kube-node-lease" }}
{{- toYaml (concat $always .Values.excludeNamespaces | uniq) }}
{{- end }}

{{/* The restricted Pod Security Standard, for every pod the chart makes. */}}
{{- define "shm-webhook.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
fsGroup: 65532
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{- define "shm-webhook.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
capabilities:
  drop:
    - ALL
{{- end }}

{{/*
The pod template of the certificate Jobs (pre-install Job, post-install Job, renewal CronJob):
(dict "ctx" . "serviceAccount" NAME "skipCaBundle" BOOL). Labelled shm-injection: disabled
so the webhook never sees its own machinery.
*/}}
{{- define "shm-webhook.certsPodTemplate" -}}
{{- with .ctx -}}
metadata:
  labels:
    {{- include "shm-webhook.labels" . | nindent 4 }}
    app.kubernetes.io/component: certs
    shm-injection: disabled
spec:
  serviceAccountName: {{ $.serviceAccount }}
  automountServiceAccountToken: true
  restartPolicy: Never
  {{- with .Values.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  securityContext:
    {{- include "shm-webhook.podSecurityContext" . | nindent 4 }}
  containers:
    - name: certs
      image: {{ include "shm-webhook.certsImage" . }}
      imagePullPolicy: {{ .Values.image.pullPolicy }}
      args:
        - certs
        - bootstrap
        - --secret
        - {{ include "shm-webhook.secretName" . }}
        - --namespace
        - {{ .Release.Namespace }}
        - --service
        - {{ include "shm-webhook.fullname" . }}
        - --webhook-config
        - {{ include "shm-webhook.webhookConfigName" . }}
        {{- if $.skipCaBundle }}
        - --skip-ca-bundle
        {{- end }}
      securityContext:
        {{- include "shm-webhook.containerSecurityContext" . | nindent 8 }}
      resources:
        {{- toYaml .Values.tls.bootstrap.resources | nindent 8 }}
      volumeMounts:
        - name: tmp
          mountPath: /tmp
  volumes:
    - name: tmp
      emptyDir: {}
  {{- with .Values.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}
{{- end }}

{{/*
Rights on the serving Secret. `create` cannot be limited to a name (the name is not known
when the request is authorized), so it has its own rule; the rest names the Secret.
*/}}
{{- define "shm-webhook.certsSecretRules" -}}
- apiGroups:
    - ""
  resources:
    - secrets
  verbs:
    - create
- apiGroups:
    - ""
  resources:
    - secrets
  resourceNames:
    - {{ include "shm-webhook.secretName" . }}
  verbs:
    - get
    - update
    - patch
{{- end }}

{{/* Annotations of the pre-install Job's ServiceAccount and RBAC: (include ... WEIGHT). */}}
{{- define "shm-webhook.preHookAnnotations" -}}
helm.sh/hook: pre-install,pre-upgrade,pre-rollback
helm.sh/hook-weight: {{ . | quote }}
helm.sh/hook-delete-policy: before-hook-creation,hook-succeeded
{{- end }}
