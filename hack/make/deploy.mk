# Deployment: the Helm chart (deploy/helm/underlink) and the helm CLI it is tested and installed with.

TOOLS += helm
HELM := $(BIN_CACHE)/helm
CHART := deploy/helm/underlink

# `make generate` runs this after controller-gen, so `make verify` catches a chart that drifted from
# deploy/crds or webhook/registration.
GENERATE_EXTRA += $(MAKE) --no-print-directory generate-chart;

.PHONY: generate-chart
generate-chart: ## copy deploy/crds and deploy/scheduler into the chart and render its webhook configurations from webhook/registration
	$(GO) run ./hack/chartgen/cmd/chartgen

.PHONY: generate-chart-crds
generate-chart-crds: generate-chart ## the chart's CRDs from deploy/crds (part of generate-chart)

.PHONY: lint-chart
lint-chart: tools ## helm lint the chart in both certificate modes
	$(HELM) lint --strict $(CHART) --set certs.mode=self-signed
	$(HELM) lint --strict $(CHART) --set certs.mode=cert-manager

.PHONY: template-chart
template-chart: tools ## render the chart in both certificate modes into _output/chart/
	@mkdir -p _output/chart
	$(HELM) template underlink $(CHART) -n underlink-system --set certs.mode=self-signed > _output/chart/self-signed.yaml
	$(HELM) template underlink $(CHART) -n underlink-system --set certs.mode=cert-manager --api-versions cert-manager.io/v1 > _output/chart/cert-manager.yaml

.PHONY: test-chart
test-chart: tools ## the chart's and certificates' tests: lint, template, server-side dry-run, RBAC, bad values, rotation
	$(GO) test ./deploy/... ./certs/... ./hack/imagebuild/...
	$(GO) test -tags integration ./test/integration/chart/
	$(GO) test -tags integration ./certs/

.PHONY: install-chart
install-chart: tools ## install or upgrade the chart into $KUBECONFIG's cluster (hack/install-chart.sh)
	hack/install-chart.sh $(KUBECONFIG)

.PHONY: soak-certs
soak-certs: tools ## self-signed rotation at full scale: 2-minute lifetime, pods created at a steady rate for 5 minutes, 0 failed admissions
	UNDERLINK_CERTS_SOAK=1 $(GO) test -tags integration -count 1 -run 'TestRotationUnderLoadWithTwoReplicas' -v -timeout 20m ./certs/
