//go:build unix

package main

import "syscall"

// connectionsForFiles is how many connections the open-file limit leaves
// room for (half of it: the store, module files, logs and outgoing
// requests need descriptors too), or 0 when unknown.
func connectionsForFiles() int {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil || lim.Cur == 0 {
		return 0
	}
	if lim.Cur > 1<<30 {
		return 0
	}
	return int(lim.Cur / 2)
}
