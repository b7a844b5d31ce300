{{/*
What the PrometheusRule and the Grafana dashboard share: the label matchers of the webhook's
series and the container's memory limit in bytes.
*/}}

{{/*
PromQL label matchers of the webhook's series: metrics.prometheusRule.selector, else the labels
the chart's ServiceMonitor produces. The Prometheus operator names the job after the Service
(the ServiceMonitor sets no jobLabel) and adds the Service's namespace.
*/}}
{{- define "shm-webhook.metricsSelector" -}}
{{- with .Values.metrics.prometheusRule.selector }}
{{- . }}
{{- else }}
{{- printf "job=%q,namespace=%q" (include "shm-webhook.fullname" .) .Release.Namespace }}
{{- end }}
{{- end }}

{{/*
resources.limits.memory as a whole number of bytes, or nothing without a limit. Accepts what a
Kubernetes quantity can be: a plain or exponent number (helm reads 134217728 in values.yaml as
the float 1.34217728e+08), a decimal suffix (k M G T P E, m for milli) or a binary one (Ki Mi
Gi Ti Pi Ei); anything else fails the render with the value in the message.
*/}}
{{- define "shm-webhook.memoryLimitBytes" -}}
{{- $limit := dig "limits" "memory" "" .Values.resources }}
{{- if ne (toString $limit) "" }}
{{- $text := toString $limit }}
{{- $factors := dict "" 1.0 "m" 0.001 "k" 1e3 "M" 1e6 "G" 1e9 "T" 1e12 "P" 1e15 "E" 1e18 "Ki" 1024.0 "Mi" 1048576.0 "Gi" 1073741824.0 "Ti" 1099511627776.0 "Pi" 1125899906842624.0 "Ei" 1152921504606846976.0 }}
{{- $number := regexFind "^[0-9]+(\\.[0-9]+)?([eE][+-]?[0-9]+)?" $text }}
{{- $suffix := trimPrefix $number $text }}
{{- if or (eq $number "") (not (hasKey $factors $suffix)) }}
{{- fail (printf "resources.limits.memory %q is not a Kubernetes quantity; write e.g. 192Mi or 1G" $text) }}
{{- end }}
{{- printf "%.0f" (mulf (float64 $number) (index $factors $suffix)) }}
{{- end }}
{{- end }}
