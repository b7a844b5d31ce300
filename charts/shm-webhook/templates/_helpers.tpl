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

{{/*
The image of every pod the chart makes (webhook, certificate Jobs, test pod):
<registry>/<repository>:<tag>, then @<digest> when one is set (the runtime pulls by the digest;
the tag stays for people reading the manifest). global.imageRegistry, the umbrella-chart
convention, overrides image.registry; an empty registry leaves the repository as it is.
*/}}
{{- define "shm-webhook.image" -}}
{{- $image := .Values.image }}
{{- $registry := .Values.global.imageRegistry | default $image.registry }}
{{- $reference := $image.repository }}
{{- if $registry }}
{{- $reference = printf "%s/%s" $registry $reference }}
{{- end }}
{{- $reference = printf "%s:%s" $reference (default .Chart.AppVersion $image.tag) }}
{{- if $image.digest }}
{{- $reference = printf "%s@%s" $reference $image.digest }}
{{- end }}
{{- $reference }}
{{- end }}

{{/*
How every webhook entry calls the server: the Service, the CA (manual mode; the other modes
have it written by the post-install Job or cainjector), pod CREATE only, and the call limits.
*/}}
{{- define "shm-webhook.webhookCall" -}}
admissionReviewVersions:
  - v1
  - v1beta1
clientConfig:
  service:
    name: {{ include "shm-webhook.fullname" . }}
    namespace: {{ .Release.Namespace }}
    path: /mutate
    port: 443
  {{- if eq .Values.tls.mode "manual" }}
  caBundle: {{ .Values.tls.caBundle }}
  {{- end }}
rules:
  - operations:
      - CREATE
    apiGroups:
      - ""
    apiVersions:
      - v1
    resources:
      - pods
    scope: Namespaced
matchPolicy: Equivalent
sideEffects: None
timeoutSeconds: {{ .Values.timeoutSeconds | int }}
reinvocationPolicy: IfNeeded
{{- end }}

{{/* The `helm test` pod, in the release namespace. */}}
{{- define "shm-webhook.testPodName" -}}
{{- include "shm-webhook.suffixedName" (list . "test-shm") }}
{{- end }}

{{/*
The label that routes a pod of the release namespace to the webhook's "helm-test" entry. Only
the chart's test pod carries it; every other pod there is never sent (the namespace is excluded
from the main entry).
*/}}
{{- define "shm-webhook.testLabels" -}}
shm-webhook/helm-test: {{ .Release.Name }}
{{- end }}

{{/* MiB the test writes to its /dev/shm: more than the 64 MiB container runtimes give. */}}
{{- define "shm-webhook.testWriteMiB" -}}
100
{{- end }}

{{/*
The size `df -k` (statvfs) reports for a tmpfs of test.shmSize, in KiB. The schema allows only
whole Mi or Gi, so the size is a whole number of 4 KiB pages and nothing is rounded.
*/}}
{{- define "shm-webhook.testShmKiB" -}}
{{- $size := .Values.test.shmSize }}
{{- $count := trimSuffix "Mi" (trimSuffix "Gi" $size) | int }}
{{- $kib := mul $count (ternary 1048576 1024 (hasSuffix "Gi" $size)) }}
{{- $write := include "shm-webhook.testWriteMiB" . | int }}
{{- if le (int $kib) (mul $write 1024 | int) }}
{{- fail (printf "test.shmSize %s is too small: the test writes %d MiB into it, more than the 64 MiB container runtimes give; ask for more than %dMi" $size $write $write) }}
{{- end }}
{{- $kib }}
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

{{/* The namespaces in scope, as matchExpressions of a namespaceSelector. */}}
{{- define "shm-webhook.scopeExpressions" -}}
{{- if eq .Values.scope "namespace" -}}
- key: shm-injection
  operator: In
  values:
    - enabled
{{- else -}}
- key: shm-injection
  operator: NotIn
  values:
    - disabled
{{- end }}
- key: kubernetes.io/metadata.name
  operator: NotIn
  values:
    {{- include "shm-webhook.excludedNamespaces" . | nindent 4 }}
{{- end }}

{{/* The objectSelector that lets a pod opt out with its label. */}}
{{- define "shm-webhook.podOptOut" -}}
matchExpressions:
  - key: shm-injection
    operator: NotIn
    values:
      - disabled
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
      image: {{ include "shm-webhook.image" . }}
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
