package rules

import (
	"os"
	"strings"
	"testing"
)

// The README's rule table is the operator's reference; it names every rule.
func TestReadmeListsEveryRule(t *testing.T) {
	b, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range Rules {
		if !strings.Contains(string(b), "| `"+r.ID+"` |") {
			t.Errorf("README.md does not list rule %s", r.ID)
		}
	}
}
