// Command underlink-demo runs the user's scenario (test/testdata/seed/spiderpool-submariner.md) on the local
// clusters: the implementation behind `make demo` (hack/demo.sh) and the nodes' part of `make down`.
//
//	underlink-demo run    start the nodes if they are not running, then run the scenario
//	underlink-demo down   stop the nodes and remove everything they made
//	underlink-demo status show the node host and its nodes
//	underlink-demo host   (internal) the node host process that `run` starts detached
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/underlink/underlink/test/e2e"
	"github.com/underlink/underlink/test/localenv"
	"github.com/underlink/underlink/test/netbed"
	"github.com/underlink/underlink/test/nodes"
	"github.com/underlink/underlink/test/poll"
)

func main() {
	dir := flag.String("dir", ".local", "the local environment's directory (make up's)")
	flag.Usage = func() {
		fmt.Fprintf(os.Stderr, "usage: underlink-demo [-dir .local] run|down|status|host\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	ctrllog.SetLogger(logr.Discard())
	if flag.NArg() != 1 {
		flag.Usage()
		os.Exit(2)
	}
	base, err := portBase()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	abs, err := filepath.Abs(*dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	cp := &localenv.Env{Dir: abs, Clusters: localenv.Clusters(base)}
	nodesDir := filepath.Join(abs, "nodes")
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	code := 0
	switch flag.Arg(0) {
	case "run":
		code = run(ctx, cp, nodesDir)
	case "down":
		code = down(nodesDir)
	case "status":
		code = status(nodesDir)
	case "host":
		if err := e2e.Host(ctx, nodesDir, cp, os.Stdout); err != nil {
			fmt.Fprintln(os.Stdout, "underlink-nodes:", err)
			code = 1
		}
	default:
		flag.Usage()
		code = 2
	}
	os.Exit(code)
}

func portBase() (int, error) {
	s := os.Getenv("UNDERLINK_PORT_BASE")
	if s == "" {
		return 0, nil
	}
	b, err := strconv.Atoi(s)
	if err != nil || b < 1024 || b > 30000 {
		return 0, fmt.Errorf("UNDERLINK_PORT_BASE=%q: want a number from 1024 to 30000", s)
	}
	return b, nil
}

func pidFile(dir string) string { return filepath.Join(dir, "host.pid") }
func logFile(dir string) string { return filepath.Join(dir, "host.log") }

// hostPID is the node host's pid when it runs (its pid file names a live underlink-demo).
func hostPID(dir string) (int, bool) {
	b, err := os.ReadFile(pidFile(dir))
	if err != nil {
		return 0, false
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0, false
	}
	exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
	if err != nil || !strings.Contains(filepath.Base(strings.TrimSuffix(exe, " (deleted)")), "underlink-demo") {
		return 0, false
	}
	return pid, true
}

func run(ctx context.Context, cp *localenv.Env, dir string) int {
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "underlink-demo: the nodes are network namespaces running kubelet and containerd: run as root")
		return 1
	}
	for _, c := range cp.Clusters {
		if _, err := os.Stat(cp.KubeconfigPath(c)); err != nil {
			fmt.Fprintf(os.Stderr, "underlink-demo: %s is not up (no %s): run `make up` (make demo does)\n", c.Name, cp.KubeconfigPath(c))
			return 1
		}
	}
	restart := false
	if _, ok := hostPID(dir); !ok {
		if err := startHost(ctx, cp.Dir, dir); err != nil {
			fmt.Fprintln(os.Stderr, "underlink-demo:", err)
			return 1
		}
	} else {
		fmt.Println("nodes: already running (`make down` stops them)")
		changed, err := e2e.SyncImages(ctx, dir, os.Stdout)
		if err != nil {
			fmt.Fprintln(os.Stderr, "underlink-demo: import images into the running nodes:", err)
			return 1
		}
		restart = changed
	}
	t, closeNS, err := e2e.LoadTarget(dir, cp, os.Stdout)
	if err != nil {
		fmt.Fprintln(os.Stderr, "underlink-demo:", err)
		return 1
	}
	defer closeNS()
	t.RestartUnderlink = restart
	report := e2e.Run(ctx, t)
	if !report.Passed() {
		fmt.Printf("\nnode logs: %s/<cluster>/<node>/logs, node host: %s\n", dir, logFile(dir))
		return 1
	}
	return 0
}

// startHost starts the node host detached (its own session, output in host.log) and shows its
// progress from the log until it reports ready, or fails with the end of its log if it exits first.
func startHost(ctx context.Context, envDir, dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	log, err := os.OpenFile(logFile(dir), os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	defer log.Close()
	devnull, err := os.Open(os.DevNull)
	if err != nil {
		return err
	}
	defer devnull.Close()
	cmd := exec.Command(self, "-dir", envDir, "host")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = devnull, log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	fmt.Println("nodes: starting containerd, kubelet and kube-proxy in 4 node namespaces (log " + logFile(dir) + ")")
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start the node host: %w", err)
	}
	if err := os.WriteFile(pidFile(dir), []byte(strconv.Itoa(cmd.Process.Pid)+"\n"), 0o644); err != nil {
		return err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	f, err := os.Open(logFile(dir))
	if err != nil {
		return err
	}
	defer f.Close()
	rd := bufio.NewReader(f)
	var partial string
	for {
		line, err := rd.ReadString('\n')
		partial += line
		if err == nil {
			line, partial = strings.TrimRight(partial, "\n"), ""
			if line == e2e.ReadyLine {
				fmt.Printf("nodes: ready in %s\n", time.Since(start).Round(100*time.Millisecond))
				return nil
			}
			fmt.Println("nodes:", line)
			continue
		}
		select {
		case werr := <-exited:
			// Print what it wrote last, then give up.
			rest, _ := io.ReadAll(rd)
			if s := strings.TrimSpace(partial + string(rest)); s != "" {
				fmt.Println("nodes:", strings.ReplaceAll(s, "\n", "\nnodes: "))
			}
			return fmt.Errorf("the node host exited (%v) before its nodes were ready; its log: %s", werr, logFile(dir))
		case <-ctx.Done():
			_ = cmd.Process.Signal(syscall.SIGTERM)
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// down stops the node host (it removes its nodes) and then sweeps what a host that died uncleanly left,
// and the control planes of tests that were killed.
func down(dir string) int {
	code := 0
	if pid, ok := hostPID(dir); ok {
		_ = syscall.Kill(pid, syscall.SIGTERM)
		_ = poll.Wait(context.Background(), 2*time.Minute, 200*time.Millisecond, "the node host to stop", func() (bool, string, error) {
			_, alive := hostPID(dir)
			return !alive || syscall.Kill(pid, 0) != nil, "running", nil
		})
		if syscall.Kill(pid, 0) == nil && isZombieFree(pid) {
			fmt.Fprintf(os.Stderr, "underlink-demo: the node host (pid %d) did not stop within 2 minutes; killing it\n", pid)
			_ = syscall.Kill(pid, syscall.SIGKILL)
			time.Sleep(time.Second)
		}
		fmt.Printf("nodes: stopped the node host (pid %d)\n", pid)
	}
	var st e2e.State
	if b, err := os.ReadFile(e2e.StatePath(dir)); err == nil && json.Unmarshal(b, &st) == nil && st.BedDir != "" {
		_ = os.RemoveAll(st.BedDir)
	}
	if err := nodes.SweepDead(); err != nil {
		fmt.Fprintln(os.Stderr, "underlink-demo: sweep node processes and cgroups:", err)
		code = 1
	}
	if err := netbed.Sweep(); err != nil {
		fmt.Fprintln(os.Stderr, "underlink-demo: sweep namespaces:", err)
		code = 1
	}
	// Control planes of tests killed before their cleanups (SIGKILL, a timeout's kill -9).
	swept, err := localenv.SweepOrphans(10 * time.Second)
	for _, o := range swept {
		fmt.Printf("control planes: stopped %s (pid %d) of a killed test, removed %s\n", o.Name, o.PID, o.Dir)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "underlink-demo:", err)
		code = 1
	}
	if err := os.RemoveAll(dir); err != nil && !errors.Is(err, os.ErrNotExist) {
		fmt.Fprintln(os.Stderr, "underlink-demo:", err)
		code = 1
	}
	return code
}

// isZombieFree says whether pid is a live process rather than a zombie waiting for its parent.
func isZombieFree(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	i := strings.LastIndexByte(string(b), ')')
	return i > 0 && i+2 < len(b) && b[i+2] != 'Z'
}

func status(dir string) int {
	pid, ok := hostPID(dir)
	if !ok {
		fmt.Println("nodes: not running")
		return 0
	}
	fmt.Printf("nodes: node host pid %d (log %s)\n", pid, logFile(dir))
	b, err := os.ReadFile(e2e.StatePath(dir))
	if err != nil {
		fmt.Println("nodes: starting")
		return 0
	}
	var st e2e.State
	if err := json.Unmarshal(b, &st); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	for _, c := range st.Clusters {
		for _, n := range c.Nodes {
			role := ""
			if n.Gateway {
				role = " (Submariner gateway)"
			}
			fmt.Printf("  %s  %-8s %-13s netns %s%s\n", c.Name, n.Name, n.IP, n.Netns, role)
		}
	}
	return 0
}
