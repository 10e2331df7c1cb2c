//go:build !linux

package lpattern

import "time"

var start = time.Now()

// threadTime falls back to the wall clock where thread CPU time is not at
// hand.
func threadTime() time.Duration { return time.Since(start) }
