package v1

import (
	"strings"
	"testing"
	"time"

	"k8s.io/utils/ptr"

	"github.com/underlink/underlink/api/underlay"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

func TestDecode(t *testing.T) {
	for _, tc := range []struct {
		name    string
		in      runtime.Object
		want    UnderlayNetworkArgs
		wantErr string
	}{
		{name: "no pluginConfig entry takes the defaults", in: nil, want: UnderlayNetworkArgs{LabelPrefix: underlay.LabelPrefix}},
		{name: "empty args take the defaults", in: &runtime.Unknown{}, want: UnderlayNetworkArgs{LabelPrefix: underlay.LabelPrefix}},
		{
			name: "JSON args as kube-scheduler hands them over",
			in:   &runtime.Unknown{Raw: []byte(`{"apiVersion":"kubescheduler.config.k8s.io/v1","kind":"UnderlayNetworkArgs","labelPrefix":"net.example.com/","defaultNetwork":"kube-system/macvlan-conf"}`)},
			want: UnderlayNetworkArgs{LabelPrefix: "net.example.com/", DefaultNetwork: "kube-system/macvlan-conf"},
		},
		{
			name: "YAML args",
			in:   &runtime.Unknown{Raw: []byte("labelPrefix: underlay.underlink.io/\n"), ContentType: runtime.ContentTypeYAML},
			want: UnderlayNetworkArgs{LabelPrefix: underlay.LabelPrefix},
		},
		{name: "typed nil args take the defaults", in: (*UnderlayNetworkArgs)(nil), want: UnderlayNetworkArgs{LabelPrefix: underlay.LabelPrefix}},
		{name: "typed args", in: &UnderlayNetworkArgs{DefaultNetwork: "ns/n"}, want: UnderlayNetworkArgs{LabelPrefix: underlay.LabelPrefix, DefaultNetwork: "ns/n"}},
		{name: "a misspelt field is an error", in: &runtime.Unknown{Raw: []byte(`{"labelprefx":"a/"}`)}, wantErr: `unknown field "labelprefx"`},
		{name: "prefix without slash", in: &UnderlayNetworkArgs{LabelPrefix: "underlay.underlink.io"}, wantErr: `labelPrefix: Invalid value: "underlay.underlink.io": must be a DNS subdomain followed by '/'`},
		{name: "prefix that is no label key", in: &UnderlayNetworkArgs{LabelPrefix: "Under_lay/"}, wantErr: `labelPrefix: Invalid value: "Under_lay/"`},
		{name: "default network without namespace", in: &UnderlayNetworkArgs{DefaultNetwork: "macvlan-conf"}, wantErr: `defaultNetwork: Invalid value: "macvlan-conf": must be namespace/name`},
		{name: "default network with a bad name", in: &UnderlayNetworkArgs{DefaultNetwork: "kube-system/Mac_vlan"}, wantErr: `name Mac_vlan`},
		{name: "a negative pace is an error", in: &runtime.Unknown{Raw: []byte(`{"maxStartingPodsPerNode":-1}`)}, wantErr: `maxStartingPodsPerNode: Invalid value: -1: must be 0 (no pacing) to 10000`},
		{name: "a pace past any node's pods is an error", in: &runtime.Unknown{Raw: []byte(`{"maxStartingPodsPerNode":10001}`)}, wantErr: `maxStartingPodsPerNode: Invalid value: 10001`},
		{name: "a zero starting timeout is an error", in: &runtime.Unknown{Raw: []byte(`{"startingTimeout":"0s"}`)}, wantErr: `startingTimeout: Invalid value: "0s": must be a positive duration`},
		{name: "a starting timeout that is no duration is an error", in: &runtime.Unknown{Raw: []byte(`{"startingTimeout":"soon"}`)}, wantErr: `soon`},
		{name: "wrong kind", in: &runtime.Unknown{Raw: []byte(`{"kind":"NodeResourcesFitArgs"}`)}, wantErr: `kind: Unsupported value: "NodeResourcesFitArgs"`},
		{name: "wrong type", in: &metav1.Status{}, wantErr: "want UnderlayNetworkArgs"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Decode(tc.in)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("want error containing %q, got %v", tc.wantErr, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.LabelPrefix != tc.want.LabelPrefix || got.DefaultNetwork != tc.want.DefaultNetwork {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
			if got.APIVersion != GroupVersion.String() || got.Kind != Kind {
				t.Errorf("type meta not defaulted: %+v", got.TypeMeta)
			}
		})
	}
}

func TestDecodePacing(t *testing.T) {
	got, err := Decode(nil)
	if err != nil {
		t.Fatal(err)
	}
	if *got.MaxStartingPodsPerNode != DefaultMaxStartingPodsPerNode || got.StartingTimeout.Duration != DefaultStartingTimeout {
		t.Errorf("defaults: maxStartingPodsPerNode %d, startingTimeout %s; want %d, %s", *got.MaxStartingPodsPerNode, got.StartingTimeout.Duration, DefaultMaxStartingPodsPerNode, DefaultStartingTimeout)
	}
	got, err = Decode(&runtime.Unknown{Raw: []byte("maxStartingPodsPerNode: 0\nstartingTimeout: 90s\n")})
	if err != nil {
		t.Fatal(err)
	}
	if *got.MaxStartingPodsPerNode != 0 || got.StartingTimeout.Duration != 90*time.Second {
		t.Errorf("set: maxStartingPodsPerNode %d, startingTimeout %s; want 0 (pacing off, not the default), 1m30s", *got.MaxStartingPodsPerNode, got.StartingTimeout.Duration)
	}
	// DeepCopy does not share the pointers.
	in := &UnderlayNetworkArgs{MaxStartingPodsPerNode: ptr.To[int32](3), StartingTimeout: &metav1.Duration{Duration: time.Second}}
	c := in.DeepCopy()
	*c.MaxStartingPodsPerNode, c.StartingTimeout.Duration = 4, time.Hour
	if *in.MaxStartingPodsPerNode != 3 || in.StartingTimeout.Duration != time.Second {
		t.Errorf("DeepCopy shares its pointers with the original: %d, %s", *in.MaxStartingPodsPerNode, in.StartingTimeout.Duration)
	}
}
