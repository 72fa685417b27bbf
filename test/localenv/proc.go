package localenv

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/underlink/underlink/test/poll"
)

// process is one control-plane process of a local cluster, tracked by a pid file so `make down` stops
// exactly what `make up` started and nothing else.
type process struct {
	name    string // etcd, kube-apiserver, kube-controller-manager
	binary  string
	args    []string
	port    int // the port that proves it is serving and must be free before it starts
	pidFile string
	logFile string
}

// start runs the process detached from the caller (own session, stdin from /dev/null) so it outlives
// `make up`, with stdout and stderr appended to its log file.
func (p *process) start() (int, error) {
	if err := os.MkdirAll(filepath.Dir(p.logFile), 0o755); err != nil {
		return 0, err
	}
	if err := os.MkdirAll(filepath.Dir(p.pidFile), 0o755); err != nil {
		return 0, err
	}
	log, err := os.OpenFile(p.logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return 0, err
	}
	defer log.Close()
	cmd := exec.Command(p.binary, p.args...)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return 0, fmt.Errorf("start %s (%s): %w", p.name, p.binary, err)
	}
	pid := cmd.Process.Pid
	// Reap it in the background while this process lives; after we exit, init adopts it.
	go func() { _ = cmd.Wait() }()
	if err := os.WriteFile(p.pidFile, []byte(strconv.Itoa(pid)+"\n"), 0o644); err != nil {
		_ = syscall.Kill(pid, syscall.SIGKILL)
		return 0, err
	}
	return pid, nil
}

// running reports the pid from the pid file when that pid is alive and is still our binary (a pid file
// left by a crash may name a pid the kernel has since given to something else).
func (p *process) running() (int, bool) {
	b, err := os.ReadFile(p.pidFile)
	if err != nil {
		return 0, false
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0, false
	}
	return pid, isOurs(pid, p.binary)
}

func isOurs(pid int, binary string) bool {
	exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
	if err != nil {
		return false
	}
	if strings.HasSuffix(exe, " (deleted)") { // the binary was rebuilt under the running process
		exe = strings.TrimSuffix(exe, " (deleted)")
	}
	if exe != binary {
		return false
	}
	// A zombie is not running; its parent (us, or init) reaps it.
	state, _, ok := procStat(pid)
	return ok && state != "Z"
}

// stop sends SIGTERM, waits up to grace, then SIGKILL, and removes the pid file.
func (p *process) stop(grace time.Duration) error {
	pid, ok := p.running()
	if ok {
		// Exited means every thread has: a leader turns zombie while its other threads still run and hold
		// its listening sockets. A live process that is no longer our binary took the pid over.
		exited := func() (bool, string, error) {
			if gone(pid) {
				return true, "", nil
			}
			state, _, ok := procStat(pid)
			return ok && state != "Z" && !isOurs(pid, p.binary), "running", nil
		}
		_ = syscall.Kill(pid, syscall.SIGTERM)
		if poll.Wait(context.Background(), grace, 50*time.Millisecond, "exit after SIGTERM", exited) != nil {
			_ = syscall.Kill(pid, syscall.SIGKILL)
			if err := poll.Wait(context.Background(), 2*time.Second, 20*time.Millisecond, "exit after SIGKILL", exited); err != nil {
				return fmt.Errorf("%s (pid %d): %w", p.name, pid, err)
			}
		}
	}
	if err := os.Remove(p.pidFile); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// portFree says whether 127.0.0.1:port can be bound, and if not, who holds it.
func portFree(port int) error {
	l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err == nil {
		return l.Close()
	}
	if owner := portOwner(port); owner != "" {
		return fmt.Errorf("port %d is in use by %s", port, owner)
	}
	return fmt.Errorf("port %d is in use: %w", port, err)
}

// portOwner finds the process listening on a TCP port through /proc (socket inode → fd link), so the
// message can name it.
func portOwner(port int) string {
	inodes := map[string]bool{}
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		fh, err := os.Open(f)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(fh)
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			if len(fields) < 10 || fields[3] != "0A" { // 0A = LISTEN
				continue
			}
			i := strings.LastIndexByte(fields[1], ':')
			if i < 0 {
				continue
			}
			if p, err := strconv.ParseInt(fields[1][i+1:], 16, 32); err == nil && int(p) == port {
				inodes["socket:["+fields[9]+"]"] = true
			}
		}
		fh.Close()
	}
	if len(inodes) == 0 {
		return ""
	}
	procs, _ := os.ReadDir("/proc")
	for _, d := range procs {
		pid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		fds, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
		for _, fd := range fds {
			l, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name()))
			if err == nil && inodes[l] {
				exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
				return fmt.Sprintf("pid %d (%s)", pid, exe)
			}
		}
	}
	return "another process"
}

// tail returns the last n lines of a log file, for error messages.
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
