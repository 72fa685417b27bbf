package underlaynetwork

import (
	"context"
	"testing"

	configv1 "github.com/underlink/underlink/scheduler/apis/config/v1"
)

func TestSignPod(t *testing.T) {
	w := newWorld(t, nil)
	frags, st := w.p.SignPod(context.Background(), underlayPod(nil))
	if !st.IsSuccess() || len(frags) != 1 || frags[0].Key != signKey {
		t.Errorf("plain pod: %v %v, want one fragment", frags, st)
	}
	if _, st := w.p.SignPod(context.Background(), seedPod()); st.IsSuccess() {
		t.Error("an underlay pod was signed: batching would reuse a result that pool capacity invalidates")
	}
	wd := newWorld(t, &configv1.UnderlayNetworkArgs{DefaultNetwork: "kube-system/macvlan-conf"})
	if _, st := wd.p.SignPod(context.Background(), underlayPod(nil)); st.IsSuccess() {
		t.Error("with an underlay default network every pod is an underlay pod")
	}
}
