package plugin

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"

	"github.com/underlink/underlink/cni/ipam/protocol"
)

// TestDelWithoutTheAgentRecordsTheRelease: a DEL that cannot reach the agent succeeds only once the
// release is recorded for the agent; when it cannot be recorded, it fails with code 11 (try again).
func TestDelWithoutTheAgentRecordsTheRelease(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "agent.sock") // nobody listens
	conf := []byte(`{"cniVersion":"1.0.0","name":"n","type":"macvlan","ipam":{"type":"underlink-ipam","socket":"` + sock + `","timeoutSeconds":1}}`)
	args := &skel.CmdArgs{ContainerID: "0123456789abcdef", IfName: "eth0", Netns: "/var/run/netns/x", StdinData: conf,
		Args: "K8S_POD_NAMESPACE=default;K8S_POD_NAME=app;K8S_POD_UID=u1"}
	if err := Del(args); err != nil {
		t.Fatalf("DEL with the agent away: %v", err)
	}
	got, err := protocol.RecordedReleases(protocol.JournalDir(sock))
	if err != nil || len(got) != 1 {
		t.Fatalf("recorded %v, %v", got, err)
	}
	if r := got[0].Request; r.ContainerID != args.ContainerID || r.IfName != "eth0" || r.Pod.Name != "app" {
		t.Errorf("recorded %+v", r)
	}
	if err := Del(args); err != nil {
		t.Fatalf("a repeated DEL: %v", err)
	}
	if again, _ := protocol.RecordedReleases(protocol.JournalDir(sock)); len(again) != 1 {
		t.Errorf("a repeated DEL added a record: %d", len(again))
	}

	// A journal that cannot be written: the DEL fails and the runtime retries.
	blocked := filepath.Join(t.TempDir(), "blocked")
	if err := os.WriteFile(blocked, nil, 0o600); err != nil { // a file where the socket's directory should be
		t.Fatal(err)
	}
	conf = []byte(`{"cniVersion":"1.0.0","name":"n","type":"macvlan","ipam":{"type":"underlink-ipam","socket":"` + filepath.Join(blocked, "agent.sock") + `","timeoutSeconds":1}}`)
	args.StdinData = conf
	err = Del(args)
	var ce *types.Error
	if !errors.As(err, &ce) || ce.Code != types.ErrTryAgainLater {
		t.Fatalf("DEL without agent and journal: %v, want code 11", err)
	}
}
