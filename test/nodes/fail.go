package nodes

import (
	"errors"
	"fmt"
	"syscall"
)

// The node-failure controls: a node's kubelet stopped and started again, and any process of a node
// signalled by its name. A failed node keeps running what it ran (containerd's shims and the
// containers), which is what makes a force-deleted pod's address dangerous to hand out again.

// StopProcess kills a node daemon this Env started (kubelet, kube-proxy, containerd) with SIGKILL, as a
// node that fails loses it: nothing it started is told.
func (e *Env) StopProcess(n *Node, name string) error {
	p := n.procs[name]
	if p == nil {
		return fmt.Errorf("node %s: %s was not started", n.Spec.Name, name)
	}
	if err := p.Kill(); err != nil {
		return fmt.Errorf("node %s: kill %s: %w", n.Spec.Name, name, err)
	}
	<-p.Done()
	return nil
}

// StartProcess starts a node daemon that StopProcess stopped, with the command line it first had.
func (e *Env) StartProcess(n *Node, name string) error {
	argv := n.argv[name]
	if len(argv) == 0 {
		return fmt.Errorf("node %s: %s was never started", n.Spec.Name, name)
	}
	if p := n.procs[name]; p != nil {
		select {
		case <-p.Done():
		default:
			return fmt.Errorf("node %s: %s is running", n.Spec.Name, name)
		}
	}
	return e.startIn(n, name, argv[0], argv[1:]...)
}

// PIDsByName lists the live processes in the network namespace netns whose command name (comm, 15
// characters at most) is comm, e.g. "kubelet", or "underlink-agent" in a hostNetwork pod. None is an
// error that names what was looked for.
func PIDsByName(netns, comm string) ([]int, error) {
	ino, err := nsInode(netns)
	if err != nil {
		return nil, err
	}
	pids, err := processesIn(ino, 0)
	if err != nil {
		return nil, err
	}
	var out []int
	for _, pid := range pids {
		if st, ok := readStat(pid); ok && st.comm == comm && !zombie(pid) {
			out = append(out, pid)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no process %q runs in network namespace %s", comm, netns)
	}
	return out, nil
}

// SignalByName sends sig to every process PIDsByName finds and returns how many it signalled.
func SignalByName(netns, comm string, sig syscall.Signal) (int, error) {
	pids, err := PIDsByName(netns, comm)
	if err != nil {
		return 0, err
	}
	for i, pid := range pids {
		if err := syscall.Kill(pid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
			return i, fmt.Errorf("signal %s to %s (%d): %w", sig, comm, pid, err)
		}
	}
	return len(pids), nil
}

// restartable records the command line of a node daemon, for StartProcess.
func (n *Node) restartable(name, bin string, args []string) {
	n.argv[name] = append([]string{bin}, args...)
}
