{{/* The chart's name. */}}
{{- define "roster.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The release's full name: names the Deployment, Service, ServiceAccount and cluster objects. */}}
{{- define "roster.fullname" -}}
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

{{- define "roster.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "roster.selectorLabels" -}}
app.kubernetes.io/name: {{ include "roster.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "roster.labels" -}}
helm.sh/chart: {{ include "roster.chart" . }}
{{ include "roster.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: roster
{{- end }}

{{- define "roster.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "roster.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The ValidatingWebhookConfiguration's name (cluster-scoped). */}}
{{- define "roster.webhookConfigName" -}}
{{- default (include "roster.fullname" .) .Values.webhook.configName }}
{{- end }}

{{/* The Secret replicas share a self-managed certificate through (roster::webhook::tls::shared_secret_name). */}}
{{- define "roster.selfManagedSecret" -}}
{{- printf "%s-webhook-self-managed" (include "roster.webhookConfigName" .) }}
{{- end }}

{{/* Whether roster writes the webhook configuration itself (self-managed certificates). */}}
{{- define "roster.selfManagedWebhook" -}}
{{- if and .Values.webhook.enabled (not .Values.webhook.certManager.enabled) }}true{{ end }}
{{- end }}

{{- define "roster.leaderElect" -}}
{{- if or (gt (int .Values.replicas) 1) .Values.leaderElection.enabled }}true{{ end }}
{{- end }}

{{- define "roster.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{- define "roster.certificateName" -}}
{{- printf "%s-webhook" (include "roster.fullname" .) }}
{{- end }}

{{- define "roster.certificateSecret" -}}
{{- printf "%s-webhook-tls" (include "roster.fullname" .) }}
{{- end }}

{{/* ClusterRoles the operator may bind: its own roster-org-* roles and the installer's allow-list. */}}
{{- define "roster.bindableClusterRoles" -}}
{{- $roles := list "roster-org-owner" "roster-org-admin" "roster-org-member" "roster-org-viewer" }}
{{- range .Values.allowedClusterRoles }}
{{- $roles = append $roles . }}
{{- end }}
{{- toJson ($roles | uniq) }}
{{- end }}

{{/* Combinations of values the schema cannot express; fails the install with the reason. */}}
{{- define "roster.validate" -}}
{{- if and .Values.selfService.bindAuthenticated (not .Values.webhook.enabled) }}
{{- fail "selfService.bindAuthenticated needs webhook.enabled: without the webhook, anyone could create a Membership with any role, owner included" }}
{{- end }}
{{- if and .Values.webhook.enabled (eq (int .Values.webhook.port) (int .Values.metrics.port)) }}
{{- fail (printf "webhook.port and metrics.port are both %v: roster listens on two ports (on the node itself, with hostNetwork)" .Values.webhook.port) }}
{{- end }}
{{- if and .Values.email.smtp.url (not .Values.email.from) }}
{{- fail "email.from is required with email.smtp.url: the address roster sends invitations from, such as 'Acme Platform <no-reply@platform.example>'" }}
{{- end }}
{{- range .Values.allowedClusterRoles }}
{{- if or (eq . "cluster-admin") (contains "*" .) }}
{{- fail (printf "allowedClusterRoles: %q may not be handed out by roster (no escalation: never cluster-admin or wildcards)" .) }}
{{- end }}
{{- end }}
{{- /* roster refuses these at start too; refused here, the install fails instead of the pods. */}}
{{- range $i, $a := .Values.identityProviders }}
{{- range $j, $b := $.Values.identityProviders }}
{{- if and (ne $i $j) (eq $a.name $b.name) }}
{{- fail (printf "identityProviders: %s is configured twice" $a.name) }}
{{- end }}
{{- if and (ne $i $j) (hasPrefix $a.usernamePrefix $b.usernamePrefix) }}
{{- fail (printf "identityProviders: %s and %s overlap: usernamePrefix %q starts with %q, so a username of %s would also count as signed in with %s; give each provider a prefix of its own that no other starts with" $a.name $b.name $b.usernamePrefix $a.usernamePrefix $b.name $a.name) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}

{{/* One `--identity-provider` value: name=NAME,usernamePrefix=PREFIX[,tenantKey=KEY]. */}}
{{- define "roster.identityProvider" -}}
name={{ .name }},usernamePrefix={{ .usernamePrefix }}{{ with .tenantKey }},tenantKey={{ . }}{{ end }}
{{- end }}
