package poll

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestWait(t *testing.T) {
	calls := 0
	err := Wait(context.Background(), time.Second, time.Millisecond, "three calls", func() (bool, string, error) {
		calls++
		return calls == 3, "", nil
	})
	if err != nil || calls != 3 {
		t.Errorf("Wait: %v after %d calls, want nil after 3", err, calls)
	}

	err = Wait(context.Background(), 50*time.Millisecond, 5*time.Millisecond, "the pool empty", func() (bool, string, error) {
		return false, "2 addresses allocated", nil
	})
	if err == nil || err.Error() != "the pool empty: not within 50ms; last state: 2 addresses allocated" {
		t.Errorf("timeout: %v", err)
	}

	boom := errors.New("agent exited")
	calls = 0
	err = Wait(context.Background(), time.Second, time.Millisecond, "agent serving", func() (bool, string, error) {
		calls++
		return false, "", boom
	})
	if !errors.Is(err, boom) || calls != 1 || !strings.HasPrefix(err.Error(), "agent serving: ") {
		t.Errorf("condition error: %v after %d calls, want agent serving: agent exited after 1", err, calls)
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err = Wait(ctx, time.Second, time.Millisecond, "anything", func() (bool, string, error) { return false, "no", nil })
	if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "last state: no") {
		t.Errorf("cancelled: %v", err)
	}
}

func TestUntilChecksAtOnce(t *testing.T) {
	start := time.Now()
	Until(t, time.Minute, "nothing", func() (bool, string) { return true, "" })
	if d := time.Since(start); d > Interval/2 {
		t.Errorf("Until waited %s for a condition that held at once", d)
	}
}
