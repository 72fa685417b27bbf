{{/* Name of the chart, or nameOverride. */}}
{{- define "underlink.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Prefix of namespaced object names: the release name, with the chart name unless it already holds it. */}}
{{- define "underlink.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := include "underlink.name" . -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Labels of every object. */}}
{{- define "underlink.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "underlink.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: underlink
{{- end -}}

{{/* Selector labels of a component; call with (dict "ctx" $ "component" "webhook"). */}}
{{- define "underlink.selectorLabels" -}}
app.kubernetes.io/name: {{ include "underlink.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* Object name of a component: <fullname>-<component>. */}}
{{- define "underlink.componentName" -}}
{{- printf "%s-%s" (include "underlink.fullname" .ctx) .component | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Image of a component: <repository>/<name>:<tag>. */}}
{{- define "underlink.image" -}}
{{- printf "%s/%s:%s" .ctx.Values.image.repository .name (default .ctx.Chart.AppVersion .ctx.Values.image.tag) -}}
{{- end -}}

{{/*
Cluster-scoped names of the webhook configurations: fixed by the webhook's contract
(webhook/registration.ConfigurationName), so one underlink per cluster.
*/}}
{{- define "underlink.webhookConfigurationName" -}}underlink-webhook{{- end -}}

{{/* The webhook Service; the serving certificate is issued for its DNS names. */}}
{{- define "underlink.webhookServiceName" -}}{{ include "underlink.componentName" (dict "ctx" . "component" "webhook") }}{{- end -}}

{{/* Secret holding the webhook's serving certificate, in either cert mode. */}}
{{- define "underlink.webhookCertSecret" -}}{{ include "underlink.componentName" (dict "ctx" . "component" "webhook-tls") }}{{- end -}}

{{/* The serving Certificate (cert-manager mode), whose CA cainjector puts into the caBundle. */}}
{{- define "underlink.webhookCertificate" -}}{{ include "underlink.componentName" (dict "ctx" . "component" "webhook-serving") }}{{- end -}}

{{/*
cert-manager mode needs cert-manager's API in the cluster. The check runs when installing or upgrading
(helm install/upgrade, and helm template, which renders as an install: pass --api-versions cert-manager.io/v1
there); helm lint renders neither and skips it.
*/}}
{{- define "underlink.requireCertManager" -}}
{{- if and (eq .Values.certs.mode "cert-manager") (or .Release.IsInstall .Release.IsUpgrade) -}}
{{- if not (.Capabilities.APIVersions.Has "cert-manager.io/v1") -}}
{{- fail "certs.mode=cert-manager, but cert-manager is not installed in this cluster (no cert-manager.io/v1 API): install cert-manager first (https://cert-manager.io/docs/installation/), or set certs.mode=self-signed to let the webhook issue and rotate its own certificate" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/*
Who injects, after webhook.injection=auto is resolved: "policy" where the apiserver serves
admissionregistration.k8s.io/v1 MutatingAdmissionPolicy (GA in Kubernetes 1.36; an apiserver can turn it
off with --runtime-config), "webhook" everywhere else. helm template without a cluster judges by its
--kube-version and --api-versions.
*/}}
{{- define "underlink.injection" -}}
{{- if eq .Values.webhook.injection "auto" -}}
{{- if and (.Capabilities.APIVersions.Has "admissionregistration.k8s.io/v1/MutatingAdmissionPolicy") (semverCompare ">=1.36.0-0" .Capabilities.KubeVersion.Version) -}}
policy
{{- else -}}
webhook
{{- end -}}
{{- else -}}
{{ .Values.webhook.injection }}
{{- end -}}
{{- end -}}

{{/* webhook.injection=policy, chosen explicitly, needs the MutatingAdmissionPolicy API of Kubernetes 1.36. */}}
{{- define "underlink.requireInjectionPolicy" -}}
{{- if and (eq .Values.webhook.injection "policy") (not (semverCompare ">=1.36.0-0" .Capabilities.KubeVersion.Version)) -}}
{{- fail (printf "webhook.injection=policy injects with a MutatingAdmissionPolicy (admissionregistration.k8s.io/v1), which Kubernetes has from 1.36; this cluster is %s: set webhook.injection=auto (the default) or webhook to inject with the mutating webhook instead" .Capabilities.KubeVersion.Version) -}}
{{- end -}}
{{- end -}}

{{/* The agent's ServiceAccount as the apiserver names its user. */}}
{{- define "underlink.agentUser" -}}
system:serviceaccount:{{ .Release.Namespace }}:{{ include "underlink.componentName" (dict "ctx" . "component" "agent") }}
{{- end -}}

{{/* Whether to render ServiceMonitors: monitoring.serviceMonitor.enabled true, or auto where the API is served. */}}
{{- define "underlink.serviceMonitor" -}}
{{- $e := .Values.monitoring.serviceMonitor.enabled -}}
{{- if or (eq (toString $e) "true") (and (eq (toString $e) "auto") (.Capabilities.APIVersions.Has "monitoring.coreos.com/v1/ServiceMonitor")) -}}
true
{{- end -}}
{{- end -}}

{{/* Pod security context shared by every component: no privilege beyond what each container adds. */}}
{{- define "underlink.restrictedContainerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: ["ALL"]
{{- end -}}

{{/*
CRDs of files/crds that the cluster already has and this release does not own (installed by Spiderpool,
Multus, Submariner or by hand), as a YAML list. lookup sees nothing in helm template and client dry runs,
where every CRD renders.
*/}}
{{- define "underlink.foreignCRDs" -}}
{{- $out := list }}
{{- range $path, $_ := .Files.Glob "files/crds/*.yaml" }}
{{- $name := ($.Files.Get $path | fromYaml).metadata.name }}
{{- $live := lookup "apiextensions.k8s.io/v1" "CustomResourceDefinition" "" $name }}
{{- if $live }}
{{- $owner := dig "metadata" "annotations" "meta.helm.sh/release-name" "" $live }}
{{- $ownerNS := dig "metadata" "annotations" "meta.helm.sh/release-namespace" "" $live }}
{{- if or (ne $owner $.Release.Name) (ne $ownerNS $.Release.Namespace) }}
{{- $out = append $out $name }}
{{- end }}
{{- end }}
{{- end }}
{{- toYaml $out }}
{{- end -}}
