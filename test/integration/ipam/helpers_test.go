//go:build integration

package ipam

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"
	corev1 "k8s.io/api/core/v1"

	"github.com/underlink/underlink/test/netbed"
)

// ipamConf is a network config whose ipam is underlink-ipam on the node's socket.
func ipamConf(version, socket string, timeout int, v4pools ...string) []byte {
	pools, _ := json.Marshal(v4pools)
	return []byte(fmt.Sprintf(`{"cniVersion":%q,"name":"kube-system-macvlan-conf","type":"macvlan","master":"ens224","mode":"bridge",
	 "ipam":{"type":"underlink-ipam","socket":%q,"timeoutSeconds":%d,"ipv4Pools":%s}}`, version, socket, timeout, pools))
}

// pluginCall runs the underlink-ipam binary as a runtime (or macvlan) execs an IPAM plugin: CNI_* in
// the environment, the network config on stdin, the result or a CNI error on stdout.
type pluginCall struct {
	Plugin      string
	Command     string
	ContainerID string
	Netns       string
	IfName      string
	Pod         *corev1.Pod
	Conf        []byte
}

func (pc pluginCall) run(ctx context.Context) (stdout []byte, cniErr *types.Error, err error) {
	cmd := exec.CommandContext(ctx, pc.Plugin)
	if pc.IfName == "" {
		pc.IfName = "eth0"
	}
	args := "IgnoreUnknown=1"
	if pc.Pod != nil {
		args += fmt.Sprintf(";K8S_POD_NAMESPACE=%s;K8S_POD_NAME=%s;K8S_POD_UID=%s;K8S_POD_INFRA_CONTAINER_ID=%s", pc.Pod.Namespace, pc.Pod.Name, pc.Pod.UID, pc.ContainerID)
	}
	cmd.Env = []string{
		"CNI_COMMAND=" + pc.Command, "CNI_CONTAINERID=" + pc.ContainerID, "CNI_NETNS=" + pc.Netns,
		"CNI_IFNAME=" + pc.IfName, "CNI_PATH=" + filepath.Dir(pc.Plugin), "CNI_ARGS=" + args,
	}
	cmd.Stdin = bytes.NewReader(pc.Conf)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	runErr := cmd.Run()
	if runErr != nil {
		var e types.Error
		if json.Unmarshal(out.Bytes(), &e) == nil && e.Code != 0 {
			return out.Bytes(), &e, nil
		}
		return out.Bytes(), nil, fmt.Errorf("%s %s: %w (stdout %q stderr %q)", pc.Plugin, pc.Command, runErr, out.String(), errOut.String())
	}
	return out.Bytes(), nil, nil
}

// add runs ADD and parses the result as the current CNI version.
func (pc pluginCall) add(ctx context.Context) (*current.Result, *types.Error, error) {
	pc.Command = "ADD"
	out, cniErr, err := pc.run(ctx)
	if err != nil || cniErr != nil {
		return nil, cniErr, err
	}
	var res current.Result
	if err := json.Unmarshal(out, &res); err != nil {
		return nil, nil, fmt.Errorf("ADD result %q: %w", out, err)
	}
	return &res, nil, nil
}

// httpInNetns is an HTTP client whose connections are made from inside a namespace (the agent's
// metrics and health addresses are on the node's loopback).
func httpInNetns(n *netbed.Netns) *http.Client {
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		var c net.Conn
		err := n.Do(func(ns.NetNS) error {
			var err error
			c, err = (&net.Dialer{}).DialContext(ctx, network, addr)
			return err
		})
		return c, err
	}}}
}

func getBody(t testing.TB, c *http.Client, url string) (int, string) {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// podAddrs are the IPv4 addresses of ifName in a pod namespace.
func podAddrs(t *testing.T, n *netbed.Netns, ifName string) []string {
	t.Helper()
	h, err := n.Netlink()
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	l, err := h.LinkByName(ifName)
	if err != nil {
		t.Fatalf("%s in %s: %v", ifName, n.Name, err)
	}
	as, err := h.AddrList(l, netlink.FAMILY_V4)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, a := range as {
		out = append(out, a.IPNet.String())
	}
	return out
}
