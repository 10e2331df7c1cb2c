package runtime

import (
	"bytes"
	"context"
	"errors"
	goruntime "runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	lua "github.com/yuin/gopher-lua"
	"go.uber.org/goleak"

	"github.com/luahost/luahost/internal/sandbox"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// goid is the current goroutine's id (tests only).
func goid() int {
	b := make([]byte, 64)
	b = b[:goruntime.Stack(b, false)]
	b = bytes.TrimPrefix(b, []byte("goroutine "))
	n, _ := strconv.Atoi(string(b[:bytes.IndexByte(b, ' ')]))
	return n
}

func newRT(t *testing.T) *Runtime {
	t.Helper()
	r := New(sandbox.NewState(), Options{Module: "m", File: "m.lua"})
	t.Cleanup(r.Close)
	return r
}

func compile(t *testing.T, r *Runtime, src string) *lua.LFunction {
	t.Helper()
	var fn *lua.LFunction
	r.Do(func(L *lua.LState) {
		f, err := L.LoadString(src)
		if err != nil {
			t.Fatal(err)
		}
		fn = f
	})
	return fn
}

// An idle state runs the call on the caller's own goroutine: no hand-off.
func TestIdleCallRunsOnTheCallersGoroutine(t *testing.T) {
	r := newRT(t)
	me := goid()
	var ran int
	r.Do(func(*lua.LState) { ran = goid() })
	if ran != me {
		t.Errorf("the step ran on goroutine %d, the caller is %d", ran, me)
	}
}

// A busy state queues calls; the baton holder runs them before it
// releases the baton, and hands the baton on after a few so it is not
// stuck serving others.
func TestBusyStateQueuesAndTheHolderRunsThem(t *testing.T) {
	r := newRT(t)
	release := make(chan struct{})
	holding := make(chan int)
	go r.Do(func(*lua.LState) {
		holding <- goid()
		<-release
	})
	holder := <-holding
	const n = 20
	ran := make([]int, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.Do(func(*lua.LState) { ran[i] = goid() })
		}()
	}
	// Let them queue behind the holder.
	for {
		r.mu.Lock()
		q := len(r.queue)
		r.mu.Unlock()
		if q == n {
			break
		}
		time.Sleep(time.Millisecond)
	}
	close(release)
	wg.Wait()
	byHolder := 0
	for _, g := range ran {
		if g == holder {
			byHolder++
		}
	}
	if byHolder != handOffAfter {
		t.Errorf("the holder ran %d queued steps, want %d before it hands the baton on", byHolder, handOffAfter)
	}
}

// A call queued behind a long step fails at its deadline instead of
// waiting for the baton.
func TestAQueuedCallFailsAtItsDeadline(t *testing.T) {
	r := newRT(t)
	fn := compile(t, r, "return 1")
	release := make(chan struct{})
	holding := make(chan struct{})
	go r.Do(func(*lua.LState) {
		close(holding)
		<-release
	})
	<-holding
	defer close(release)
	start := time.Now()
	err := r.Invoke(context.Background(), Call{What: "cb", Fn: fn, Timeout: 50 * time.Millisecond})
	var se *Error
	if !errors.As(err, &se) || !se.Timeout {
		t.Fatalf("err = %v; want a timeout", err)
	}
	if waited := time.Since(start); waited > 5*time.Second {
		t.Errorf("waited %s for a 50ms deadline", waited)
	}
}

// A script that loops is interrupted at its deadline and the state
// serves the next call.
func TestTheWatchdogInterruptsALoop(t *testing.T) {
	r := newRT(t)
	loop := compile(t, r, "return function() while true do end end")
	var f *lua.LFunction
	r.Invoke(context.Background(), Call{What: "load", Fn: loop, Timeout: time.Second,
		Ret: func(L *lua.LState, rets []lua.LValue) error { f = rets[0].(*lua.LFunction); return nil }})
	err := r.Invoke(context.Background(), Call{What: "loop", Fn: f, Timeout: 100 * time.Millisecond})
	if err == nil || !strings.Contains(err.Error(), "timed out after 100ms") {
		t.Fatalf("err = %v", err)
	}
	one := compile(t, r, "return 1")
	if err := r.Invoke(context.Background(), Call{What: "next", Fn: one, Timeout: time.Second}); err != nil {
		t.Fatalf("the next call: %v", err)
	}
}

// Close does not wait for ever on a step wedged in Go code: it abandons
// the state after its grace.
func TestCloseAbandonsAWedgedState(t *testing.T) {
	r := New(sandbox.NewState(), Options{Module: "m", File: "m.lua"})
	wedged := make(chan struct{})
	unwedge := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.Do(func(*lua.LState) {
			close(wedged)
			<-unwedge
		})
	}()
	<-wedged
	closed := make(chan struct{})
	go func() {
		r.CloseWithin(50 * time.Millisecond)
		close(closed)
	}()
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("Close waited for a wedged step")
	}
	if err := r.Invoke(context.Background(), Call{What: "late", Timeout: time.Second}); !errors.Is(err, ErrClosed) {
		t.Errorf("a call after Close: %v", err)
	}
	close(unwedge)
	<-done
}

// Idle runtimes cost no goroutine: a hundred of them add at most the
// watchdog.
func TestIdleRuntimesHaveNoGoroutines(t *testing.T) {
	before := goruntime.NumGoroutine()
	var rts []*Runtime
	for range 100 {
		rts = append(rts, New(sandbox.NewState(), Options{Module: "m"}))
	}
	during := goruntime.NumGoroutine()
	for _, r := range rts {
		r.Close()
	}
	if during-before > 1 {
		t.Errorf("100 idle runtimes added %d goroutines", during-before)
	}
}

// A step whose caller went away (a background call of a closing module)
// is interrupted even before its deadline.
func TestAStepWhoseCallerWentAwayIsInterrupted(t *testing.T) {
	r := newRT(t)
	loop := compile(t, r, "return function() while true do end end")
	var f *lua.LFunction
	r.Invoke(context.Background(), Call{What: "load", Fn: loop, Timeout: time.Second,
		Ret: func(L *lua.LState, rets []lua.LValue) error { f = rets[0].(*lua.LFunction); return nil }})
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	err := r.Invoke(ctx, Call{What: "background", Fn: f, Timeout: time.Hour})
	if err == nil || !strings.Contains(err.Error(), "context canceled") {
		t.Fatalf("err = %v; want the step interrupted as canceled", err)
	}
}
