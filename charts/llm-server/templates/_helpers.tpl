{{- define "llm-server.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "llm-server.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 55 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 55 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* Selector labels of a component: (dict "context" . "component" "llama"|"gateway"). */}}
{{- define "llm-server.componentSelector" -}}
app.kubernetes.io/name: {{ include "llm-server.name" .context }}
app.kubernetes.io/instance: {{ .context.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "llm-server.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "llm-server.componentLabels" -}}
{{ include "llm-server.labels" .context }}
{{ include "llm-server.componentSelector" . }}
{{- end -}}

{{- define "llm-server.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "llm-server.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "llm-server.modelPath" -}}
{{- printf "/models/%s" (required "model.file is required" .Values.model.file) -}}
{{- end -}}

{{- define "llm-server.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
runAsUser: {{ .uid }}
runAsGroup: {{ .uid }}
capabilities:
  drop: ["ALL"]
{{- end -}}

{{- define "llm-server.checkAutoscaling" -}}
{{- if not (has .Values.autoscaling.mode (list "none" "hpa" "keda")) -}}
{{- fail (printf "autoscaling.mode must be none, hpa or keda (got %q)" .Values.autoscaling.mode) -}}
{{- end -}}
{{- if and (eq .Values.autoscaling.mode "keda") (not .Values.serviceMonitor.enabled) -}}
{{- fail "autoscaling.mode=keda reads llamacpp:requests_deferred from Prometheus: enable serviceMonitor too" -}}
{{- end -}}
{{- end -}}

{{/* The init container's script: download the model once (atomically), verify it if a digest is given. */}}
{{- define "llm-server.fetchModelScript" -}}
set -eu
target="/models/${MODEL_FILE}"
if [ -s "$target" ]; then
  echo "model already present: $target"
  exit 0
fi
part="${target}.part.${HOSTNAME:-fetch}"
trap 'rm -f "$part"' EXIT
if [ -n "${MODEL_AUTHORIZATION:-}" ]; then
  set -- -H "Authorization: ${MODEL_AUTHORIZATION}"
else
  set --
fi
echo "downloading ${MODEL_URI} -> $target"
curl -fL --retry 5 --retry-delay 5 --connect-timeout 30 "$@" -o "$part" "$MODEL_URI"
if [ -n "${MODEL_SHA256:-}" ]; then
  echo "${MODEL_SHA256}  ${part}" | sha256sum -c -
fi
mv "$part" "$target"
echo "model ready: $target"
{{- end -}}

{{/* The HMAC key shared with the router, for the verifier and the bootstrap renderer (${VAR} must resolve). */}}
{{- define "llm-server.gatewaySecretEnv" -}}
- name: LLM_CLUSTER_SHARED_SECRET
  valueFrom:
    secretKeyRef:
      name: {{ .Values.gateway.sharedSecret.secretName }}
      key: {{ .Values.gateway.sharedSecret.key }}
{{- end -}}
