package nodes

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"testing"
)

// Host lets a long-lived process (the local environment's node host behind `make demo`) own a
// test/netbed bed, which is written for tests: it is the testing.TB the bed reports to. Fatal ends the
// current Host.Do with an error instead of a test, Cleanup functions run at Close (last first), and log
// lines go to a writer.
//
// Only the unexported method of testing.TB comes from the embedded nil interface; every method a caller
// can reach is implemented here.
type Host struct {
	testing.TB

	name string
	out  io.Writer
	ctx  context.Context

	mu       sync.Mutex
	cleanups []func()
	failed   bool
	errs     []string
	tmp      []string
}

// hostFatal carries a Fatal out of Host.Do.
type hostFatal struct{ msg string }

// NewHost returns a Host named name (it names the bed's temp directories) that logs to out.
func NewHost(ctx context.Context, name string, out io.Writer) *Host {
	if out == nil {
		out = io.Discard
	}
	return &Host{name: name, out: out, ctx: ctx}
}

// Do runs f; a Fatal or FailNow inside f ends f and becomes Do's error.
func (h *Host) Do(f func()) (err error) {
	defer func() {
		if r := recover(); r != nil {
			hf, ok := r.(hostFatal)
			if !ok {
				panic(r)
			}
			err = errors.New(hf.msg)
		}
	}()
	f()
	return nil
}

// Close runs the Cleanup functions, last registered first; a Fatal inside one is reported and the rest
// still run.
func (h *Host) Close() error {
	h.mu.Lock()
	cs := h.cleanups
	h.cleanups = nil
	reported := len(h.errs)
	h.mu.Unlock()
	var errs []error
	for i := len(cs) - 1; i >= 0; i-- {
		if err := h.Do(cs[i]); err != nil {
			errs = append(errs, err)
		}
	}
	for _, d := range h.tmp {
		if err := os.RemoveAll(d); err != nil {
			errs = append(errs, err)
		}
	}
	h.mu.Lock()
	for _, e := range h.errs[reported:] {
		errs = append(errs, errors.New(e))
	}
	h.mu.Unlock()
	return errors.Join(errs...)
}

func (h *Host) ArtifactDir() string    { return h.TempDir() }
func (h *Host) Attr(key, value string) { h.Logf("%s=%s", key, value) }
func (h *Host) Cleanup(f func()) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.cleanups = append(h.cleanups, f)
}
func (h *Host) Error(args ...any) { h.report(fmt.Sprint(args...)) }
func (h *Host) Errorf(format string, args ...any) {
	h.report(fmt.Sprintf(format, args...))
}

// report logs an error, marks the host failed and keeps the message for Close.
func (h *Host) report(msg string) {
	h.Log(msg)
	h.mu.Lock()
	defer h.mu.Unlock()
	h.failed = true
	h.errs = append(h.errs, msg)
}
func (h *Host) Fail() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.failed = true
}
func (h *Host) FailNow() { h.Fail(); panic(hostFatal{msg: "FailNow"}) }
func (h *Host) Failed() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.failed
}
func (h *Host) Fatal(args ...any) {
	h.Fail()
	panic(hostFatal{msg: fmt.Sprint(args...)})
}
func (h *Host) Fatalf(format string, args ...any) {
	h.Fail()
	panic(hostFatal{msg: fmt.Sprintf(format, args...)})
}
func (h *Host) Helper()         {}
func (h *Host) Log(args ...any) { fmt.Fprintln(h.out, args...) }
func (h *Host) Logf(f string, args ...any) {
	fmt.Fprintf(h.out, f+"\n", args...)
}
func (h *Host) Name() string { return h.name }
func (h *Host) Setenv(key, value string) {
	h.Fatalf("Host.Setenv(%s): a host process does not change its environment", key)
}
func (h *Host) Chdir(dir string) { h.Fatalf("Host.Chdir(%s): a host process keeps its directory", dir) }
func (h *Host) Skip(args ...any) { h.Fatal(append([]any{"skip: "}, args...)...) }
func (h *Host) SkipNow()         { h.Fatal("skip") }
func (h *Host) Skipf(format string, args ...any) {
	h.Fatalf("skip: "+format, args...)
}
func (h *Host) Skipped() bool { return false }
func (h *Host) TempDir() string {
	d, err := os.MkdirTemp("", h.name+"-")
	if err != nil {
		h.Fatal(err)
	}
	h.mu.Lock()
	h.tmp = append(h.tmp, d)
	h.mu.Unlock()
	return d
}
func (h *Host) Context() context.Context { return h.ctx }
func (h *Host) Output() io.Writer        { return h.out }

var _ testing.TB = (*Host)(nil)
