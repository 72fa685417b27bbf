package nodes

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/vishvananda/netlink"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/underlink/underlink/test/netbed"
	"github.com/underlink/underlink/test/poll"
)

// mountScript runs in the node's new mount namespace (propagation private, so nothing leaks back into
// the machine's) and then holds it: a tmpfs on /run and the node's own /var/lib, /var/log, /opt and
// /etc/cni, so a pod's hostPath /opt/cni/bin or /etc/cni/net.d (Multus' DaemonSet, the agent's installer)
// is this node's. /, /run, /opt and /etc/cni are shared mounts inside the node, as on a systemd host:
// containerd refuses a Bidirectional hostPath mount (Multus' install_multus on /opt/cni/bin, Spiderpool's
// agent on /var/run/netns) whose source is not on a shared mount, and containerd 1.6 looks the source's
// mount up without resolving symbolic links (/var/run → /run), so /var/run/netns is found on /.
// The machine's mounts under /run are dropped first (dropRunMounts). The mountpoint /etc/cni is made on
// the machine when it has none.
const mountScript = "set -eu\n" + dropRunMounts + `mount -t tmpfs -o mode=0755 underlink-node-run /run
mkdir -p /run/lock /etc/cni
mount --bind "$1/var-lib" /var/lib
mount --bind "$1/var-log" /var/log
mount --bind "$1/opt" /opt
mount --bind "$1/etc-cni" /etc/cni
mount --make-shared /
mount --make-shared /run
mount --make-shared /opt
mount --make-shared /etc/cni
exec sleep infinity
`

// dropRunMounts detaches the machine's mounts under /run (ip netns' /run/netns and the network namespaces
// mounted in it) from a new mount namespace, each topmost one with what it holds (umount -l): hidden under
// the node's /run they would still be found by containerd's lookup of a hostPath's mount, which then
// refuses a Bidirectional /var/run/netns as not shared. A failed umount is an error only while its mount is
// still listed: another process on the machine (a test in a parallel package) may delete its network
// namespace between the read of mountinfo and the umount, and the mount goes with it.
const dropRunMounts = `awk '$5 ~ /^\/run\// {print $5}' /proc/self/mountinfo | sort | awk 'p == "" || index($0, p "/") != 1 {print; p = $0}' |
	while read -r m; do
		err=$(umount -l "$m" 2>&1) && continue
		if awk -v m="$m" '$5 == m {f = 1} END {exit !f}' /proc/self/mountinfo; then echo "$err" >&2; exit 1; fi
	done
`

func netlinkAddr(p netip.Prefix) *netlink.Addr {
	return &netlink.Addr{IPNet: &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}}
}

// startNode starts one node's mount holder, containerd (with the images imported), kubelet and
// kube-proxy, and waits until its Node is Ready.
func (e *Env) startNode(ctx context.Context, cn *ClusterNodes, n *Node) error {
	bed := e.bed
	for _, d := range []string{"var-lib", "var-log", "opt/cni/bin", "etc-cni/net.d", "logs", "pki"} {
		if err := os.MkdirAll(filepath.Join(n.Dir, d), 0o755); err != nil {
			return err
		}
	}
	bed.OnTeardown(func() error { return e.removeNodeDir(n) })

	server := "https://" + cn.APIServerAddr
	kubeletKC := filepath.Join(n.Dir, "kubelet.kubeconfig")
	if err := cn.auth.kubeconfig(kubeletKC, server, "kubernetes", "system:node:"+n.Spec.Name, "system:nodes"); err != nil {
		return err
	}
	servingCert, servingKey, err := cn.auth.sign(filepath.Join(n.Dir, "pki", "kubelet-serving"), leaf{
		CommonName: "system:node:" + n.Spec.Name, Organization: []string{"system:nodes"}, Server: true,
		DNSNames: []string{n.Spec.Name}, IPs: []net.IP{n.Spec.IP.Addr().AsSlice()},
	})
	if err != nil {
		return err
	}
	proxyKC := filepath.Join(n.Dir, "kube-proxy.kubeconfig")
	if err := cn.auth.kubeconfig(proxyKC, server, "kubernetes", "system:kube-proxy"); err != nil {
		return err
	}

	n.CgroupRoot = cgroupRootOf(bed.Prefix(), n.Spec.Name)
	if err := createCgroup(n.CgroupRoot); err != nil {
		return err
	}
	bed.OnTeardown(func() error { return removeCgroup(n.CgroupRoot) })

	if err := e.startHolder(n); err != nil {
		return err
	}
	netIno, err := nsInode(n.Net.NS.Path())
	if err != nil {
		return err
	}
	mntIno, err := nsInode(n.MountNS())
	if err != nil {
		return err
	}
	// Runs after containerd and kubelet stopped (registered before them): shims and containers.
	bed.OnTeardown(func() error {
		if err := killAll(netIno, mntIno, 20*time.Second, n.CgroupRoot); err != nil {
			return fmt.Errorf("node %s: %w", n.Spec.Name, err)
		}
		return nil
	})

	for name, src := range e.opts.CNIPlugins {
		if err := copyFile(src, filepath.Join(n.Dir, "opt/cni/bin", name), 0o755); err != nil {
			return fmt.Errorf("install CNI plugin %s: %w", name, err)
		}
	}
	// The node's primary network, the only CNI configuration until Multus' thin_entrypoint writes
	// 00-multus.conflist beside it and wraps it as Multus' cluster network: pods that start before Multus
	// (its own DaemonSet is hostNetwork) and pods that name no network get it.
	if err := os.WriteFile(filepath.Join(n.Dir, "etc-cni/net.d", PrimaryNetworkFile), []byte(clusterNetworkConf(n.Spec.PodSubnet.Masked().String())), 0o644); err != nil {
		return err
	}

	ctrdConf := filepath.Join(n.Dir, "containerd.toml")
	if err := os.WriteFile(ctrdConf, []byte(containerdConfig(e.opts.SandboxImage)), 0o644); err != nil {
		return err
	}
	ctrdBin, err := exec.LookPath("containerd")
	if err != nil {
		return errors.New("containerd is not installed: `apt-get install -y containerd runc` (Debian's containerd 1.6; .ci/run installs it)")
	}
	if _, err := exec.LookPath("runc"); err != nil {
		return errors.New("runc is not installed: `apt-get install -y containerd runc`")
	}
	if err := e.startIn(n, "containerd", ctrdBin, "--config", ctrdConf); err != nil {
		return err
	}
	sock := n.Path(ContainerdSocket)
	if err := poll.Wait(ctx, 30*time.Second, 100*time.Millisecond, "containerd serving", func() (bool, string, error) {
		if err := n.alive("containerd"); err != nil {
			return false, "", err
		}
		c, err := net.Dial("unix", sock)
		if err != nil {
			return false, err.Error(), nil
		}
		c.Close()
		return true, "", nil
	}); err != nil {
		return fmt.Errorf("containerd did not serve %s: %w\n%s", ContainerdSocket, err, tail(n.Log("containerd"), 15))
	}
	if err := importImages(ctx, sock, e.opts.Images); err != nil {
		return err
	}

	kcfg, err := kubeletConfig(kubeletParams{
		NodeIP: n.Spec.IP.Addr().String(), CgroupRoot: n.CgroupRoot, ClientCA: cn.auth.CAFile,
		TLSCert: servingCert, TLSKey: servingKey, ResolvConf: filepath.Join(n.Dir, "resolv.conf"),
	})
	if err != nil {
		return err
	}
	// Pods resolve nothing: the bed has no DNS, and no query may leave it.
	if err := os.WriteFile(filepath.Join(n.Dir, "resolv.conf"), []byte("# underlink test bed: no DNS\n"), 0o644); err != nil {
		return err
	}
	kubeletConf := filepath.Join(n.Dir, "kubelet.yaml")
	if err := os.WriteFile(kubeletConf, kcfg, 0o644); err != nil {
		return err
	}
	if err := e.startIn(n, "kubelet", e.opts.Binaries["kubelet"], "--config", kubeletConf, "--kubeconfig", kubeletKC,
		"--hostname-override", n.Spec.Name, "--node-ip", n.Spec.IP.Addr().String(), "--root-dir", kubeletRoot, "--v", "1"); err != nil {
		return err
	}
	pcfg, err := kubeProxyConfig(proxyKC, n.Spec.Name)
	if err != nil {
		return err
	}
	proxyConf := filepath.Join(n.Dir, "kube-proxy.yaml")
	if err := os.WriteFile(proxyConf, pcfg, 0o644); err != nil {
		return err
	}
	if err := e.startIn(n, "kube-proxy", e.opts.Binaries["kube-proxy"], "--config", proxyConf, "--v", "1"); err != nil {
		return err
	}

	return poll.Wait(ctx, 120*time.Second, 500*time.Millisecond, "node "+n.Spec.Name+" Ready", func() (bool, string, error) {
		for _, p := range []string{"containerd", "kubelet", "kube-proxy"} {
			if err := n.alive(p); err != nil {
				return false, "", err
			}
		}
		node, err := cn.Client.CoreV1().Nodes().Get(ctx, n.Spec.Name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return false, "kubelet has not registered the Node", nil
		}
		if err != nil {
			return false, err.Error(), nil
		}
		ok, why := nodeReady(node)
		return ok, why, nil
	})
}

// startHolder starts the process that creates and holds the node's mount namespace, and waits until its
// mounts are made (it then execs sleep).
func (e *Env) startHolder(n *Node) error {
	unshare, err := exec.LookPath("unshare")
	if err != nil {
		return errors.New("unshare (util-linux) is not installed")
	}
	cmd := exec.Command(unshare, "--mount", "--propagation", "private", "--", "sh", "-c", mountScript, "sh", n.Dir)
	p, err := e.startLogged(n.Net.NS, n, "mounts", cmd)
	if err != nil {
		return err
	}
	n.holder = p
	return poll.Wait(context.Background(), 10*time.Second, 20*time.Millisecond, "the mount namespace of "+n.Spec.Name, func() (bool, string, error) {
		select {
		case <-p.Done():
			return false, "", fmt.Errorf("the mount namespace holder exited: %v\n%s", p.Wait(), tail(n.Log("mounts"), 10))
		default:
		}
		exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", p.Cmd.Process.Pid))
		if err != nil {
			return false, err.Error(), nil
		}
		return filepath.Base(exe) == "sleep", "mounting", nil
	})
}

// startIn starts a node process inside the node's network and mount namespaces.
func (e *Env) startIn(n *Node, name, bin string, args ...string) error {
	cmd := exec.Command("nsenter", append([]string{"--mount=" + n.MountNS(), "--", bin}, args...)...)
	p, err := e.startLogged(n.Net.NS, n, name, cmd)
	if err != nil {
		return err
	}
	n.procs[name] = p
	n.restartable(name, bin, args)
	return nil
}

// startLogged starts cmd in ns with stdout and stderr in the node's log file for name.
func (e *Env) startLogged(ns *netbed.Netns, n *Node, name string, cmd *exec.Cmd) (*netbed.Process, error) {
	f, err := os.OpenFile(n.Log(name), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	cmd.Stdout, cmd.Stderr = f, f
	return e.bed.Start(ns, n.Spec.Name+"-"+name, cmd)
}

// alive fails, with the end of its log, when a node process has exited.
func (n *Node) alive(name string) error {
	p := n.procs[name]
	if p == nil {
		return fmt.Errorf("%s was not started", name)
	}
	select {
	case <-p.Done():
		return fmt.Errorf("%s exited (%v); last lines of %s:\n%s", name, p.Wait(), n.Log(name), tail(n.Log(name), 20))
	default:
		return nil
	}
}

// removeNodeDir removes the node's directory once its mount namespace is gone. When the bed keeps its
// logs (a failed test), the node's logs stay too.
func (e *Env) removeNodeDir(n *Node) error {
	if e.opts.KeepLogs != nil && e.opts.KeepLogs() {
		entries, _ := os.ReadDir(n.Dir)
		var errs []error
		for _, en := range entries {
			if en.Name() != "logs" {
				errs = append(errs, os.RemoveAll(filepath.Join(n.Dir, en.Name())))
			}
		}
		return errors.Join(errs...)
	}
	return os.RemoveAll(n.Dir)
}

func copyFile(src, dst string, mode os.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	tmp := dst + ".tmp"
	out, err := os.OpenFile(tmp, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, dst)
}

// tail returns the last n lines of a file, for error messages.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
