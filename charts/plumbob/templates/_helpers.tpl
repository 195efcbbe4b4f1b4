{{- define "plumbob.labels" -}}
app.kubernetes.io/name: plumbob
app.kubernetes.io/part-of: plumbob
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end }}
{{- define "plumbob.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end }}
{{- /* Metrics and dashboard listeners of the operator (values: metrics.*, dashboard.*). */}}
{{- define "plumbob.httpEnv" -}}
- name: PLUMBOB_METRICS_ADDRESS
  value: {{ if .Values.metrics.enabled }}{{ printf "0.0.0.0:%v" .Values.metrics.port | quote }}{{ else }}"off"{{ end }}
- name: PLUMBOB_DASHBOARD_ADDRESS
  value: {{ if .Values.dashboard.enabled }}{{ printf "0.0.0.0:%v" .Values.dashboard.port | quote }}{{ else }}"off"{{ end }}
{{- end }}
{{- define "plumbob.httpPorts" -}}
- {name: healthz, containerPort: 8080}
{{- if .Values.metrics.enabled }}
- {name: metrics, containerPort: {{ .Values.metrics.port }}}
{{- end }}
{{- if .Values.dashboard.enabled }}
- {name: dashboard, containerPort: {{ .Values.dashboard.port }}}
{{- end }}
{{- end }}
