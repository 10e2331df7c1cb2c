package runtime

import "sync/atomic"

// Process-wide counts, for metrics.
var (
	parkedCalls atomic.Int64 // calls waiting on a host call
	liveTimers  atomic.Int64 // background-call goroutines
)

// Stats are the runtime's gauges, summed over every module.
type Stats struct {
	States   int   // open Lua states
	InFlight int64 // calls in flight (running, queued or parked)
	Parked   int64 // calls waiting on a host call
	Timers   int64 // pending background calls
}

// ReadStats returns the current gauges. Safe from any goroutine.
func ReadStats() Stats {
	return Stats{States: watch.count(), InFlight: watch.active.Load(), Parked: parkedCalls.Load(), Timers: liveTimers.Load()}
}
