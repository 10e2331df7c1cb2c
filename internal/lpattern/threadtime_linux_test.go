package lpattern

import (
	"syscall"
	"time"
	"unsafe"
)

// threadTime returns the calling thread's CPU time (Linux's
// CLOCK_THREAD_CPUTIME_ID), so benchmarks can time the matcher's own work
// on a machine busy with other things.
func threadTime() time.Duration {
	const clockThreadCPUTime = 3
	var ts syscall.Timespec
	syscall.Syscall(syscall.SYS_CLOCK_GETTIME, clockThreadCPUTime, uintptr(unsafe.Pointer(&ts)), 0)
	return time.Duration(ts.Nano())
}
