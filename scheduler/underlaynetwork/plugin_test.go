package underlaynetwork

import (
	"context"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/runtime"
)

// TestNewRejectsBadArgs pins that a bad pluginConfig stops the scheduler at start-up, naming the field,
// before any client is built. New's informers are exercised against a real apiserver by the
// integration tests (test/integration/scheduler/scheduler_test.go).
func TestNewRejectsBadArgs(t *testing.T) {
	_, err := New(context.Background(), &runtime.Unknown{Raw: []byte(`{"labelPrefix":"no-slash"}`)}, nil)
	if err == nil || !strings.Contains(err.Error(), `labelPrefix: Invalid value: "no-slash"`) {
		t.Errorf("got %v", err)
	}
}

func TestName(t *testing.T) {
	if (&Plugin{}).Name() != "UnderlayNetwork" {
		t.Error("the plugin's name is its configuration contract")
	}
}
