package clock

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

var start = time.Unix(1_700_000_000, 0)

func TestAdvanceRunsDueTimersInOrderAtTheirTime(t *testing.T) {
	f := NewFake(start)
	var log []string
	at := func(name string) func() {
		return func() { log = append(log, fmt.Sprintf("%s@%s", name, f.Now().Sub(start))) }
	}
	f.AfterFunc(3*time.Second, at("c"))
	f.AfterFunc(time.Second, at("a"))
	f.AfterFunc(time.Second, at("a2")) // same time: scheduling order
	stopB := f.AfterFunc(2*time.Second, at("b"))
	f.AfterFunc(10*time.Second, at("late"))
	if !stopB() {
		t.Fatal("stop of a pending timer reported false")
	}
	if err := f.Advance(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	if got, want := strings.Join(log, " "), "a@1s a2@1s c@3s"; got != want {
		t.Errorf("runs: %s, want %s", got, want)
	}
	if got := f.Now().Sub(start); got != 5*time.Second {
		t.Errorf("clock at %s after advancing 5s", got)
	}
	if f.Pending() != 1 {
		t.Errorf("pending = %d, want 1 (the late one)", f.Pending())
	}
	if stopB() {
		t.Error("a second stop reported true")
	}
}

func TestLoopingAndNestedAdvance(t *testing.T) {
	f := NewFake(start)
	ticks := 0
	var tick func()
	tick = func() {
		ticks++
		f.AfterFunc(time.Second, tick)
	}
	f.AfterFunc(time.Second, tick)
	// A timer that sleeps moves the clock itself, within the outer advance.
	slept := time.Duration(0)
	f.AfterFunc(1500*time.Millisecond, func() {
		before := f.Now()
		if err := f.Advance(2 * time.Second); err != nil {
			t.Error(err)
		}
		slept = f.Now().Sub(before)
	})
	if err := f.Advance(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	if ticks != 10 {
		t.Errorf("ticks = %d in 10 s of a 1 s loop, want 10", ticks)
	}
	if slept != 2*time.Second {
		t.Errorf("the nested advance moved %s, want 2s", slept)
	}
	if got := f.Now().Sub(start); got != 10*time.Second {
		t.Errorf("clock at %s, want 10s", got)
	}
}

func TestRunawayLoopStops(t *testing.T) {
	f := NewFake(start)
	var tick func()
	tick = func() { f.AfterFunc(time.Millisecond, tick) }
	f.AfterFunc(time.Millisecond, tick)
	if err := f.Advance(24 * time.Hour); !errors.Is(err, ErrTooManyRuns) {
		t.Fatalf("Advance of a day over a 1 ms loop: %v, want ErrTooManyRuns", err)
	}
}
