// Package e2e is the user's scenario (test/testdata/seed/spiderpool-submariner.md) end to end on the local
// clusters: Up brings real nodes (test/nodes) into test/localenv's control planes and joins the
// clusters with the Submariner simulation (test/submariner); Scenario then follows the seed step by
// step — underlink installed with its Helm chart, the seed's manifests applied verbatim and denied
// where they are wrong, the corrected ones applied, and the seed's checks (pods, services, routes in a
// pod, ping and HTTP across the clusters, a link fault) — printing each step as the seed does and
// ending with a summary of every check. `make demo` (test/cmd/underlink-demo) and the end-to-end test
// run the same code.
package e2e
