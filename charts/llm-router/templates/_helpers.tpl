{{/* Names and labels. */}}
{{- define "llm-router.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "llm-router.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "llm-router.selectorLabels" -}}
app.kubernetes.io/name: {{ include "llm-router.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "llm-router.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "llm-router.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: {{ .Values.mode }}
{{- end -}}

{{- define "llm-router.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "llm-router.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "llm-router.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) -}}
{{- end -}}

{{- define "llm-router.checkMode" -}}
{{- if not (has .Values.mode (list "gateway" "mesh")) -}}
{{- fail (printf "mode must be gateway or mesh (got %q)" .Values.mode) -}}
{{- end -}}
{{- end -}}

{{/* The router config as deployed: the chart owns where the controller listens and is reached. */}}
{{- define "llm-router.routerConfig" -}}
{{- $config := deepCopy .Values.config -}}
{{- $server := $config.server | default dict -}}
{{- $_ := set $server "controllerHost" "127.0.0.1" -}}
{{- $_ := set $server "controllerBindHost" "0.0.0.0" -}}
{{- $_ := set $config "server" $server -}}
{{- if eq .Values.mode "mesh" -}}
{{- /* Istio's proxies send no access log to the controller that routed a request: every response passes it. */ -}}
{{- $router := $config.router | default dict -}}
{{- $_ := set $router "responsesThroughController" true -}}
{{- $_ := set $config "router" $router -}}
{{- end -}}
{{- include "llm-router.checkAuth" . -}}
{{- if .Values.auth.enabled -}}
{{- $auth := dict "enabled" true "keysFile" (include "llm-router.keysFile" .) -}}
{{- with .Values.auth.redisUrl -}}
{{- $_ := set $auth "redisUrl" . -}}
{{- end -}}
{{- $_ := set $config "auth" $auth -}}
{{- end -}}
{{- toYaml $config -}}
{{- end -}}

{{/* Client keys (README "Client authentication"): the chart owns the router config's auth section. */}}
{{- define "llm-router.keysDir" -}}/etc/llm-router/keys{{- end -}}
{{- define "llm-router.keysFile" -}}{{ include "llm-router.keysDir" . }}/keys.yaml{{- end -}}

{{- define "llm-router.keysSecretName" -}}
{{- .Values.auth.existingSecret | default (printf "%s-client-keys" (include "llm-router.fullname" .)) -}}
{{- end -}}

{{- define "llm-router.checkAuth" -}}
{{- if hasKey (.Values.config | default dict) "auth" -}}
{{- fail "set client authentication with auth.* (enabled, existingSecret or keys, redisUrl), not config.auth" -}}
{{- end -}}
{{- if .Values.auth.enabled -}}
{{- if eq .Values.mode "mesh" -}}
{{- fail "auth.enabled is not supported in mesh mode yet (docker/mesh_patches.py does not generate the ext_authz filter): set auth.enabled=false and authenticate at the mesh" -}}
{{- end -}}
{{- if not (or .Values.auth.existingSecret .Values.auth.keys) -}}
{{- fail "auth.enabled needs client keys: auth.existingSecret (a Secret with key keys.yaml) or auth.keys (hashed entries)" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Ports, read from the router config (defaults as in the controller). */}}
{{- define "llm-router.port" -}}
{{- $server := .context.Values.config.server | default dict -}}
{{- $defaults := dict "port" 8080 "envoyAdminPort" 9901 "grpcPort" 50051 "httpPort" 8081 -}}
{{- $value := index $server .key | default (index $defaults .key) -}}
{{- if not (or (kindIs "float64" $value) (kindIs "int" $value) (kindIs "int64" $value)) -}}
{{- fail (printf "config.server.%s must be a number in this chart (got %v)" .key $value) -}}
{{- end -}}
{{- $value | int -}}
{{- end -}}

{{/* Environment shared by the controller and the bootstrap renderer: the secrets the config references. */}}
{{- define "llm-router.envFrom" -}}
{{- with .Values.secrets.existingSecret }}
envFrom:
  - secretRef:
      name: {{ . }}
{{- end }}
{{- end -}}

{{- define "llm-router.env" -}}
{{- if or .Values.secrets.env .Values.extraEnv }}
env:
  {{- range .Values.secrets.env }}
  - name: {{ .name }}
    valueFrom:
      secretKeyRef:
        name: {{ .secretName | default $.Values.secrets.existingSecret | required (printf "secrets.env %s: secretName (or secrets.existingSecret) is required" .name) }}
        key: {{ .key }}
  {{- end }}
  {{- with .Values.extraEnv }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
{{- end }}
{{- end -}}

{{- define "llm-router.podSecurityContext" -}}
runAsNonRoot: true
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "llm-router.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
runAsUser: {{ .uid }}
runAsGroup: {{ .uid }}
capabilities:
  drop: ["ALL"]
{{- end -}}

{{/* Envoy's admin /ready on loopback (the rendered bootstrap binds admin to 127.0.0.1): bash, no curl in the image. */}}
{{- define "llm-router.envoyReadyCommand" -}}
- bash
- -c
- {{ printf "exec 3<>/dev/tcp/127.0.0.1/%d && printf 'GET /ready HTTP/1.0\\r\\n\\r\\n' >&3 && grep -q ' 200 ' <&3" (include "llm-router.port" (dict "context" . "key" "envoyAdminPort") | int) | quote }}
{{- end -}}

{{/* Seconds from a config duration (500ms, 30s, 5m, 1h or a bare number), as the controller reads it. */}}
{{- define "llm-router.seconds" -}}
{{- $v := toString . | trim -}}
{{- $m := regexFindAll "^([0-9]+(\\.[0-9]+)?)\\s*(ms|s|m|h)?$" $v 1 -}}
{{- if not $m -}}
{{- fail (printf "cannot read duration %q: use 500ms, 30s, 5m, 1h or seconds" $v) -}}
{{- end -}}
{{- $number := regexFind "^[0-9]+(\\.[0-9]+)?" $v | float64 -}}
{{- $unit := regexReplaceAll "^[0-9]+(\\.[0-9]+)?\\s*" $v "" -}}
{{- $scale := get (dict "ms" 0.001 "s" 1.0 "m" 60.0 "h" 3600.0 "" 1.0) $unit -}}
{{- mulf $number $scale -}}
{{- end -}}

{{/* Bytes from a config size (1048576, 512KiB, 8MiB, 1GB), as the controller reads it. */}}
{{- define "llm-router.bytes" -}}
{{- $v := toString . | trim | lower -}}
{{- if not (regexMatch "^[0-9]+\\s*(|b|kb|kib|mb|mib|gb|gib)$" $v) -}}
{{- fail (printf "cannot read size %q: use 1048576, 512KiB or 8MiB" $v) -}}
{{- end -}}
{{- $number := regexFind "^[0-9]+" $v | int64 -}}
{{- $unit := regexReplaceAll "^[0-9]+\\s*" $v "" -}}
{{- $scale := get (dict "" 1 "b" 1 "kb" 1000 "kib" 1024 "mb" 1000000 "mib" 1048576 "gb" 1000000000 "gib" 1073741824) $unit -}}
{{- mul $number $scale -}}
{{- end -}}
