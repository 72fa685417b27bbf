package service

import (
	"context"
	"errors"
	"os"
	"time"

	"github.com/go-logr/logr"

	"github.com/underlink/underlink/cni/ipam/protocol"
)

// Journal frees the releases underlink-ipam recorded while it could not reach the agent
// (protocol.RecordRelease): a DEL then succeeds for the runtime, and the address is freed here, by the
// sandbox it names, as soon as the agent serves again.
type Journal struct {
	// Dir is protocol.JournalDir of the agent's socket.
	Dir     string
	Service *Service
	// Ready reports whether the agent's caches are synced; nothing is freed before.
	Ready func() bool
	// Interval between looks at Dir (a DEL may also record while the agent runs but does not answer).
	Interval time.Duration
	Log      logr.Logger
}

// NeedLeaderElection is false: every agent frees its own node's releases.
func (j *Journal) NeedLeaderElection() bool { return false }

// Start looks at the journal once the caches are synced, then every Interval, until ctx ends.
func (j *Journal) Start(ctx context.Context) error {
	interval := j.Interval
	if interval <= 0 {
		interval = 10 * time.Second
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if j.Ready == nil || j.Ready() {
			if n, err := j.Drain(ctx); err != nil || n > 0 {
				j.Log.Info("recorded releases", "freed", n, "err", errString(err))
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Drain frees every recorded release and removes its record; a release the apiserver cannot take now
// (code 11) stays for the next look. It returns the number of records done.
func (j *Journal) Drain(ctx context.Context) (int, error) {
	entries, err := protocol.RecordedReleases(j.Dir)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	var errs []error
	if err != nil {
		errs = append(errs, err)
	}
	done := 0
	for _, e := range entries {
		if e.Request.ContainerID == "" {
			j.Log.Info("unreadable release record; removed", "file", e.Path)
			_ = os.Remove(e.Path)
			continue
		}
		out, err := j.Service.Release(ctx, e.Request)
		var pe *protocol.Error
		if err != nil && errors.As(err, &pe) && pe.Code == protocol.CodeTryAgainLater {
			errs = append(errs, err)
			continue
		}
		if err != nil {
			j.Log.Info("recorded release refused; removed", "file", e.Path, "err", err.Error())
		} else {
			j.Log.Info("recorded release done", "pod", e.Request.Pod.Namespace+"/"+e.Request.Pod.Name, "containerID", short(e.Request.ContainerID),
				"ifName", e.Request.IfName, "addresses", out.Addresses)
		}
		if err := os.Remove(e.Path); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
			continue
		}
		done++
	}
	return done, errors.Join(errs...)
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
