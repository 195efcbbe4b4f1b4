{{- define "plumbob.labels" -}}
app.kubernetes.io/name: plumbob
app.kubernetes.io/part-of: plumbob
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end }}
{{- define "plumbob.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end }}
