package netbed

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"

	"github.com/containernetworking/plugins/pkg/netlinksafe"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// RunDir is where named network namespaces are bind-mounted, as `ip netns add` does, so that
// `ip netns exec NAME`, `nsenter --net=/run/netns/NAME` and CNI_NETNS paths all reach them.
const RunDir = "/run/netns"

// NamePrefix starts the name of every namespace a bed creates: "ulbed-<pid>-<bed>-<role>". The pid lets
// Sweep tell a crashed earlier run's leftovers from a concurrent run's namespaces.
const NamePrefix = "ulbed-"

// Netns is a named network namespace of a bed. It embeds ns.NetNS, so Do runs a function with the
// calling goroutine's thread inside the namespace.
type Netns struct {
	ns.NetNS
	// Name is the file name under RunDir.
	Name string
	// Role is the bed-local name the test gave it ("cluster-a-underlay", "node1", "pod-a1").
	Role string
}

// Netlink opens a netlink handle whose sockets live in the namespace, for link, address, route and
// neighbour calls without moving any thread. The caller closes it.
func (n *Netns) Netlink() (netlinksafe.Handle, error) {
	h, err := netlinksafe.NewHandleAt(netns.NsHandle(int(n.Fd())))
	if err != nil {
		return netlinksafe.Handle{}, fmt.Errorf("netlink handle in netns %s: %w", n.Name, err)
	}
	return h, nil
}

// Link reads a link of the namespace by name.
func (n *Netns) Link(name string) (netlink.Link, error) {
	h, err := n.Netlink()
	if err != nil {
		return nil, err
	}
	defer h.Close()
	l, err := h.LinkByName(name)
	if err != nil {
		return nil, fmt.Errorf("link %s in netns %s: %w", name, n.Name, err)
	}
	return l, nil
}

// RouteVia is the link the namespace's kernel sends to dst by, from src when it is valid: what `ip route
// get <dst> [from <src>]` names as dev.
func (n *Netns) RouteVia(dst, src netip.Addr) (string, error) {
	h, err := n.Netlink()
	if err != nil {
		return "", err
	}
	defer h.Close()
	opts := &netlink.RouteGetOptions{}
	if src.IsValid() {
		opts.SrcAddr = src.AsSlice()
	}
	rs, err := h.RouteGetWithOptions(dst.AsSlice(), opts)
	if err != nil || len(rs) == 0 {
		return "", fmt.Errorf("route get %s from %v in netns %s: %v", dst, src, n.Name, err)
	}
	l, err := h.LinkByIndex(rs[0].LinkIndex)
	if err != nil {
		return "", err
	}
	return l.Attrs().Name, nil
}

// Neighbour is the namespace's neighbour entry for ip on any link, or nil when it has none.
func (n *Netns) Neighbour(ip netip.Addr) (*netlink.Neigh, error) {
	h, err := n.Netlink()
	if err != nil {
		return nil, err
	}
	defer h.Close()
	fam := netlink.FAMILY_V4
	if ip.Is6() {
		fam = netlink.FAMILY_V6
	}
	list, err := h.NeighList(0, fam)
	if err != nil {
		return nil, fmt.Errorf("neighbours of netns %s: %w", n.Name, err)
	}
	for i := range list {
		if a, ok := netip.AddrFromSlice(list[i].IP); ok && a.Unmap() == ip {
			return &list[i], nil
		}
	}
	return nil, nil
}

// Sysctl sets a sysctl of the namespace, e.g. Sysctl("net/ipv4/ip_forward", "1").
func (n *Netns) Sysctl(key, value string) error {
	return n.Do(func(ns.NetNS) error {
		p := filepath.Join("/proc/sys", strings.ReplaceAll(key, ".", "/"))
		if err := os.WriteFile(p, []byte(value), 0o644); err != nil {
			return fmt.Errorf("sysctl %s=%s in netns %s: %w", key, value, n.Name, err)
		}
		return nil
	})
}

// String is the namespace's name.
func (n *Netns) String() string { return n.Name }

// createNamed makes a new network namespace and bind-mounts it at RunDir/name. Unlike `ip netns add`, it
// does not turn RunDir into a shared self-bind mount: that mount hides namespaces other programs (a
// containerd that started earlier) created below RunDir (test/nodes/README.md, item 6).
func createNamed(name string) (string, error) {
	if err := os.MkdirAll(RunDir, 0o755); err != nil {
		return "", fmt.Errorf("create %s: %w", RunDir, err)
	}
	p := filepath.Join(RunDir, name)
	f, err := os.OpenFile(p, os.O_RDONLY|os.O_CREATE|os.O_EXCL, 0o444)
	if err != nil {
		return "", fmt.Errorf("create netns mount point %s: %w", p, err)
	}
	_ = f.Close()

	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		// Never unlocked: the thread ends with the goroutine, so it cannot carry the new namespace into
		// other goroutines.
		runtime.LockOSThread()
		if err = unix.Unshare(unix.CLONE_NEWNET); err != nil {
			err = fmt.Errorf("unshare network namespace: %w", err)
			return
		}
		self := fmt.Sprintf("/proc/%d/task/%d/ns/net", os.Getpid(), unix.Gettid())
		if err = unix.Mount(self, p, "none", unix.MS_BIND, ""); err != nil {
			err = fmt.Errorf("bind-mount netns at %s: %w", p, err)
		}
	}()
	wg.Wait()
	if err != nil {
		_ = os.Remove(p)
		return "", err
	}
	return p, nil
}

// removeNamed unmounts and removes a namespace created by createNamed. A missing one is not an error.
// The kernel frees the namespace, and every link in it, once no process or open socket holds it.
func removeNamed(name string) error {
	p := filepath.Join(RunDir, name)
	if err := unix.Unmount(p, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("unmount netns %s: %w", p, err)
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove netns %s: %w", p, err)
	}
	return nil
}

// Sweep removes namespaces left under RunDir by beds whose process is gone (a test binary killed before
// its cleanup ran). Namespaces of running processes, other tests' beds among them, are left alone.
func Sweep() error {
	entries, err := os.ReadDir(RunDir)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return err
	}
	var errs []error
	for _, e := range entries {
		pid, ok := ownerPID(e.Name())
		if !ok || pid == os.Getpid() || processAlive(pid) {
			continue
		}
		if err := removeNamed(e.Name()); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// ownerPID parses the pid out of "ulbed-<pid>-...".
func ownerPID(name string) (int, bool) {
	rest, ok := strings.CutPrefix(name, NamePrefix)
	if !ok {
		return 0, false
	}
	pidStr, _, ok := strings.Cut(rest, "-")
	if !ok {
		return 0, false
	}
	pid, err := strconv.Atoi(pidStr)
	if err != nil || pid <= 0 {
		return 0, false
	}
	return pid, true
}

func processAlive(pid int) bool {
	err := unix.Kill(pid, 0)
	return err == nil || errors.Is(err, unix.EPERM)
}

// linkUp sets a link up by name through h.
func linkUp(h netlinksafe.Handle, name string) error {
	l, err := h.LinkByName(name)
	if err != nil {
		return fmt.Errorf("find link %s: %w", name, err)
	}
	if err := h.LinkSetUp(l); err != nil {
		return fmt.Errorf("set link %s up: %w", name, err)
	}
	return nil
}

// addAddr adds an address (CIDR notation, e.g. "10.7.168.73/24") to a link.
func addAddr(h netlinksafe.Handle, link, cidr string) error {
	l, err := h.LinkByName(link)
	if err != nil {
		return fmt.Errorf("find link %s: %w", link, err)
	}
	a, err := netlink.ParseAddr(cidr)
	if err != nil {
		return fmt.Errorf("parse address %q: %w", cidr, err)
	}
	if err := h.AddrAdd(l, a); err != nil {
		return fmt.Errorf("add %s to %s: %w", cidr, link, err)
	}
	return nil
}
