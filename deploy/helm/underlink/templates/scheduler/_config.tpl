{{/*
The KubeSchedulerConfiguration: deploy/scheduler/underlink-scheduler.yaml (copied to files/scheduler by
`make generate-chart`) with the release's namespace for its leader election Lease, scheduler.name as the
profile and Lease name, scheduler.pluginArgs over the UnderlayNetwork plugin's arguments, and
underlay.labelPrefix as its labelPrefix: the agent's --label-prefix is rendered from the same value.
*/}}
{{- define "underlink.schedulerConfig" -}}
{{- $cfg := .Files.Get "files/scheduler/underlink-scheduler.yaml" | fromYaml }}
{{- $_ := set $cfg.leaderElection "resourceName" .Values.scheduler.name }}
{{- $_ := set $cfg.leaderElection "resourceNamespace" .Release.Namespace }}
{{- $profile := first $cfg.profiles }}
{{- $_ := set $profile "schedulerName" .Values.scheduler.name }}
{{- range $profile.pluginConfig }}
{{- if eq .name "UnderlayNetwork" }}
{{- $_ := set . "args" (mergeOverwrite (deepCopy .args) (deepCopy $.Values.scheduler.pluginArgs)) }}
{{- $_ := set .args "labelPrefix" $.Values.underlay.labelPrefix }}
{{- end }}
{{- end }}
{{- toYaml $cfg }}
{{- end -}}
