package coordinator

import (
	"errors"
	"fmt"

	"github.com/go-logr/logr"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// StepHook is called after each step of ADD has succeeded, with the step's name ("veth",
// "pod-route 172.111.0.0/16 via 10.7.168.73 dev veth0 src 172.110.1.10", ...). An error makes ADD fail
// at that point exactly as if the step itself had failed, so a test can prove, step by step, that every
// change is undone. Production leaves it nil.
type StepHook func(step string) error

// StepError is a failed ADD step.
type StepError struct {
	Step string
	Err  error
}

func (e *StepError) Error() string { return fmt.Sprintf("step %q: %v", e.Step, e.Err) }
func (e *StepError) Unwrap() error { return e.Err }

// txn runs ADD's steps and keeps the undo of each change, registered the moment the change exists.
type txn struct {
	hook StepHook
	log  logr.Logger
	undo []undoStep
}

type undoStep struct {
	name string
	f    func() error
}

// do runs one step; f registers its undo with onUndo right after it changed something.
func (t *txn) do(name string, f func() error) error {
	if err := f(); err != nil {
		return &StepError{Step: name, Err: err}
	}
	if t.hook != nil {
		if err := t.hook(name); err != nil {
			return &StepError{Step: name, Err: err}
		}
	}
	return nil
}

func (t *txn) onUndo(name string, f func() error) {
	t.undo = append(t.undo, undoStep{name: name, f: f})
}

// rollback undoes every registered change, newest first. Something already gone counts as undone; it
// keeps going after an error so one stuck change does not leave the others behind.
func (t *txn) rollback() error {
	var errs []error
	for i := len(t.undo) - 1; i >= 0; i-- {
		u := t.undo[i]
		if err := u.f(); err != nil && !gone(err) {
			errs = append(errs, fmt.Errorf("undo %s: %w", u.name, err))
			continue
		}
		t.log.V(1).Info("undone", "change", u.name)
	}
	t.undo = nil
	return errors.Join(errs...)
}

// gone reports an error meaning the object does not exist (any more).
func gone(err error) bool {
	var lnf netlink.LinkNotFoundError
	return errors.As(err, &lnf) ||
		errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ESRCH) ||
		errors.Is(err, unix.ENODEV) || errors.Is(err, unix.EADDRNOTAVAIL)
}
