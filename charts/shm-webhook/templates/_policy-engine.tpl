{{/*
engine: policy (docs/policy-engine.md). The CEL is files/policy-engine.yaml, generated from
the Python generator (`python scripts/policy_engine_file.py`) and the same for every set of
values; the values enter as the policies' first variables, CEL string literals, exactly as
`shm-webhook policy` writes them (tests/chart/test_policy_engine.py renders both).
*/}}

{{/* What the policy engine needs and cannot do without; fails the render otherwise. */}}
{{- define "shm-webhook.policyEngineChecks" -}}
{{- if semverCompare "<1.36.0-0" .Capabilities.KubeVersion.Version }}
{{- fail (printf "engine: policy needs Kubernetes 1.36 or later (MutatingAdmissionPolicy admissionregistration.k8s.io/v1); this cluster is %s: use engine: webhook" .Capabilities.KubeVersion.Version) }}
{{- end }}
{{- if regexMatch `['\\[:cntrl:]]` .Values.mountPath }}
{{- fail (printf "mountPath %q: engine: policy takes a path without quotes, backslashes or control characters" .Values.mountPath) }}
{{- end }}
{{- $default := .Values.defaultSize }}
{{- if hasSuffix "%" $default }}
{{- if not (regexMatch `^0*([1-9][0-9]?(\.[0-9]+)?|0?\.[0-9]*[1-9][0-9]*|100(\.0+)?)%$` $default) }}
{{- fail (printf "defaultSize %q is not valid; expected N%% of the memory limit with 0 < N <= 100" $default) }}
{{- end }}
{{- if regexMatch `\.[0-9]{7,}[1-9]0*%$` $default }}
{{- fail (printf "defaultSize %q: engine: policy computes a percentage with at most 7 decimals" $default) }}
{{- end }}
{{- end }}
{{- end }}

{{/* A value as a CEL string literal (the checks above keep quotes and backslashes out). */}}
{{- define "shm-webhook.celString" -}}
{{- printf "'%s'" . }}
{{- end }}

{{/* The values as the first variables of every policy, in webhook.admission_variables' order. */}}
{{- define "shm-webhook.policySettings" -}}
- name: annotationKey
  expression: {{ include "shm-webhook.celString" .Values.annotation | quote }}
- name: defaultSize
  expression: {{ include "shm-webhook.celString" .Values.defaultSize | quote }}
- name: maxSize
  expression: {{ include "shm-webhook.celString" .Values.maxSize | quote }}
- name: memoryPolicy
  expression: {{ include "shm-webhook.celString" .Values.memoryPolicy | quote }}
- name: onInvalid
  expression: {{ include "shm-webhook.celString" .Values.onInvalid | quote }}
- name: volumeName
  expression: {{ include "shm-webhook.celString" .Values.volumeName | quote }}
- name: mountPath
  expression: {{ include "shm-webhook.celString" .Values.mountPath | quote }}
- name: namespacePolicy
  expression: {{ ternary "true" "false" .Values.namespacePolicy.enabled | quote }}
{{- end }}

{{/* Pod CREATE: what every policy matches, as the webhook's rules. */}}
{{- define "shm-webhook.policyConstraints" -}}
matchPolicy: Equivalent
resourceRules:
  - apiGroups:
      - ""
    apiVersions:
      - v1
    operations:
      - CREATE
    resources:
      - pods
    scope: Namespaced
{{- end }}

{{/* The pods in scope: the webhook configuration's selectors. */}}
{{- define "shm-webhook.policyScope" -}}
namespaceSelector:
  matchExpressions:
    {{- include "shm-webhook.scopeExpressions" . | nindent 4 }}
objectSelector:
  {{- include "shm-webhook.podOptOut" . | nindent 2 }}
{{- end }}

{{- define "shm-webhook.policyLabels" -}}
{{ include "shm-webhook.labels" . }}
app.kubernetes.io/component: policy
{{- end }}
