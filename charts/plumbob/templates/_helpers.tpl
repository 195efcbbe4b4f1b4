{{- define "plumbob.labels" -}}
app.kubernetes.io/name: plumbob
app.kubernetes.io/part-of: plumbob
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | quote }}
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
- {name: health, containerPort: 8080}
{{- if .Values.metrics.enabled }}
- {name: metrics, containerPort: {{ .Values.metrics.port }}}
{{- end }}
{{- if .Values.dashboard.enabled }}
- {name: dashboard, containerPort: {{ .Values.dashboard.port }}}
{{- end }}
{{- end }}

{{- /*
Cluster-scoped objects carry the release namespace in their name, so releases in two namespaces
do not collide. Namespaced objects keep fixed names (one release per namespace).
*/ -}}
{{- define "plumbob.clusterName" -}}
{{ printf "plumbob-%s-%s" (index . 1) (index . 0).Release.Namespace | trunc 253 | trimSuffix "-" }}
{{- end }}
{{- /*
The policy is rendered unless it exists already and belongs to something else than this release
(applied from crds/policy, or installed by another release): that copy keeps working.
*/ -}}
{{- define "plumbob.ownsPolicy" -}}
{{- $existing := lookup "admissionregistration.k8s.io/v1" "ValidatingAdmissionPolicy" "" "plumbob-node-bound-reports" -}}
{{- if not $existing -}}
true
{{- else -}}
{{- $annotations := $existing.metadata.annotations | default dict -}}
{{- if and (eq (index $annotations "meta.helm.sh/release-name" | default "") .Release.Name) (eq (index $annotations "meta.helm.sh/release-namespace" | default "") .Release.Namespace) -}}
true
{{- end -}}
{{- end -}}
{{- end }}
{{- /*
Two operators would both reconcile the same cluster: refuse to install a second one.
*/ -}}
{{- define "plumbob.checkSingleOperator" -}}
{{- if .Values.operator.enabled -}}
{{- $roles := lookup "rbac.authorization.k8s.io/v1" "ClusterRole" "" "" -}}
{{- range $role := ($roles.items | default list) -}}
{{- $labels := $role.metadata.labels | default dict -}}
{{- $annotations := $role.metadata.annotations | default dict -}}
{{- if and (eq (index $labels "plumbob.dev/runs-operator" | default "") "true") (ne (index $annotations "meta.helm.sh/release-namespace" | default "") $.Release.Namespace) -}}
{{- fail (printf "operator.enabled: the Plumbob release %s in namespace %s already runs the operator; install this release with --set operator.enabled=false, or uninstall that one" (index $annotations "meta.helm.sh/release-name" | default "?") (index $annotations "meta.helm.sh/release-namespace" | default "?")) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end }}
