package test

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

// The seed's manifests are the user's own words: the copies under testdata must stay byte for byte
// what the user's document holds between `cat <<EOF | kubectl ... -f -` and `EOF`. The document itself
// is kept in the repository too (testdata/seed/spiderpool-submariner.md, a byte-for-byte copy of the
// user's), so every checkout compares them.
func TestSeedManifestsMatchTheUsersDocument(t *testing.T) {
	doc, err := os.ReadFile(Path("test", "testdata", "seed", "spiderpool-submariner.md"))
	if err != nil {
		t.Fatal(err)
	}
	heredoc := regexp.MustCompile(`(?s)\n([ \t]*)~?#? ?cat <<EOF \| kubectl (?:apply|create) -f -\n(.*?)\n([ \t]*)EOF\n`)
	blocks := heredoc.FindAllStringSubmatch(string(doc), -1)
	names := []string{"cluster-a-ippool.yaml", "cluster-b-ippool.yaml", "cluster-a-multusconfig.yaml", "cluster-b-multusconfig.yaml", "deployment-and-service.yaml"}
	if len(blocks) != len(names) {
		t.Fatalf("the seed has %d manifests, the test data %d", len(blocks), len(names))
	}
	for i, b := range blocks {
		indent := b[3]
		var lines []string
		for _, l := range strings.Split(b[2], "\n") {
			lines = append(lines, strings.TrimPrefix(l, indent))
		}
		want := strings.Join(lines, "\n") + "\n"
		got, err := SeedManifest(names[i])
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != want {
			t.Errorf("testdata/seed/%s differs from the seed's manifest #%d:\n--- seed\n%s\n--- testdata\n%s", names[i], i+1, want, got)
		}
	}
}

// Every query of the chart's dashboard names metrics of a component that serves them (the components'
// integration tests check that each is served).
func TestDashboardNamesComponentMetrics(t *testing.T) {
	all := DashboardMetrics(t, ComponentPrefixes...)
	if len(all) < 10 {
		t.Fatalf("the dashboard names %d metrics: %v", len(all), all)
	}
	for _, p := range ComponentPrefixes {
		if len(DashboardMetrics(t, p)) == 0 {
			t.Errorf("no panel reads %s*", p)
		}
	}
}
