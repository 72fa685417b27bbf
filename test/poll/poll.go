// Package poll is how underlink's tests and test beds wait for something: a condition checked at an
// interval until it holds, or a timeout passes and the failure names what was awaited and the state the
// condition saw last.
package poll

import (
	"context"
	"fmt"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
)

// Interval is how often Until checks its condition.
const Interval = 100 * time.Millisecond

// Until checks cond every Interval, the first time at once, until it reports done, and fails t when
// timeout passes first, naming what and the state cond reported last. It calls t.Fatal, so it must run
// on the test's goroutine; a goroutine that waits calls Wait and hands the error back.
func Until(t testing.TB, timeout time.Duration, what string, cond func() (done bool, state string)) {
	t.Helper()
	UntilEvery(t, timeout, Interval, what, cond)
}

// UntilEvery is Until with its own interval, for a condition too costly to check every Interval (an
// exec, a list of thousands) or one that must be seen sooner.
func UntilEvery(t testing.TB, timeout, interval time.Duration, what string, cond func() (done bool, state string)) {
	t.Helper()
	err := Wait(context.Background(), timeout, interval, what, func() (bool, string, error) {
		done, state := cond()
		return done, state, nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// Wait checks cond every interval, the first time at once, until it reports done (Wait returns nil), it
// returns an error (Wait returns it, prefixed with what), ctx ends or timeout passes (Wait's error names
// what, the timeout or ctx's error, and the state cond reported last).
func Wait(ctx context.Context, timeout, interval time.Duration, what string, cond func() (done bool, state string, err error)) error {
	var last string
	var condErr error
	tctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	err := wait.PollUntilContextCancel(tctx, interval, true, func(context.Context) (bool, error) {
		done, state, err := cond()
		last, condErr = state, err
		return done, err
	})
	switch {
	case err == nil:
		return nil
	case condErr != nil:
		return fmt.Errorf("%s: %w", what, condErr)
	case ctx.Err() != nil:
		return fmt.Errorf("%s: %w%s", what, ctx.Err(), lastState(last))
	default:
		return fmt.Errorf("%s: not within %s%s", what, timeout, lastState(last))
	}
}

func lastState(s string) string {
	if s == "" {
		return ""
	}
	return "; last state: " + s
}
