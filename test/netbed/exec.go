package netbed

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
)

// StopGrace is how long Stop waits after SIGTERM before it sends SIGKILL.
const StopGrace = 5 * time.Second

// Process is a program started inside a namespace of the bed, in its own process group, with stdout and
// stderr in files under the bed's directory. The bed kills and reaps it on teardown.
type Process struct {
	// Name is the bed-local name given to Start; the logs are Name.stdout and Name.stderr.
	Name string
	// Cmd is the started command.
	Cmd *exec.Cmd
	// Stdout and Stderr are the log file paths.
	Stdout, Stderr string

	done    chan struct{}
	waitErr error
	stopped sync.Once
}

// Start runs cmd inside n. The child is forked from a thread locked into n (ns.Do), so it and every
// process it starts live in n's network namespace while sharing the root mount namespace: /sys and the
// cgroup mounts stay as they are, which `ip netns exec` would not keep (test/nodes/README.md, item 5).
// Outside Go, `nsenter --net=/run/netns/<n.Name> CMD` is the equivalent. cmd.Stdout/Stderr, when nil,
// go to <bed dir>/<name>.stdout/.stderr; each Start of the same name appends to them.
func (b *Bed) Start(n *Netns, name string, cmd *exec.Cmd) (*Process, error) {
	p := &Process{
		Name:   name,
		Cmd:    cmd,
		Stdout: filepath.Join(b.dir, name+".stdout"),
		Stderr: filepath.Join(b.dir, name+".stderr"),
		done:   make(chan struct{}),
	}
	var files []*os.File
	closeFiles := func() {
		for _, f := range files {
			_ = f.Close()
		}
	}
	if cmd.Stdout == nil {
		f, err := os.OpenFile(p.Stdout, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return nil, err
		}
		files = append(files, f)
		cmd.Stdout = f
	}
	if cmd.Stderr == nil {
		f, err := os.OpenFile(p.Stderr, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			closeFiles()
			return nil, err
		}
		files = append(files, f)
		cmd.Stderr = f
	}
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	// Its own process group, so teardown reaches the children it forks too.
	cmd.SysProcAttr.Setpgid = true
	err := n.Do(func(ns.NetNS) error { return cmd.Start() })
	closeFiles()
	if err != nil {
		return nil, fmt.Errorf("start %s in netns %s: %w", name, n.Name, err)
	}
	go func() {
		p.waitErr = cmd.Wait()
		close(p.done)
	}()
	b.OnTeardown(func() error {
		if err := p.Stop(StopGrace); err != nil {
			return fmt.Errorf("process %s: %w", name, err)
		}
		return nil
	})
	return p, nil
}

// Done is closed when the process has exited and been reaped.
func (p *Process) Done() <-chan struct{} { return p.done }

// Wait waits for the process to exit and returns its exit error.
func (p *Process) Wait() error {
	<-p.done
	return p.waitErr
}

// Signal sends sig to the process group.
func (p *Process) Signal(sig syscall.Signal) error {
	select {
	case <-p.done:
		return nil
	default:
	}
	if err := syscall.Kill(-p.Cmd.Process.Pid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		return err
	}
	return nil
}

// Kill sends SIGKILL to the process group and waits until the process is reaped, like a crash.
func (p *Process) Kill() error {
	if err := p.Signal(syscall.SIGKILL); err != nil {
		return err
	}
	<-p.done
	return nil
}

// Stop sends SIGTERM to the process group, then SIGKILL after grace, and reaps the process. It is safe
// to call more than once and after the process exited on its own.
func (p *Process) Stop(grace time.Duration) error {
	var err error
	p.stopped.Do(func() {
		if err = p.Signal(syscall.SIGTERM); err != nil {
			return
		}
		select {
		case <-p.done:
		case <-time.After(grace):
			err = p.Kill()
		}
		// The group may hold children that outlived the leader.
		_ = syscall.Kill(-p.Cmd.Process.Pid, syscall.SIGKILL)
	})
	return err
}

// Logs returns the process's stderr and stdout so far, for failure messages.
func (p *Process) Logs() string {
	out, _ := os.ReadFile(p.Stdout)
	errOut, _ := os.ReadFile(p.Stderr)
	return fmt.Sprintf("--- %s stderr ---\n%s--- %s stdout ---\n%s", p.Name, errOut, p.Name, out)
}

// Run runs cmd inside n to completion and returns its combined output.
func Run(n *Netns, cmd *exec.Cmd) ([]byte, error) {
	var out []byte
	err := n.Do(func(ns.NetNS) error {
		var err error
		out, err = cmd.CombinedOutput()
		return err
	})
	if err != nil {
		return out, fmt.Errorf("%s in netns %s: %w: %s", cmd, n.Name, err, out)
	}
	return out, nil
}
