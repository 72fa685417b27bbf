//go:build integration

package ipam

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	spv2 "github.com/underlink/underlink/api/spiderpool/v2beta1"
	"github.com/underlink/underlink/test/controlplane"
	"github.com/underlink/underlink/test/integration/bed"
	"github.com/underlink/underlink/test/poll"
)

// TestIPAMReservedIPsAreNeverGiven: through the real plugin and agent, a SpiderReservedIP's addresses
// are skipped, the pool is exhausted when only they are left (the error says so), and deleting the
// SpiderReservedIP gives them out again.
func TestIPAMReservedIPsAreNeverGiven(t *testing.T) {
	c := bed.NewCluster(t, controlplane.EnvOptions{})
	node := c.AddNode(t, "a-node1", nil)
	c.StartAgent(t, node)
	ctx := context.Background()
	c.CreatePool(t, "resv", "172.110.6.0/24", "172.110.6.1", []string{"172.110.6.10-172.110.6.14"})
	reserved := &spv2.SpiderReservedIP{ObjectMeta: metav1.ObjectMeta{Name: "routers"}, Spec: spv2.ReservedIPSpec{IPs: []string{"172.110.6.10-172.110.6.12"}}}
	if err := c.Env.Client.Create(ctx, reserved); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond) // the agent's informer
	var got []string
	for i := range 2 {
		pod := c.CreatePod(t, "default", fmt.Sprintf("r%d", i), "a-node1", nil)
		res, e, err := pluginCall{Plugin: c.Plugin, Netns: c.Scratch.Path(), ContainerID: fmt.Sprintf("cid-r%d", i), Pod: pod, Conf: ipamConf("1.1.0", node.Socket, 10, "resv")}.add(ctx)
		if err != nil || e != nil {
			t.Fatal(err, e)
		}
		got = append(got, res.IPs[0].Address.IP.String())
	}
	if strings.Join(got, " ") != "172.110.6.13 172.110.6.14" {
		t.Fatalf("pods got %v; want the two addresses no SpiderReservedIP reserves", got)
	}
	pod := c.CreatePod(t, "default", "r2", "a-node1", nil)
	call := pluginCall{Plugin: c.Plugin, Netns: c.Scratch.Path(), ContainerID: "cid-r2", Pod: pod, Conf: ipamConf("1.1.0", node.Socket, 10, "resv")}
	_, e, err := call.add(ctx)
	if err != nil || e == nil || e.Code != 100 || !strings.Contains(e.Msg, "3 reserved by SpiderReservedIPs") {
		t.Fatalf("ADD with only reserved addresses left: %v %+v; want code 100 naming the reserved addresses", err, e)
	}
	t.Logf("refused: %s", e.Msg)
	if err := c.Env.Client.Delete(ctx, reserved); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, 10*time.Second, "the ADD to get a formerly reserved address", func() (bool, string) {
		res, e, err := call.add(ctx)
		if err != nil || e != nil {
			return false, fmt.Sprint(err, e)
		}
		return res.IPs[0].Address.IP.String() == "172.110.6.10", res.IPs[0].Address.IP.String()
	})
}
